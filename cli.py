"""pagerules command line. Each command parses options, calls the engine, and turns
its errors into a message and an exit status: 0 all handled, 1 an event or action
failed, 2 usage or configuration error."""
from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any, TextIO

import click

from engine.config import Config, load_config
from engine.dispatch import Dispatcher, DryRun
from engine.errors import InvalidFiles, PageRulesError, Problem
from engine.events import read_events
from engine.explain import explain_event, format_report
from engine.pipeline import Tally, run
from engine.rules import RuleSet, load_ruleset

log = logging.getLogger("pagerules")


def _fail_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Engine errors become a message on stderr and their exit status; never a traceback."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PageRulesError as exc:
            click.echo(f"pagerules: {exc}", err=True)
            sys.exit(exc.exit_code)
    return wrapper


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --rules and --packs, shared by every command that loads rules."""
    func = click.option("--packs", help="Comma-separated rule packs to enable (PAGERULES_PACKS).")(func)
    func = click.option("--rules", "rules_dir", type=click.Path(file_okay=False),
                        help="Rules folder (default: rules_dir from the config).")(func)
    func = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="Config file (default: ./pagerduty.yaml, else the project's).")(func)
    return func


def _load(config_path: str | None, rules_dir: str | None, packs: str | None) -> tuple[Config, RuleSet]:
    config = load_config(config_path, overrides={"rules_dir": rules_dir, "packs": packs})
    return config, load_ruleset(config)


# One encoder for every line: json.dumps(..., ensure_ascii=False) would build a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


def _write_lines(lines: Iterable[dict[str, Any]], out: TextIO) -> None:
    write = out.write
    for line in lines:
        write(_encode(line) + "\n")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
def main(verbose: bool) -> None:
    """pagerules: decide when to wake someone up.

    YAML rules turn JSON events into PagerDuty incidents, and recoveries resolve them.

    Example: python cli.py process --dry-run < examples/events.jsonl
    """
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@config_options
@click.option("--strict", is_flag=True, help="Treat warnings as problems (exit 1).")
def validate(config_path: str | None, rules_dir: str | None, packs: str | None, strict: bool) -> None:
    """Check the config, every rule file and the event schemas.

    Prints every problem as FILE:LINE: rule ID: message and exits 1 if there is one.

    Example: python cli.py validate --packs github
    """
    problems: list[Problem | str] = []
    try:
        config = load_config(config_path, overrides={"rules_dir": rules_dir, "packs": packs})
    except InvalidFiles as exc:
        problems.extend(exc.problems)
        config = Config()
    except PageRulesError as exc:
        problems.append(str(exc))
        config = Config()
    try:
        ruleset = load_ruleset(config)
        problems.extend(ruleset.warnings)
    except InvalidFiles as exc:
        problems.extend(exc.problems)
        ruleset = None
    for problem in problems:
        click.echo(str(problem))
    errors = [p for p in problems if not (isinstance(p, Problem) and p.warning and not strict)]
    if errors:
        click.echo(f"{len(errors)} problem(s) found", err=True)
        sys.exit(1)
    assert ruleset is not None
    count = len(ruleset.all_rules())
    click.echo(f"ok: {count} rules in {len(ruleset.files)} files (ruleset {ruleset.version})", err=True)


@main.command()
@config_options
@click.option("--dry-run", is_flag=True, help="Contact nothing and write no state; print what would happen.")
@click.option("--type", "default_type", help="Type for input events that have none (e.g. github.workflow_run).")
@_fail_cleanly
def process(config_path: str | None, rules_dir: str | None, packs: str | None, dry_run: bool,
            default_type: str | None) -> None:
    """Read events on stdin and act on them.

    Input: one JSON object, a JSON array, or JSON lines. Prints one JSON line per
    outcome; exits 1 if any event was rejected or any action failed.

    Example: python cli.py process --dry-run < examples/events.jsonl
    """
    config, ruleset = _load(config_path, rules_dir, packs)
    if not dry_run and config.enabled:
        config.require_live()
        raise PageRulesError("live mode is not available in this build; use --dry-run")
    dispatcher = Dispatcher(config, DryRun())
    tally = Tally()
    _write_lines(run(read_events(sys.stdin, "stdin"), ruleset, dispatcher, tally, default_type), sys.stdout)
    sys.stdout.flush()
    log.info(tally.summary())
    sys.exit(1 if tally.failed else 0)


@main.command()
@config_options
@click.option("--json", "as_json", is_flag=True, help="One JSON report per event instead of text.")
@click.option("--type", "default_type", help="Type for input events that have none.")
@_fail_cleanly
def explain(config_path: str | None, rules_dir: str | None, packs: str | None, as_json: bool,
            default_type: str | None) -> None:
    """For each event on stdin: every rule of its type, whether it matched, and why not.

    Open incidents carry from one event to the next as in a dry run, so a failed
    build followed by a passed one shows the resolve.

    Example: echo '{"type": "build", "repo": "a/b", "branch": "dev", "build_number": 1, "status": "failed"}' | python cli.py explain
    """
    _, ruleset = _load(config_path, rules_dir, packs)
    config = load_config(config_path, overrides={"rules_dir": rules_dir, "packs": packs})
    dispatcher = Dispatcher(config, DryRun())
    for report in _explain_all(read_events(sys.stdin, "stdin"), ruleset, dispatcher, default_type):
        click.echo(json.dumps(report, ensure_ascii=False) if as_json else format_report(report) + "\n")


def _explain_all(items: Any, ruleset: RuleSet, dispatcher: Dispatcher, default_type: str | None
                 ) -> Iterator[dict[str, Any]]:
    for item in items:
        if item.event is None:
            yield {"event_id": None, "type": None, "rejected": item.error}
            continue
        if default_type and "type" not in item.event:
            item.event["type"] = default_type
        yield explain_event(item.event, ruleset, dispatcher)


if __name__ == "__main__":
    main()
