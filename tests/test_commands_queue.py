"""`pagerules queue list|retry` (engine.commands.queue) against a throwaway PostgreSQL: what failed and
why, and a failed row put back for a worker to handle again."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pg_server import pg_server, pg_url  # noqa: F401

from engine.commands.queue import queue as queue_group
from engine.pagerduty.pgqueue import EventQueue
from engine.pagerduty.pgstate import PgState
from engine.pagerduty.queue import Entry

SECRET_TOKEN = "pd-api-token-never-shown-5e1f"


def run(url: str, tmp_path: Path, *args: str) -> Result:
    (tmp_path / "pd.yaml").write_text("enabled: false\n")
    env = {"PAGERDUTY_API_TOKEN": SECRET_TOKEN, "PAGERULES_STATE_URL": None}
    return CliRunner(env=env).invoke(queue_group, [*args, "--config", str(tmp_path / "pd.yaml"), "--state", url])


@pytest.fixture
def rows(pg_url: str) -> tuple[int, int, int]:  # noqa: F811
    """Three rows: one done, one failed with two problems, one waiting."""
    PgState(pg_url).close()
    events = EventQueue(pg_url)
    try:
        ids = events.enqueue([Entry(json.dumps({"type": "build", "repo": f"acme/r{n}", "n": n}), None, "api",
                                    f"repo:acme/r{n}") for n in range(3)])
        done, failed, _ = events.claim("w", 10)
        events.finish("w", done, [])
        events.finish("w", failed, ["queue row 2 (api): event b2: schema: repo: expected text",
                                    "queue row 2 (api): event b3: PagerDuty said 400"])
        events.release_all("w")
    finally:
        events.close()
    return ids[0], ids[1], ids[2]


def test_list_shows_the_counts_and_the_latest_rows_with_why_one_failed(rows: tuple[int, int, int], pg_url: str,  # noqa: F811
                                                                       tmp_path: Path) -> None:
    done, failed, waiting = rows
    shown = run(pg_url, tmp_path, "list")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "queue: 1 todo, 0 doing, 1 done, 1 failed"
    assert [line.split()[0:2] for line in lines[1:]] == [[str(waiting), "todo"], [str(failed), "failed"],
                                                          [str(done), "done"]]
    assert lines[2].endswith("repo:acme/r1  api  queue row 2 (api): event b2: schema: repo: expected text (+1 more)")
    assert SECRET_TOKEN not in shown.output


def test_list_failed_as_json_gives_each_row_with_its_event(rows: tuple[int, int, int], pg_url: str,  # noqa: F811
                                                           tmp_path: Path) -> None:
    _, failed, _ = rows
    shown = run(pg_url, tmp_path, "list", "--failed", "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["counts"] == {"todo": 1, "done": 1, "failed": 1}
    [row] = data["rows"]
    assert (row["id"], row["status"], row["body"]) == (failed, "failed", {"type": "build", "repo": "acme/r1", "n": 1})
    assert row["error"].splitlines()[1] == "queue row 2 (api): event b3: PagerDuty said 400"
    assert run(pg_url, tmp_path, "list", "--failed", "--status", "done").exit_code == 2


def test_retry_puts_a_failed_row_back_and_refuses_any_other(rows: tuple[int, int, int], pg_url: str,  # noqa: F811
                                                            tmp_path: Path) -> None:
    done, failed, _ = rows
    again = run(pg_url, tmp_path, "retry", str(failed))
    assert again.exit_code == 0, again.output
    assert again.stdout == f"queue row {failed}: back in the queue\n"
    assert json.loads(run(pg_url, tmp_path, "list", "--json").stdout)["counts"] == {"todo": 2, "done": 1}
    refused = run(pg_url, tmp_path, "retry", str(done), "999999")
    assert refused.exit_code == 1
    assert (f"queue row {done}: not failed (done); only a failed row is retried; queue row 999999: no such row"
            in refused.output)


def test_an_unreachable_queue_database_is_named_without_its_password(tmp_path: Path) -> None:
    shown = run("postgresql://pagerules:s3cret-queue-pw@127.0.0.1:1/nowhere", tmp_path, "list")
    assert shown.exit_code == 2  # as any state that cannot be opened
    assert "cannot connect to the queue database postgresql://pagerules@127.0.0.1:1/nowhere" in shown.output
    assert "s3cret-queue-pw" not in shown.output


def test_the_queue_commands_refuse_a_sqlite_state(tmp_path: Path) -> None:
    shown = run(str(tmp_path / "state.db"), tmp_path, "list")
    assert shown.exit_code == 1
    assert "--queue needs the state in PostgreSQL" in shown.output
