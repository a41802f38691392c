"""The state's silences in a dry run (engine/dryrun/silences.py): `process --dry-run` and `explain` mute
what a live run would, reading the state read-only and only if it is there; a state they cannot read
is one warning, and every event's line still comes out."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pg_server as servers
import pytest
from builders import make_config
from click.testing import CliRunner, Result

from cli import main
from engine.dryrun.silences import StateSilences, state_silences
from engine.language.silences import Silence, make_silence, parse_time
from engine.pagerduty.pgstate import PgState
from engine.pagerduty.state import State

pg_server, pg_url = servers.pg_server, servers.pg_url
KEY = "codespar-acme-api-build-5"
START, END = "2026-06-01T10:00:00Z", "2026-06-01T12:00:00Z"


def silence(silence_id: str = "maint-1", repo: str = "acme/api", start: str = START, end: str = END) -> Silence:
    return make_silence({"repo": repo}, created_by="ada", comment="db upgrade", starts_at=parse_time(start, "s"),
                        ends_at=parse_time(end, "e"), created_at=parse_time(start, "s"), silence_id=silence_id)


def build(eid: str, at: str, status: str = "failed", number: int = 5) -> dict[str, Any]:
    return {"type": "build", "id": eid, "time": f"2026-06-01T{at}Z", "repo": "acme/api", "branch": "main",
            "build_number": number, "status": status}


def dry_run(state: str, *events: dict[str, Any], command: str = "process") -> Result:
    args = [command, "--state", state] + (["--dry-run"] if command == "process" else ["--json"])
    return CliRunner().invoke(main, args, input="".join(json.dumps(e) + "\n" for e in events))


def outcomes(result: Result) -> list[tuple[str, str, str | None]]:
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return [(line["action"], line["status"], line.get("silence_id")) for line in lines]


@pytest.fixture
def state_file(tmp_path: Path) -> Iterator[Path]:
    """A state with one silence, closed again as `silence add` leaves it."""
    path = tmp_path / "state" / "pagerules.db"
    state = State(str(path))
    state.add_silence(silence())
    state.close()
    yield path


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_a_dry_run_mutes_what_the_states_silence_mutes_at_the_events_time_and_lets_the_resolve_through(
        state_file: Path) -> None:
    result = dry_run(str(state_file), build("b1", "09:30:00"), build("b2", "10:30:00"),
                     build("b3", "11:00:00", number=6), build("b4", "11:30:00", status="passed", number=7),
                     build("b5", "12:00:00", number=8))
    assert result.exit_code == 0, result.stderr
    assert outcomes(result) == [("trigger", "planned", None), ("trigger", "silenced", "maint-1"),
                                ("trigger", "silenced", "maint-1"), ("resolve", "planned", None),
                                ("trigger", "planned", None)]  # before, during (open or not), resolve, at its end
    assert "WARNING" not in result.stderr


def test_a_dry_run_writes_nothing_beside_or_in_the_state(state_file: Path) -> None:
    before = listing(state_file.parent)
    assert set(before) == {"pagerules.db"}  # closed cleanly: no write-ahead log is left
    assert outcomes(dry_run(str(state_file), build("b2", "10:30:00"))) == [("trigger", "silenced", "maint-1")]
    assert json.loads(dry_run(str(state_file), build("b2", "10:30:00"), command="explain").stdout)["silenced"]
    assert listing(state_file.parent) == before


def test_a_running_daemons_state_is_read_with_its_write_ahead_log(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    daemon = State(str(path))  # held open, as watch holds it: its newest writes may be in the -wal file only
    try:
        daemon.add_silence(silence("fresh"))
        assert {p.name for p in tmp_path.iterdir()} >= {"live.db-wal", "live.db-shm"}
        assert outcomes(dry_run(str(path), build("b2", "10:30:00"))) == [("trigger", "silenced", "fresh")]
        daemon.add_silence(silence("later", start="2026-06-01T13:00:00Z", end="2026-06-01T14:00:00Z"))
        assert outcomes(dry_run(str(path), build("b6", "13:30:00"))) == [("trigger", "silenced", "later")]
    finally:
        daemon.close()


def test_no_state_is_no_silence_and_none_is_made(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "pagerules.db"
    result = dry_run(str(missing), build("b2", "10:30:00"))
    assert (result.exit_code, outcomes(result)) == (0, [("trigger", "planned", None)])
    assert not missing.parent.exists() and "WARNING" not in result.stderr


def test_a_state_from_before_silences_has_none_and_is_not_migrated(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT, applied_at REAL)")
    db.execute("INSERT INTO schema_version VALUES (3, 'before silences', 0)")
    db.commit()
    db.close()
    result = dry_run(str(old), build("b2", "10:30:00"))
    assert (result.exit_code, outcomes(result)) == (0, [("trigger", "planned", None)])
    assert "WARNING" not in result.stderr
    tables = sqlite3.connect(old).execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("schema_version",)]


def test_a_state_that_cannot_be_read_is_one_warning_naming_it_and_every_line_still_comes_out(tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_text("not a database at all\n" * 100)
    result = dry_run(str(broken), build("b2", "10:30:00"), build("b3", "10:31:00", status="passed", number=6))
    assert result.exit_code == 0
    assert outcomes(result) == [("trigger", "planned", None), ("resolve", "planned", None)]
    [warning] = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert warning.endswith(f"WARNING pagerules: state file {broken}: cannot read its silences (file is not a "
                            "database); the dry run goes on without them")
    assert broken.read_text() == "not a database at all\n" * 100


def test_a_stored_silence_that_no_longer_reads_is_named_and_the_others_still_mute(state_file: Path) -> None:
    db = sqlite3.connect(state_file)
    db.execute("INSERT INTO silences (id, matchers, created_by, comment, starts_at, ends_at, created_at, weekly) "
               "VALUES ('odd', '{\"repo\": {\"regex\": \"(\"}}', 'ada', 'x', 0, 1e10, 0, NULL)")
    db.commit()
    db.close()
    result = dry_run(str(state_file), build("b2", "10:30:00"))
    assert outcomes(result) == [("trigger", "silenced", "maint-1")]
    assert f"state file {state_file}: cannot read silence(s) odd; the dry run does not honour them" in result.stderr


def test_explain_names_the_silence_that_would_mute_a_trigger(state_file: Path) -> None:
    [report] = [json.loads(line) for line in dry_run(str(state_file), build("b2", "10:30:00"),
                                                     command="explain").stdout.splitlines()]
    assert report["silenced"] == [{"incident_key": KEY, "silence_id": "maint-1", "match": {"repo": "acme/api"},
                                   "starts_at": START, "ends_at": END, "weekly": None, "created_by": "ada",
                                   "comment": "db upgrade"}]
    text = CliRunner().invoke(main, ["explain", "--state", str(state_file)],
                              input=json.dumps(build("b2", "10:30:00"))).stdout
    assert f"  silenced: {KEY} by silence maint-1 (repo=acme/api; until {END}; by ada: db upgrade); nothing " \
           "would be sent, a resolve still goes through" in text.splitlines()
    before = CliRunner().invoke(main, ["explain", "--state", str(state_file)],
                                input=json.dumps(build("b1", "09:30:00"))).stdout
    assert "silenced" not in before and "-> trigger planned" in before


def test_postgresql_silences_are_read_in_a_read_only_session(pg_url: str) -> None:
    state = PgState(pg_url)
    try:
        state.add_silence(silence("pg-1"))
    finally:
        state.close()
    found = state_silences(make_config(), pg_url)
    assert ([s.id for s in found.silences], found.warning) == (["pg-1"], None)
    assert outcomes(dry_run(pg_url, build("b2", "10:30:00"))) == [("trigger", "silenced", "pg-1")]


def test_an_unreachable_postgresql_state_is_a_warning_without_its_password() -> None:
    url = "postgresql://ada:s3cret-Pa55@127.0.0.1:1/pagerules?connect_timeout=2"
    found = state_silences(make_config(), url)
    assert found.silences == () and found.warning is not None
    assert found.warning.startswith("state database postgresql://ada@127.0.0.1:1/pagerules: cannot read its "
                                    "silences (")
    result = dry_run(url, build("b2", "10:30:00"))
    assert outcomes(result) == [("trigger", "planned", None)]
    assert "s3cret-Pa55" not in result.stderr + result.stdout and "cannot read its silences" in result.stderr


def test_a_postgresql_database_without_a_state_is_no_silence_and_is_not_migrated(pg_url: str) -> None:
    import psycopg

    assert state_silences(make_config(), pg_url) == StateSilences()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        made = conn.execute("SELECT to_regclass('schema_version'), to_regclass('silences')").fetchone()
    assert made == (None, None)


def test_a_run_with_paging_disabled_says_silenced_too(state_file: Path) -> None:
    """PAGERDUTY_ENABLED=false sends nothing either way; silenced says more (README: gate order)."""
    result = CliRunner(env={"PAGERDUTY_ENABLED": "false"}).invoke(
        main, ["process", "--state", str(state_file)], input=json.dumps(build("b2", "10:30:00")))
    assert outcomes(result) == [("trigger", "silenced", "maint-1")], result.stderr
