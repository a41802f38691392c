"""`pagerules silence add|list|expire` (engine.commands.silences), and end to end: a silence made with the
CLI while `watch` runs mutes the next page and lets the resolve through."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from builders import ROOT, Daemon, build, live_config, wait_for
from click.testing import CliRunner, Result
from fake_pagerduty import FakePagerDuty

from engine.commands.cli import main
from engine.dispatch.dispatcher import Dispatcher
from engine.dispatch.outcomes import Status
from engine.evaluation.actions import Extras, TriggerAction
from engine.language.silences import make_silence
from engine.pagerduty.backend import live_backend
from engine.pagerduty.state import State


def run(tmp_path: Path, *args: str, user: str = "ada") -> Result:
    return CliRunner(env={"USER": user}).invoke(main, ["silence", *args, "--state", str(tmp_path / "s.db")])


def test_add_prints_the_id_and_list_shows_it_with_who_made_it(tmp_path: Path) -> None:
    made = run(tmp_path, "add", "--match", "repo=acme/api", "--match", "branch=main", "--for", "2h",
               "--comment", "db upgrade")
    assert made.exit_code == 0, made.output
    silence_id = made.stdout.strip()
    assert len(silence_id) == 36
    listed = run(tmp_path, "list", "--json")
    [entry] = json.loads(listed.stdout)
    assert (entry["id"], entry["match"], entry["created_by"], entry["comment"], entry["state"]) == (
        silence_id, {"repo": "acme/api", "branch": "main"}, "ada", "db upgrade", "active")
    human = run(tmp_path, "list").stdout
    assert human.startswith(f"{silence_id}  active ") and "ada  repo=acme/api branch=main  db upgrade" in human
    state = State(str(tmp_path / "s.db"))
    assert [(e["actor"], e["action"]) for e in state.recent_audit()] == [("ada", "silence")]


def test_expire_ends_it_and_list_all_still_shows_it(tmp_path: Path) -> None:
    silence_id = run(tmp_path, "add", "--match", "repo=acme/api", "--for", "1h", "--comment", "c").stdout.strip()
    ended = run(tmp_path, "expire", silence_id, "--by", "bob")
    assert (ended.exit_code, ended.stdout) == (0, f"expired {silence_id}\n")
    assert run(tmp_path, "list").stdout == "no silences\n"
    [entry] = json.loads(run(tmp_path, "list", "--all", "--json").stdout)
    assert (entry["id"], entry["state"]) == (silence_id, "expired")
    again = run(tmp_path, "expire", silence_id)
    assert again.exit_code == 2 and f"pagerules: id: silence {silence_id} already ended at " in again.stderr
    unknown = run(tmp_path, "expire", "nope")
    assert (unknown.exit_code, unknown.stderr) == (
        2, "pagerules: id: no silence 'nope' (pagerules silence list --all shows them)\n")
    state = State(str(tmp_path / "s.db"))
    assert [(e["actor"], e["action"]) for e in state.recent_audit()] == [("bob", "silence_expire"), ("ada", "silence")]


def test_a_weekly_window(tmp_path: Path) -> None:
    made = run(tmp_path, "add", "--match", "repo=acme/api", "--until", "2099-01-01T00:00:00Z", "--weekly", "mon-fri",
               "--between", "22:00-23:00", "--tz", "Europe/Berlin", "--comment", "nightly batch", "--json")
    assert made.exit_code == 0, made.output
    entry = json.loads(made.stdout)
    assert entry["weekly"] == {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "between": "22:00-23:00",
                               "tz": "Europe/Berlin"}
    assert entry["ends_at"] == "2099-01-01T00:00:00Z" and entry["state"] in ("active", "waiting")
    assert "[mon,tue,wed,thu,fri 22:00-23:00 Europe/Berlin]" in run(tmp_path, "list").stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--match", "repo", "--for", "1h"], "--match: 'repo' is not label=value"),
    (["--match", "repo=a", "--for", "2 hours"], "--for: '2 hours' is not a duration"),
    (["--match", "repo=a"], "--until: say how long it lasts: an end (ends_at, --until: an ISO 8601 time) or a "
                            "duration (for, --for: 30m, 2h)"),
    (["--match", "repo=a", "--for", "1h", "--until", "2099-01-01T00:00:00Z"],
     "--until: give an end or a duration, not both"),
    (["--match", "repo=a", "--until", "2000-01-01T00:00:00Z"], "--until: 2000-01-01T00:00:00Z is not after starts_at"),
    (["--match", "repo=a", "--until", "next week"], "--until: 'next week' is not an ISO 8601 time"),
    (["--match", "repo=a", "--for", "1h", "--between", "22:00-23:00", "--tz", "Mars/Olympus"],
     "--tz: unknown time zone 'Mars/Olympus'"),
    # Found by a new user: an empty --tz was taken as no --tz, and the window silently ran in UTC; in review,
    # an empty --between (an unset variable) made the window a plain silence muting around the clock, and an
    # empty --weekly made it every day.
    (["--match", "repo=a", "--for", "1h", "--between", "22:00-23:00", "--tz", ""],
     "--tz: give an IANA time zone (Europe/Berlin, UTC)"),
    (["--match", "repo=a", "--for", "1h", "--between", ""], "--between: '' is not HH:MM-HH:MM"),
    (["--match", "repo=a", "--for", "1h", "--between", "22:00-23:00", "--weekly", ""],
     "--weekly: expected weekdays such as mon-fri or sat,sun, got ''"),
    (["--match", "repo=a", "--for", "1h", "--weekly", "mon-fry", "--between", "22:00-23:00"],
     "--weekly: unknown weekday 'fry'"),
    (["--match", "repo=a", "--for", "1h", "--between", "22:00"], "--between: '22:00' is not HH:MM-HH:MM"),
    (["--match", "repo=a", "--for", "1h", "--weekly", "mon-fri"], "--weekly and --tz need --between HH:MM-HH:MM"),
    (["--match", "repo={regex: x}", "--for", "1h", "--comment", " "], "--comment: say why"),
])
def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    if "--comment" not in args:
        args = [*args, "--comment", "c"]
    result = run(tmp_path, "add", *args)
    assert result.exit_code == 2 and result.stderr.startswith(f"pagerules: {message}"), result.stderr
    assert run(tmp_path, "list").stdout == "no silences\n"


def test_matchers_from_the_cli_are_equalities_of_text(tmp_path: Path) -> None:
    run(tmp_path, "add", "--match", "pr=349", "--for", "1h", "--comment", "c")
    [entry] = json.loads(run(tmp_path, "list", "--json").stdout)
    assert entry["match"] == {"pr": "349"}  # labels are text, so "349" is what matches


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args, "--config", str(daemon.tmp / "pd.yaml")],
                          capture_output=True, text=True, env={**daemon.env, "USER": "ada"}, timeout=60)


def events_of(daemon: Daemon) -> list[dict[str, Any]]:
    state = State(str(daemon.tmp / "state.db"))
    try:
        return state.recent_audit(100)
    finally:
        state.close()


def test_a_silence_made_while_watch_runs_mutes_the_next_page_and_lets_the_resolve_through(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake)
    daemon.drop("1.json", [build(349)])
    assert daemon.once().returncode == 0  # build 349 is open in PagerDuty before the silence
    [opened] = fake.incidents.values()
    daemon.start()
    made = cli(daemon, "silence", "add", "--match", "repo=acme/backend-api", "--match", "branch=main",
               "--for", "1h", "--comment", "CI is being moved")
    assert made.returncode == 0, made.stderr
    silence_id = made.stdout.strip()
    daemon.drop("2.json", [build(350)])
    wait_for(lambda: daemon.done("2.json"), 15, "2.json")
    assert list(fake.incidents.values()) == [opened]  # 350 did not page
    muted = [e for e in events_of(daemon) if e["action"] == "silenced"]
    assert [(e["actor"], e["incident_key"], e["detail"]["silence_id"]) for e in muted] == [
        ("ada", "codespar-acme-backend-api-build-350", silence_id)]
    daemon.drop("3.json", [build(351, "passed", eid="b3")])
    wait_for(lambda: daemon.done("3.json"), 15, "3.json")
    assert daemon.stop() == 0
    assert opened["status"] == "resolved" and len(fake.incidents) == 1  # the resolve went through
    log = daemon.log.read_text()
    assert "trigger silenced: codespar-acme-backend-api-build-350 (2.json line 1)" in log
    assert "resolve resolved: codespar-acme-backend-api-build-349 (3.json line 1)" in log


def test_when_a_silence_ends_a_repeated_trigger_pages_at_its_next_event_and_not_before(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    config = live_config(fake)
    backend = live_backend(config, str(tmp_path / "state.db"))
    start = time.time()
    backend.state.add_silence(make_silence({"repo": "acme/api"}, created_by="ada", comment="c", starts_at=start - 60,
                                           ends_at=start + 600, created_at=start - 60))
    now = [start]
    dispatcher = Dispatcher(config, backend, clock=lambda: now[0])
    action = TriggerAction("build-failed", "e1", "k-1", "CI red", "high", lambda: Extras({"repo": "acme/api"}, {}, []))
    assert [dispatcher.handle(action)[0].status for _ in range(3)] == [Status.SILENCED] * 3  # repeated, muted
    assert backend.state.get("k-1") is None  # never recorded open, so nothing to deduplicate against later
    now[0] = start + 601  # the silence is over: nothing is sent until the trigger comes again
    assert fake.incidents == {}
    assert dispatcher.handle(action)[0].status is Status.CREATED and len(fake.incidents) == 1
