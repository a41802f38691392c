"""The PostgreSQL state's own behaviour: choosing it from the config, connection errors without the
password, a broken connection opened again, replicas migrating at once. The State API itself is
tested on both backends in tests/test_pagerduty_state.py."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import pg_server as servers
import psycopg
import pytest
from builders import make_config
from pg_server import PgServer

from engine.config import ConfigError
from engine.evaluation.actions import OpenIncident
from engine.pagerduty.migrations import LATEST, MIGRATIONS
from engine.pagerduty.pgstate import PgState, describe
from engine.pagerduty.state import State, StateError
from engine.pagerduty.store import migrate_state, open_state

# The session's PostgreSQL cluster and a fresh schema per test (pytest finds fixtures by module attribute).
pg_server, pg_url = servers.pg_server, servers.pg_url


def incident(key: str) -> OpenIncident:
    return OpenIncident(key, {"kind": "build"}, "rule", "high", f"title {key}", f"id-{key}")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket is closed


def test_state_url_chooses_postgresql_and_the_default_stays_sqlite(pg_url: str, tmp_path: Path) -> None:
    chosen = open_state(make_config(env={"PAGERULES_STATE_URL": pg_url}))
    assert isinstance(chosen, PgState) and chosen.schema_version == LATEST
    chosen.record_open(incident("a"), 1.0, "rules", "create")
    chosen.close()
    sqlite = open_state(make_config(state_path=str(tmp_path / "s.db")))
    assert type(sqlite) is State and sqlite.get("a") is None
    in_file = open_state(make_config(f"state_url: {pg_url}\n"))
    assert isinstance(in_file, PgState) and in_file.get("a") is not None
    override = open_state(make_config(f"state_url: {pg_url}\n"), str(tmp_path / "cli.db"))  # --state wins
    assert type(override) is State


def test_a_state_url_that_is_not_postgresql_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(env={"PAGERULES_STATE_URL": "mysql://ada:hunter2@db/x"})
    assert "PAGERULES_STATE_URL: must be a postgresql:// URL" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(make_config(env={"PAGERULES_STATE_URL": "postgresql://ada:hunter2@db/x"}))


def test_a_server_that_is_down_is_a_clear_error_without_the_password() -> None:
    port = closed_port()
    url = f"postgresql://pagerules:s3cret-Pa55@127.0.0.1:{port}/pagerules_state?sslmode=disable"
    with pytest.raises(StateError) as caught:
        open_state(make_config(env={"PAGERULES_STATE_URL": url}))
    message = str(caught.value)
    assert message.startswith(f"cannot connect to the state database postgresql://pagerules@127.0.0.1:{port}"
                              "/pagerules_state: ")
    assert "Connection refused" in message and "s3cret-Pa55" not in message
    assert caught.value.exit_code == 2


def test_a_password_given_as_a_parameter_is_not_shown_either() -> None:
    shown, password = describe("postgresql://db.example:5433/state?user=ada&password=p%40ss")
    assert (shown, password) == ("postgresql://ada@db.example:5433/state", "p@ss")
    assert describe("postgresql://[not a url")[0] == "postgresql://(a URL that cannot be parsed)"


def test_a_connection_the_server_dropped_is_opened_again(pg_url: str, pg_server: PgServer) -> None:
    state = PgState(pg_url)
    state.record_open(incident("a"), 1.0, "rules", "create")
    pid = state._conn.info.backend_pid
    with psycopg.connect(pg_server.url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StateError, match=r"^state database postgresql://postgres@127\.0\.0\.1:\d+/postgres: "):
        state.get("a")  # the call that finds the connection gone fails (the daemon retries it)
    assert state.get("a") is not None and state._conn.info.backend_pid != pid


def test_replicas_opening_a_new_database_together_apply_each_migration_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    states: list[PgState] = []
    start = threading.Barrier(6)

    def open_one() -> None:
        start.wait()
        try:
            states.append(PgState(pg_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Each migration is its own transaction, so one replica may apply 1 and another 2 and 3: once each, in order.
    assert sorted(v for s in states for v in s.migrated.applied) == list(range(1, LATEST + 1))
    with states[0].transaction() as db:
        assert db.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [
            (v,) for v in range(1, LATEST + 1)]


def test_pagerules_migrate_reports_what_it_applied(pg_url: str, tmp_path: Path) -> None:
    config = make_config(env={"PAGERULES_STATE_URL": pg_url})
    first, second = migrate_state(config), migrate_state(config)
    assert first.line().startswith("state postgresql://postgres@127.0.0.1:")
    every = ", ".join(str(v) for v in range(1, LATEST + 1))
    assert first.line().endswith(f"/postgres: schema version 0 -> {LATEST} (applied {every})")
    assert second.line().endswith(f": schema version {LATEST}, up to date")
    path = tmp_path / "s.db"
    assert migrate_state(config, str(path)).line() == f"state {path}: schema version 0 -> {LATEST} (applied {every})"


def test_two_writers_of_one_incident_take_turns(pg_url: str) -> None:
    states = [PgState(pg_url) for _ in range(4)]
    errors: list[BaseException] = []

    def write(state: PgState, n: int) -> None:
        try:
            for round_ in range(25):
                state.record_open(OpenIncident("k", {"kind": "build", "n": str(n)}, "r", "high", "t", "P"),
                                  float(round_), "rules", "create")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(states)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = states[0].get("k")
    assert stored is not None and stored.opened_at == 0.0
    with states[0].transaction() as db:  # the labels are one writer's, whole: never two writers' mixed
        labels = db.execute("SELECT name, value FROM incident_labels WHERE incident_key = 'k'").fetchall()
    assert sorted(labels) == sorted(stored.labels.items()) and len(labels) == 2


def test_the_test_cluster_listens_on_loopback_only(pg_server: PgServer) -> None:
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        rules = conn.execute("SELECT type, address, auth_method FROM pg_hba_file_rules ORDER BY line_number")
        assert rules.fetchall() == [("local", None, "trust"), ("host", "127.0.0.1", "trust")]


def test_missing_postgresql_binaries_fail_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers.shutil, "which", lambda name, path=None: None)
    monkeypatch.setattr(servers.glob, "glob", lambda pattern: [])
    reason = servers.find_binaries()
    assert isinstance(reason, str) and "install Debian's postgresql package" in reason


def test_a_database_written_by_the_previous_release_gains_silences(pg_url: str) -> None:
    from engine.language.silences import make_silence
    old = PgState(pg_url, MIGRATIONS[:3])
    with old.transaction() as db:  # as that release wrote it (today's writes name later columns)
        db.execute("INSERT INTO incidents (incident_key, incident_id, rule, severity, title, labels, status,"
                   " opened_at, confirmed_at, html_url) VALUES ('a', 'id-a', 'rule', 'high', 't', '{}',"
                   " 'triggered', 1.0, 1.0, NULL)")
    old.close()
    state = PgState(pg_url)
    assert (state.migrated.before, state.migrated.applied) == (3, tuple(range(4, LATEST + 1)))
    assert state.get("a") is not None
    state.add_silence(make_silence({"kind": "build"}, created_by="ada", comment="upgrade", starts_at=1.0,
                                   ends_at=10.0, created_at=1.0, silence_id="s1"))
    replica = PgState(pg_url)
    assert [s.id for s in replica.silences(5.0)] == ["s1"] and replica.silences(10.0) == []
    assert replica.expire_silence("s1", 6.0, "ada").ends_at == 6.0 and state.silences(6.0) == []
