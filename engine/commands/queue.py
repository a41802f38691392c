"""`pagerules queue list|retry`: the shared queue's rows in PostgreSQL (README "Run it on more than one
machine"): what failed and why, and a failed row put back to be handled again once its cause is fixed.
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from engine.commands.common import emit, fail_cleanly, state_option
from engine.config import load_config
from engine.errors import ConfigError, PageRulesError

if TYPE_CHECKING:
    from engine.pagerduty.pgqueue import EventQueue

STATUSES = ("todo", "doing", "done", "failed")


def _open(config_path: str | None, state_path: str | None) -> EventQueue:
    from engine.daemon.queue_worker import queue_url
    from engine.pagerduty.pgqueue import EventQueue

    return EventQueue(queue_url(load_config(config_path).state_url, state_path))


@click.group()
def queue() -> None:
    """The shared work queue of `watch --queue` workers: list its rows, retry a failed one.

    Example: pagerules queue list --failed
    """


@queue.command(name="list")
@click.option("--failed", "only_failed", is_flag=True, help="Only the failed rows (as --status failed).")
@click.option("--status", type=click.Choice(STATUSES), help="Only the rows with this status.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many rows.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, each row with its event body.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@fail_cleanly
def list_(only_failed: bool, status: str | None, limit: int, as_json: bool, config_path: str | None,
          state_path: str | None) -> None:
    """The latest rows, newest first, with how many tries each took and why a failed one failed; a
    summary of every status first.

    Example: pagerules queue list --failed --json
    """
    if only_failed and status not in (None, "failed"):
        raise ConfigError(f"--failed and --status {status} ask for two statuses: give one")
    wanted = "failed" if only_failed else status
    rows, counts = _read(config_path, state_path, wanted, limit)
    if as_json:
        emit({"counts": counts, "rows": [{**r, "body": _body(r["body"])} for r in rows]}, True, "")
        return
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
    lines = [f"queue: {summary}"] + [_row(r) for r in rows]
    if not rows:
        lines.append(f"no {wanted} rows" if wanted else "no rows")
    click.echo("\n".join(lines))


def _read(config_path: str | None, state_path: str | None, status: str | None,
          limit: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    events = _open(config_path, state_path)
    try:
        return events.rows(status, limit), events.counts()
    finally:
        events.close()


def _body(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch is not None else "-"


def _row(row: dict[str, Any]) -> str:
    error = (row["error"] or "").splitlines()
    why = f"  {error[0]}" + (f" (+{len(error) - 1} more)" if len(error) > 1 else "") if error else ""
    return (f"{row['id']}  {row['status']:<6}  tries {row['attempts']}  {_when(row['enqueued_at'])}  "
            f"{row['ordering_key']}  {row['source']}{why}")


@queue.command()
@click.argument("rows", metavar="ID...", nargs=-1, type=int, required=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@fail_cleanly
def retry(rows: tuple[int, ...], config_path: str | None, state_path: str | None) -> None:
    """Put failed rows back in the queue, due now: a worker handles each again from its first event (as
    moving a file from failed/ back into the events folder does), before the later rows of its ordering
    key. A row that is not failed is left as it is and named; exit 1 then.

    Example: pagerules queue retry 1042
    """
    events = _open(config_path, state_path)
    refused = []
    try:
        for row in rows:
            was = events.retry(row)
            if was is None:
                click.echo(f"queue row {row}: back in the queue")
            else:
                refused.append(f"queue row {row}: " + ("no such row" if was == "missing" else
                                                       f"not failed ({was}); only a failed row is retried"))
    finally:
        events.close()
    if refused:
        raise PageRulesError("; ".join(refused))


COMMANDS = [queue]
