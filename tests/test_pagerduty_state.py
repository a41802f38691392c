"""The state, SQLite and PostgreSQL alike: open incidents by key and label, status changes, audit,
transactions, migrations. Tests of one backend's own mechanics (WAL, SQLite's query plans) use SQLite."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_server import PgServer, pg_server  # noqa: F401  (the session's PostgreSQL cluster)

from engine import metrics
from engine.evaluation.actions import OpenIncident
from engine.language.silences import Silence, SilenceError, Weekly, make_silence, make_weekly
from engine.pagerduty.migrations import LATEST, MIGRATIONS, Migration
from engine.pagerduty.records import StoredIncident
from engine.pagerduty.state import State, StateError, StateView

MakeState = Callable[..., State]


def incident(key: str, **labels: str) -> OpenIncident:
    return OpenIncident(key, labels, "rule", "high", f"title {key}", f"id-{key}")


@pytest.fixture(params=["sqlite", "postgresql"])
def make_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeState]:
    """``make_state(name, migrations=...)``: the state called ``name`` (a file, or a PostgreSQL schema); the
    same name twice is two connections to one state."""
    opened: list[State] = []
    schemas: dict[str, str] = {}
    server: PgServer | None = request.getfixturevalue("pg_server") if request.param == "postgresql" else None

    def make(name: str = "state", migrations: tuple[Migration, ...] = MIGRATIONS) -> State:
        if server is None:
            state = State(str(tmp_path / "sub" / f"{name}.db"), migrations)
        else:
            import psycopg

            from engine.pagerduty.pgstate import PgState
            if name not in schemas:
                schemas[name] = f"t_{uuid.uuid4().hex[:12]}"
                with psycopg.connect(server.url(), autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA {schemas[name]}")
            state = PgState(server.url(options=f"-csearch_path%3D{schemas[name]}"), migrations)
        opened.append(state)
        return state
    yield make
    for state in opened:
        state.close()
    if server is not None and schemas:
        import psycopg
        with psycopg.connect(server.url(), autocommit=True) as conn:
            for schema in schemas.values():
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def state(make_state: MakeState) -> State:
    return make_state()


@pytest.fixture
def sqlite_state(tmp_path: Path) -> State:
    return State(str(tmp_path / "sub" / "state.db"))


def test_the_file_and_its_folder_are_created_in_wal_mode(tmp_path: Path, sqlite_state: State) -> None:
    assert (tmp_path / "sub" / "state.db").exists()
    assert sqlite_state._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_open_incidents_are_found_by_key_and_labels(state: State) -> None:
    state.record_open(incident("a", kind="build", repo="r1", branch="main"), 10.0, "rules", "create")
    state.record_open(incident("b", kind="build", repo="r2", branch="main"), 11.0, "rules", "create")
    state.record_open(incident("c", kind="deploy", repo="r1", version="v1"), 12.0, "rules", "create")
    view = StateView(state)
    assert view.get("a").labels == {"kind": "build", "repo": "r1", "branch": "main"}  # type: ignore[union-attr]
    assert [i.incident_key for i in view.select({"kind": ("build",), "repo": ("r1",)})] == ["a"]
    assert [i.incident_key for i in view.select({"kind": ("build", "deploy"), "repo": ("r1",)})] == ["a", "c"]
    assert view.select({"kind": ("build",), "repo": ("r3",)}) == []
    assert view.any_with("kind", ("deploy",)) and not view.any_with("kind", ("sentry",))
    assert [i.incident_key for i in state.open_incidents(repo="r1")] == ["a", "c"]


def test_resolved_leaves_the_open_set_and_acknowledged_stays(state: State) -> None:
    state.record_open(incident("a", kind="build"), 10.0, "rules", "create")
    state.record_open(incident("b", kind="build"), 10.0, "rules", "create")
    state.record_status("a", "resolved", 20.0, "rules", "id-a")
    state.record_status("b", "acknowledged", 21.0, "cli:ada", "id-b")
    assert state.get("a") is None and StateView(state).select({"kind": ("build",)})[0].incident_key == "b"
    assert state.get("b").status == "acknowledged"  # type: ignore[union-attr]
    assert [(e["actor"], e["action"], e["incident_key"]) for e in state.recent_audit()] == [
        ("cli:ada", "acknowledged", "b"), ("rules", "resolved", "a"), ("rules", "create", "b"),
        ("rules", "create", "a")]


def test_reopening_keeps_the_first_open_time_and_refreshes_confirmation(state: State) -> None:
    state.record_open(incident("a"), 10.0, "rules", "create")
    state.record_open(incident("a"), 50.0, "rules", "deduplicate")
    stored = state.get("a")
    assert stored is not None and (stored.opened_at, stored.confirmed_at) == (10.0, 50.0)


def test_a_failed_transaction_leaves_nothing_behind(state: State) -> None:
    with pytest.raises(RuntimeError), state.transaction() as db:
        db.execute("INSERT INTO audit (at, actor, action) VALUES (1, 'x', 'y')")
        raise RuntimeError("crash in the middle")
    assert state.recent_audit() == []


def test_two_connections_see_each_others_writes(make_state: MakeState) -> None:
    first, second = make_state("s"), make_state("s")
    first.record_open(incident("a"), 1.0, "rules", "create")
    assert second.get("a") is not None


def test_an_unusable_state_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StateError) as caught:
        State(str(tmp_path / "file" / "s.db"))
    assert str(caught.value) == f"cannot open the state file {tmp_path}/file/s.db: File exists"
    assert caught.value.exit_code == 2


# Open incidents at scale (issue 17): every query is an index search, and a selector's cost follows its
# most selective label, not the number open.

# The schema as the previous release wrote it (before incidents_opened), to check an old file still opens.
PREVIOUS_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    incident_key TEXT PRIMARY KEY,
    incident_id  TEXT,
    rule         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    title        TEXT NOT NULL,
    labels       TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'triggered',
    opened_at    REAL NOT NULL,
    confirmed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_labels (
    name TEXT NOT NULL, value TEXT NOT NULL, incident_key TEXT NOT NULL,
    PRIMARY KEY (name, value, incident_key)
);
CREATE INDEX IF NOT EXISTS incident_labels_key ON incident_labels (incident_key);
CREATE TABLE IF NOT EXISTS files_in_progress (
    file     TEXT PRIMARY KEY,
    units    INTEGER NOT NULL,
    problems TEXT NOT NULL,
    at       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    incident_key TEXT,
    incident_id  TEXT,
    detail       TEXT NOT NULL DEFAULT '{}'
);
"""
BUILD = {"kind": ("build",), "repo": ("acme/rare",), "branch": ("main",)}


def seed(state: State, count: int) -> None:
    """``count`` open build incidents on main over 50 repos, plus one on acme/rare."""
    state.record_open_many((incident(f"b{n}", kind="build", repo=f"acme/r{n % 50}", branch="main")
                            for n in range(count)), 5.0, "test", "seed")
    state.record_open(incident("rare", kind="build", repo="acme/rare", branch="main"), 6.0, "rules", "create")


def exercise(state: State) -> None:
    """Every query a run, the CLI and the web app make."""
    view = StateView(state)
    view.get("b1"), view.get("missing")
    for name, values in BUILD.items():
        view.any_with(name, values)
    view.any_with("kind", ())
    view.select(BUILD), view.select({"kind": ("build", "deploy"), "repo": ("acme/r1", "acme/rare")})
    view.select({"repo": ("acme/r2",)}), view.select({})
    state.keys_with("repo", ("acme/r3",))
    state.open_incidents(), state.open_incidents(limit=5), state.open_incidents("acme/r4", limit=2)
    state.record_open(incident("b2", kind="build", repo="acme/r2", branch="main"), 7.0, "rules", "deduplicate")
    state.record_status("b3", "acknowledged", 8.0, "cli:ada", "id-b3")
    state.record_status("b4", "resolved", 9.0, "rules", "id-b4")


def test_every_incident_query_is_an_index_search(sqlite_state: State) -> None:
    state = sqlite_state
    seed(state, 200)
    statements: list[str] = []
    state._db.set_trace_callback(statements.append)
    exercise(state)
    state._db.set_trace_callback(None)
    queries = [s for s in statements if s.split()[0].upper() in ("SELECT", "DELETE", "UPDATE", "INSERT")]
    assert any("CROSS JOIN incident_labels" in q for q in queries)  # the selector's one query was seen
    for query in queries:
        plan = [row[3] for row in state._db.execute(f"EXPLAIN QUERY PLAN {query}")]
        listing = query.startswith("SELECT incident_key") and "FROM incidents ORDER BY opened_at" in query
        if listing:  # the full list, oldest first: read in index order, never sorted per call
            assert plan == ["SCAN incidents USING INDEX incidents_opened"], (query, plan)
            continue
        scans = [step for step in plan if step.startswith(("SCAN incidents", "SCAN incident_labels"))
                 or (step.startswith("SCAN") and "incident" in step)]
        assert not scans, (query, plan)


def vm_steps(state: State, work: Any) -> int:
    """SQLite virtual-machine steps ``work`` costs: a count that does not depend on the machine's speed."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0
    state._db.set_progress_handler(tick, 1)
    try:
        work()
    finally:
        state._db.set_progress_handler(None, 1)
    return steps[0]


def resolve_rare(view: StateView) -> None:
    """What a recovery does: a cheap first cut per label, then the selection."""
    assert all(view.any_with(name, values) for name, values in BUILD.items())
    assert [i.incident_key for i in view.select(BUILD)] == ["rare"]


def test_lookups_and_selectors_cost_the_same_with_5000_open_as_with_100(tmp_path: Path) -> None:
    small, large = State(str(tmp_path / "small.db")), State(str(tmp_path / "large.db"))
    seed(small, 100)
    seed(large, 5000)
    for work in (lambda view: view.get("b7"), resolve_rare):
        cost = [vm_steps(s, lambda s=s, work=work: work(StateView(s))) for s in (small, large)]  # type: ignore[misc]
        assert cost[1] <= cost[0] * 1.2 + 10, cost


def test_select_agrees_with_a_plain_filter_whatever_label_it_walks(monkeypatch: pytest.MonkeyPatch,
                                                                  make_state: MakeState) -> None:
    import random

    from engine.pagerduty import state as module
    monkeypatch.setattr(module, "PROBE_FIRST", 2)  # small bounds, so the probe grows and stops in a test
    monkeypatch.setattr(module, "PROBE_MAX", 16)
    rng = random.Random(17)
    state = make_state("s")
    choices = {"kind": ["build", "deploy"], "repo": [f"r{n}" for n in range(6)], "branch": ["main", "dev", "x"]}
    opened = {f"k{n}": {name: rng.choice(values) for name, values in choices.items() if rng.random() < 0.9}
              for n in range(120)}
    state.record_open_many((incident(key, **labels) for key, labels in opened.items()), 1.0, "test", "seed")
    for _ in range(300):
        wanted = {name: tuple(rng.sample(values, rng.randint(0, 2)) + rng.sample(values, rng.randint(0, 1)))
                  for name, values in choices.items() if rng.random() < 0.6}
        expected = sorted(key for key, labels in opened.items() if wanted and all(
            labels.get(name) in values for name, values in wanted.items()))
        assert [i.incident_key for i in state.select(wanted)] == expected, wanted
        for name, values in wanted.items():
            assert state.has_label(name, values) == any(labels.get(name) in values for labels in opened.values())


def test_the_open_list_is_oldest_first_by_repo_and_limited(state: State) -> None:
    state.record_open(incident("c", repo="r1"), 30.0, "rules", "create")
    state.record_open(incident("a", repo="r1"), 10.0, "rules", "create")
    state.record_open(incident("b", repo="r2"), 10.0, "rules", "create")
    assert [i.incident_key for i in state.open_incidents()] == ["a", "b", "c"]
    assert [i.incident_key for i in state.open_incidents(limit=2)] == ["a", "b"]
    assert [i.incident_key for i in state.open_incidents("r1")] == ["a", "c"]
    assert [i.incident_key for i in state.open_incidents("r1", limit=1)] == ["a"]
    assert state.open_incidents("r9") == []


def test_many_incidents_are_recorded_in_one_transaction(state: State) -> None:
    with pytest.raises(AttributeError):  # the second incident is broken: the first is rolled back with it
        state.record_open_many([incident("a", kind="build"), None], 1.0, "bench", "seed")  # type: ignore[list-item]
    assert state.get("a") is None and state.recent_audit() == []
    assert state.record_open_many((incident(k, kind="build") for k in "xyz"), 2.0, "bench", "seed") == 3
    assert state.keys_with("kind", ("build",)) == {"x", "y", "z"}
    assert [e["action"] for e in state.recent_audit()] == ["seed"] * 3


def test_a_state_file_from_the_previous_release_opens_and_gets_the_new_index(tmp_path: Path) -> None:
    import sqlite3
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(PREVIOUS_SCHEMA)
    db.execute("INSERT INTO incidents VALUES ('k1', 'P1', 'build-failed', 'high', 't', ?, 'acknowledged', 3.0, 4.0)",
               ('{"kind": "build", "repo": "acme/a"}',))
    db.executemany("INSERT INTO incident_labels VALUES (?, ?, 'k1')", [("kind", "build"), ("repo", "acme/a")])
    db.commit()
    db.close()
    state = State(str(path))
    indexes = {r[0] for r in state._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "incidents_opened" in indexes
    found = state.select({"kind": ("build",), "repo": ("acme/a",)})
    assert [(i.incident_key, i.incident_id, i.status, i.opened_at) for i in found] == [
        ("k1", "P1", "acknowledged", 3.0)]
    assert [i.incident_key for i in state.open_incidents("acme/a")] == ["k1"]
    state.record_status("k1", "resolved", 5.0, "rules", "P1")
    assert state.select({"kind": ("build",)}) == [] and not state.has_label("kind", ("build",))


# Migrations (issue 18): the schema is versioned, each migration applied once, in order, on open.

# The schema as the last version before schema_version wrote it: the previous release's plus the incidents_opened index.
_LABELS_INDEX = "CREATE INDEX IF NOT EXISTS incident_labels_key ON incident_labels (incident_key);\n"
RELEASE_0_1_SCHEMA = PREVIOUS_SCHEMA.replace(_LABELS_INDEX, _LABELS_INDEX + (
    "CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_at, incident_key);\n"
    "DROP TABLE IF EXISTS events_done;\n"))
assert RELEASE_0_1_SCHEMA != PREVIOUS_SCHEMA


def versions(state: State) -> list[int]:
    with state.transaction() as db:
        return [r[0] for r in db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]


def test_a_state_file_written_before_versioning_is_brought_to_the_current_version(tmp_path: Path) -> None:
    import sqlite3
    path = tmp_path / "release-0.1.db"
    db = sqlite3.connect(path)
    db.executescript(RELEASE_0_1_SCHEMA)
    db.execute("INSERT INTO incidents VALUES ('k1', 'P1', 'build-failed', 'high', 't', ?, 'triggered', 3.0, 4.0)",
               ('{"kind": "build"}',))
    db.execute("INSERT INTO incident_labels VALUES ('kind', 'build', 'k1')")
    db.execute("INSERT INTO audit (at, actor, action, incident_key) VALUES (3.0, 'rules', 'create', 'k1')")
    db.execute("INSERT INTO files_in_progress VALUES ('/events/a.jsonl', 2, '[]', 3.5)")
    db.commit()
    db.close()
    state = State(str(path))
    m = state.migrated
    assert (m.before, m.after, m.applied) == (0, LATEST, tuple(range(1, LATEST + 1)))
    assert versions(state) == list(range(1, LATEST + 1))
    assert [i.incident_key for i in state.select({"kind": ("build",)})] == ["k1"]
    assert state.get("k1").html_url is None  # type: ignore[union-attr]  # kept from before: no page known
    assert state.progress("/events/a.jsonl") == (2, [])
    state.audit(6.0, "rules", "note")  # the old AUTOINCREMENT ids go on
    assert [e["action"] for e in state.recent_audit()] == ["note", "create"]
    state.close()
    again = State(str(path))
    assert again.migrated.applied == () and versions(again) == list(range(1, LATEST + 1))


def test_migrations_apply_in_order_each_once(make_state: MakeState) -> None:
    n = LATEST + 1
    extra = (Migration(n, "a notes table", ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",),
                       ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",)),
             Migration(n + 1, "a row in it", ("INSERT INTO notes VALUES (1, 'four')",),
                       ("INSERT INTO notes VALUES (1, 'four')",)))
    first = make_state("m", MIGRATIONS[:1])
    assert first.migrated.applied == (1,) and versions(first) == [1]
    second = make_state("m", MIGRATIONS + extra)
    assert (second.migrated.before, second.migrated.after, second.migrated.applied) == \
        (1, n + 1, tuple(range(2, n + 2)))
    third = make_state("m", MIGRATIONS + extra)  # applied again, the INSERT and CREATE TABLE would fail
    assert third.migrated.applied == () and versions(third) == list(range(1, n + 2))
    with third.transaction() as db:
        assert db.execute("SELECT body FROM notes").fetchall() == [("four",)]


def test_a_failed_migration_is_rolled_back_and_applied_by_the_next_open(make_state: MakeState) -> None:
    broken = Migration(LATEST + 1, "half done", ("CREATE TABLE notes (id INTEGER)", "INSERT INTO nowhere VALUES (1)"),
                       ("CREATE TABLE notes (id INTEGER)", "INSERT INTO nowhere VALUES (1)"))
    with pytest.raises(StateError, match="nowhere"):
        make_state("f", (*MIGRATIONS, broken))
    state = make_state("f")
    assert versions(state) == list(range(1, LATEST + 1))
    with state.transaction() as db:  # the broken migration's table went with it: creating it again works
        db.execute("CREATE TABLE notes (id INTEGER)")


def test_a_schema_newer_than_this_release_is_refused_and_left_alone(make_state: MakeState) -> None:
    newer = Migration(LATEST + 1, "from the future", ("CREATE TABLE future (x TEXT)",),
                      ("CREATE TABLE future (x TEXT)",))
    written = make_state("n", (*MIGRATIONS, newer))
    written.record_open(incident("a", kind="build"), 1.0, "rules", "create")
    with pytest.raises(StateError) as caught:
        make_state("n")
    assert f"has schema version {LATEST + 1}, newer than this pagerules knows ({LATEST})" in str(caught.value)
    assert caught.value.exit_code == 2
    assert versions(written) == list(range(1, LATEST + 2)) and written.get("a") is not None


def test_a_state_at_version_2_gains_the_html_url_column_and_keeps_its_incidents(make_state: MakeState) -> None:
    old = make_state("v2", MIGRATIONS[:2])
    with old.transaction() as db:  # written as the previous release wrote it: no html_url column
        db.execute("INSERT INTO incidents (incident_key, incident_id, rule, severity, title, labels, status,"
                   " opened_at, confirmed_at) VALUES ('a', 'id-a', 'rule', 'high', 't', ?, 'triggered', 1.0, 1.0)",
                   ('{"kind": "build"}',))
        db.execute("INSERT INTO incident_labels VALUES ('kind', 'build', 'a')")
    assert versions(old) == [1, 2]
    state = make_state("v2")
    m = state.migrated
    assert (m.before, m.after, m.applied) == (2, LATEST, tuple(range(3, LATEST + 1)))
    kept = state.get("a")
    assert kept is not None and (kept.incident_id, kept.html_url) == ("id-a", None)
    url = "https://acme.pagerduty.com/incidents/PABC123"
    state.record_open(StoredIncident("b", {"kind": "build"}, "rule", "high", "t", "PABC123", html_url=url),
                      2.0, "rules", "create")
    assert state.get("b").html_url == url  # type: ignore[union-attr]
    assert [i.html_url for i in state.open_incidents()] == [None, url]
    assert [i.html_url for i in state.select({"kind": ("build",)})] == [None, url]


def test_html_url_follows_the_latest_write_of_the_incident(state: State) -> None:
    url = "https://acme.pagerduty.com/incidents/P1"
    state.record_open(StoredIncident("k", {"repo": "r"}, "rule", "high", "t", "P1", html_url=url), 1.0, "rules",
                      "create")
    state.record_status("k", "acknowledged", 2.0, "rules", "P1")
    assert state.get("k").html_url == url  # type: ignore[union-attr]  # a status change keeps it
    state.record_open(StoredIncident("k", {"repo": "r"}, "rule", "high", "t", "P2", html_url=url + "2"), 3.0,
                      "rules", "create")
    assert (state.get("k").incident_id, state.get("k").html_url) == ("P2", url + "2")  # type: ignore[union-attr]
    state.record_open(incident("k", repo="r"), 4.0, "rules", "create")  # an OpenIncident carries no page
    assert state.get("k").html_url is None  # type: ignore[union-attr]


def test_a_state_at_version_3_gains_silences_and_keeps_its_incidents(make_state: MakeState) -> None:
    old = make_state("v3", MIGRATIONS[:3])
    url = "https://acme.pagerduty.com/incidents/PABC123"
    with old.transaction() as db:  # as that release wrote it (today's writes name later columns)
        db.execute("INSERT INTO incidents (incident_key, incident_id, rule, severity, title, labels, status,"
                   " opened_at, confirmed_at, html_url) VALUES ('a', 'PABC123', 'rule', 'high', 't', ?,"
                   " 'triggered', 1.0, 1.0, ?)", ('{"kind": "build"}', url))
    assert versions(old) == [1, 2, 3]
    state = make_state("v3")
    m = state.migrated
    assert (m.before, m.after, m.applied) == (3, LATEST, tuple(range(4, LATEST + 1)))
    assert state.get("a").html_url == url and state.silences(1.0) == []  # type: ignore[union-attr]
    state.add_silence(make_silence({"kind": "build"}, created_by="ada", comment="upgrade", starts_at=1.0,
                                   ends_at=10.0, created_at=1.0, silence_id="s1"))
    assert [s.id for s in make_state("v3").silences(2.0)] == ["s1"]  # a second connection sees it


# Silences (issue 15): stored, listed active or all, expired now; each change audited.

def silence(silence_id: str, starts_at: float, ends_at: float, weekly: Weekly | None = None, **match: Any
            ) -> Silence:
    return make_silence(match or {"repo": "acme/api"}, created_by="ada", comment=f"maintenance {silence_id}",
                        starts_at=starts_at, ends_at=ends_at, created_at=starts_at - 1, weekly=weekly,
                        silence_id=silence_id)


def test_silences_are_stored_listed_and_expired(make_state: MakeState) -> None:
    state = make_state("s")
    window = make_weekly("sat,sun", "00:00-24:00", "Europe/Berlin")
    state.add_silence(silence("later", 200.0, 300.0, repo={"regex": "^acme/"}))
    state.add_silence(silence("now", 100.0, 150.0, weekly=window))
    state.add_silence(silence("over", 10.0, 20.0))
    assert [s.id for s in state.silences(120.0)] == ["now", "later"]  # not ended, soonest first
    assert [s.id for s in state.silences(120.0, include_ended=True)] == ["later", "now", "over"]  # newest first
    back = state.get_silence("later")
    assert back is not None and back.matches({"repo": "acme/web"}) and not back.matches({"repo": "other/x"})
    assert state.get_silence("now") == silence("now", 100.0, 150.0, weekly=window)
    expired = state.expire_silence("later", 130.0, "cli:bob")  # not started yet: ends before it begins
    assert (expired.starts_at, expired.ends_at) == (130.0, 130.0)
    assert [s.id for s in make_state("s").silences(130.0)] == ["now"]
    audit = state.recent_audit()
    assert [(e["actor"], e["action"], e["detail"]["silence_id"]) for e in audit] == [
        ("cli:bob", "silence_expire", "later"), ("ada", "silence", "over"), ("ada", "silence", "now"),
        ("ada", "silence", "later")]
    assert audit[2]["detail"] == {"silence_id": "now", "match": {"repo": "acme/api"}, "comment": "maintenance now",
                                  "starts_at": "1970-01-01T00:01:40Z", "ends_at": "1970-01-01T00:02:30Z",
                                  "weekly": "sat,sun 00:00-24:00 Europe/Berlin"}


def test_expiring_an_unknown_or_ended_silence_is_a_clear_error(state: State) -> None:
    state.add_silence(silence("s1", 10.0, 20.0))
    with pytest.raises(SilenceError, match=r"^id: no silence 'nope' \(pagerules silence list --all shows them\)$"):
        state.expire_silence("nope", 15.0, "ada")
    with pytest.raises(SilenceError, match=r"^id: silence s1 already ended at 1970-01-01T00:00:20Z$"):
        state.expire_silence("s1", 25.0, "ada")
    assert [e["action"] for e in state.recent_audit()] == ["silence"]  # nothing written by the refusals


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_view_reads_silences_at_most_once_a_second_and_sees_another_processes_within_it(
        make_state: MakeState) -> None:
    daemon, other = make_state("c"), make_state("c")
    clock = Clock(100.0)
    view = StateView(daemon, clock)
    reads: list[float] = []
    real = daemon.silences
    daemon.silences = lambda at, include_ended=False: reads.append(at) or real(at, include_ended)  # type: ignore
    assert view.active_silences(100.0) == () and reads == [100.0]
    other.add_silence(silence("s1", 50.0, 500.0))
    clock.now = 100.9
    assert view.active_silences(100.9) == () and reads == [100.0]  # the read of 0.9 s ago still stands
    clock.now = 101.0
    assert [s.id for s in view.active_silences(101.0)] == ["s1"] and reads == [100.0, 101.0]
    assert metrics.value("pagerules_silences_active") == 1  # each read tells the gauge
    assert view.active_silences(600.0) == ()  # past its end: filtered without a read
    daemon.expire_silence("s1", 101.2, "ada")  # this process's own change is seen at once
    assert view.active_silences(101.2) == () and len(reads) == 3


def test_a_muted_trigger_is_audited_as_the_silences_creator(state: State) -> None:
    from engine.evaluation.actions import TriggerAction
    made = silence("s1", 10.0, 20.0)
    StateView(state).record_silenced(TriggerAction("build-failed", "e1", "k1", "CI red", "high"), made, 12.0)
    entry = state.recent_audit()[0]
    assert (entry["at"], entry["actor"], entry["action"], entry["incident_key"]) == (12.0, "ada", "silenced", "k1")
    assert entry["detail"] == {"silence_id": "s1", "rule": "build-failed", "event_id": "e1", "title": "CI red"}


def test_reading_active_silences_walks_the_index_and_not_the_ended(tmp_path: Path) -> None:
    small, large = State(str(tmp_path / "small.db")), State(str(tmp_path / "large.db"))
    for state, ended in ((small, 10), (large, 2000)):
        for n in range(ended):
            state.add_silence(silence(f"old{n}", 1.0, 2.0))
        state.add_silence(silence("live", 1.0, 1e10))
    plan = [row[3] for row in small._db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM silences WHERE ends_at > ? ORDER BY starts_at, id", (5.0,))]
    assert any("USING INDEX silences_ending" in step for step in plan), plan
    cost = [vm_steps(s, lambda s=s: s.silences(5.0)) for s in (small, large)]  # type: ignore[misc]
    assert cost[1] <= cost[0] * 1.2 + 10, cost


# ---- pending triggers (for:) -------------------------------------------------------------------
def held(key: str, since: float = 100.0, hold: float = 600.0) -> Any:
    from engine.evaluation.actions import PendingTrigger
    return PendingTrigger(key, "deploy-for", f"title {key}", "high", {"repo": "acme/api"}, {"ratio": "2.5"},
                          ({"href": "https://ci.example.com/1", "text": "CI"},), "e1", since, since + hold)


def test_a_pending_trigger_is_kept_across_a_reopen_and_dropped_once(make_state: MakeState) -> None:
    state = make_state()
    first = held("k1")
    assert state.hold_pending(first) == first
    assert state.hold_pending(held("k1", since=500.0)) == first  # held already: the first hold stands
    again = make_state()  # another process (a restart) sees it
    assert again.pending("k1") == first and again.pending("nope") is None
    assert [p.incident_key for p in again.due_pending(699.0)] == [] and again.due_pending(700.0) == [first]
    assert again.forget_pending("k1", 700.0, "paged") is True
    assert state.forget_pending("k1", 700.0, "paged") is False  # a second worker does not page it too
    actions = [(r["action"], r["incident_key"]) for r in state.recent_audit()]
    assert actions[:2] == [("pending_paged", "k1"), ("pending", "k1")]


def test_due_pending_triggers_come_soonest_first_and_the_due_query_uses_its_index(sqlite_state: State) -> None:
    state = sqlite_state
    for n in range(50):
        state.hold_pending(held(f"k{n:02}", since=float(1000 - n)))
    assert [p.incident_key for p in state.due_pending(1600.0 - 47, limit=3)] == ["k49", "k48", "k47"]
    statements: list[str] = []
    state._db.set_trace_callback(statements.append)
    state.due_pending(0.0)
    state._db.set_trace_callback(None)
    query = next(s for s in statements if s.startswith("SELECT"))
    plan = [row[3] for row in state._db.execute(f"EXPLAIN QUERY PLAN {query}")]
    assert any("USING INDEX pending_triggers_due" in step for step in plan), plan


def test_the_state_view_holds_and_cancels_through_the_state(make_state: MakeState) -> None:
    view = StateView(make_state())
    assert view.pending_hold(held("k1")).incident_key == "k1" and view.pending_get("k1") is not None
    assert view.pending_forget("k1", 200.0, "cancelled") and view.pending_get("k1") is None
    assert view.state.recent_audit(1)[0]["action"] == "pending_cancelled"


def test_a_recovery_selecting_labels_finds_a_held_trigger_through_the_view(make_state: MakeState) -> None:
    view = StateView(make_state())
    assert view.pending_any() is False
    view.pending_hold(held("k1"))
    assert view.pending_any() is True
    assert view.pending_keys({"repo": ("acme/api", "acme/web")}) == ["k1"]
    assert view.pending_keys({"repo": ("acme/web",)}) == [] and view.pending_keys({}) == []


# Repeat control and flap control (migration 7): resolves by hand, opens, held resolves; both backends.
def paged(key: str, opened_at: float = 100.0, renotify: float | None = 3600.0) -> StoredIncident:
    return StoredIncident(key, {"repo": "acme/api", "kind": "main-red"}, "main-red", "high", f"title {key}",
                          f"id-{key}", opened_at=opened_at, renotify=renotify)


def test_a_resolve_by_hand_is_kept_while_its_wait_matters_and_a_page_forgets_it(make_state: MakeState) -> None:
    state = make_state()
    state.record_open(paged("k1", renotify=3600.0), 100.0, "rules", "create")
    stored = state.get("k1")
    assert stored is not None and stored.renotify == 3600.0  # the rule's renotify: travels with the incident
    state.record_status("k1", "resolved", 200.0, "reconcile", "id-k1")
    assert state.remember_hand_resolved(stored, 200.0, "reconcile")
    hand = make_state().hand_resolved("k1")  # another process sees it
    assert hand is not None and (hand.paged_at, hand.resolved_at, dict(hand.labels)) == \
        (100.0, 200.0, {"repo": "acme/api", "kind": "main-red"})
    assert StateView(state).pending_any() and StateView(state).pending_keys({"kind": ("main-red",)}) == ["k1"]
    assert not state.remember_hand_resolved(paged("k2", renotify=None), 200.0, "reconcile")  # no renotify: nothing
    assert not state.remember_hand_resolved(paged("k3", renotify=50.0), 200.0, "reconcile")  # its wait is over
    state.record_open(paged("k1"), 300.0, "rules", "create")  # paging again forgets it
    assert state.hand_resolved("k1") is None and not StateView(state).pending_any()
    state.remember_hand_resolved(paged("k4", opened_at=100.0, renotify=200.0), 150.0, "cli")
    assert state.forget_hand_resolved("k4", 160.0, "recovered") and not state.forget_hand_resolved("k4", 161.0, "x")
    assert state.recent_audit(1)[0]["action"] == "hand_resolved_recovered"
    state.remember_hand_resolved(paged("k5", opened_at=100.0, renotify=200.0), 150.0, "cli")
    state.remember_hand_resolved(paged("k6", opened_at=1000.0), 1000.0, "cli")  # past k5's wait: k5 goes
    assert state.hand_resolved("k5") is None and state.hand_resolved("k6") is not None


def test_opens_are_counted_within_the_window_across_incidents(make_state: MakeState) -> None:
    from engine.language.model import Flap
    state = make_state()
    flap = Flap(3, 600.0)
    assert state.flap_count("k1", 0.0) is None
    assert [state.flap_opened("k1", at, flap) for at in (100.0, 300.0, 500.0, 800.0)] == [1, 2, 3, 3]
    assert make_state().flap_count("k1", 850.0) == (3, flap)  # 300, 500, 800: 100 fell out of the window
    assert state.flap_count("k1", 1250.0) == (1, flap)
    state.flap_opened("k2", 2000.0, flap)  # a later write drops k1, whose window has passed
    assert state.flap_count("k1", 2000.0) is None and state.flap_count("k2", 2000.0) == (1, flap)


def test_a_held_resolve_is_kept_across_a_reopen_released_once_and_gone_with_its_incident(make_state: MakeState
                                                                                         ) -> None:
    from engine.evaluation.actions import HeldResolve
    state = make_state()
    assert not StateView(state).resolves_any()
    first = HeldResolve("k1", "main-green", {"id": "p3"}, "main is green again", 100.0, 700.0, 3)
    assert state.hold_resolve(first) == first
    assert StateView(make_state()).resolves_any()  # another process sees a resolve held
    assert state.hold_resolve(HeldResolve("k1", "other", "e", "m", 200.0, 800.0, 4)) == first  # the first stands
    assert make_state().held_resolve("k1") == first
    state.hold_resolve(HeldResolve("k2", "main-green", "e2", "m", 50.0, 650.0, 3))
    assert [h.incident_key for h in state.due_resolves(700.0)] == ["k2", "k1"] and state.due_resolves(600.0) == []
    assert state.forget_held_resolve("k1", 700.0, "released") and not make_state().forget_held_resolve("k1", 701.0, "x")
    assert [r["action"] for r in state.recent_audit(4)][:2] == ["flapping_released", "flapping"]
    state.record_open(incident("k2"), 60.0, "rules", "create")
    state.record_status("k2", "resolved", 70.0, "reconcile", "id-k2")  # closed by hand: the hold has nothing to do
    assert state.held_resolve("k2") is None


def test_a_state_at_version_6_gains_repeat_control_and_keeps_its_holds(make_state: MakeState) -> None:
    old = make_state("v6", MIGRATIONS[:6])
    with old.transaction() as db:  # the rows the version-6 release wrote, in its columns
        db.execute("INSERT INTO pending_triggers (incident_key, rule, title, severity, labels, details, links,"
                   " event_id, held_at, due_at) VALUES ('k1', 'deploy-for', 't', 'high', '{}', '{}', '[]', '\"e1\"',"
                   " 100.0, 700.0)")
        db.execute("INSERT INTO incidents (incident_key, incident_id, rule, severity, title, labels, status,"
                   " opened_at, confirmed_at, html_url) VALUES ('a', 'P1', 'rule', 'high', 't', '{}',"
                   " 'triggered', 1.0, 1.0, NULL)")
    state = make_state("v6")
    assert (state.migrated.before, state.migrated.applied) == (6, tuple(range(7, LATEST + 1)))
    stored = state.get("a")
    assert stored is not None and stored.renotify is None
    pending = state.pending("k1")
    assert pending is not None and (pending.until, pending.renotify, pending.flap) == (700.0, None, None)
    assert state.hand_resolved("a") is None and state.due_resolves(1e12) == []


@pytest.mark.parametrize("version", range(1, LATEST))
def test_a_state_written_at_any_earlier_version_opens_with_its_incidents_and_audit(make_state: MakeState,
                                                                                   version: int) -> None:
    """Whichever release wrote it, its open incidents stay open (a lost one is a recovery never resolved)."""
    old = make_state("old", MIGRATIONS[:version])
    with old.transaction() as db:  # in migration 1's columns, which every later version keeps
        db.execute("INSERT INTO incidents (incident_key, incident_id, rule, severity, title, labels, status,"
                   " opened_at, confirmed_at) VALUES ('a', 'P1', 'rule', 'high', 't', ?, 'triggered', 1.0, 1.0)",
                   ('{"repo": "acme/api"}',))
        db.execute("INSERT INTO incident_labels VALUES ('repo', 'acme/api', 'a')")
        db.execute("INSERT INTO audit (at, actor, action, incident_key, incident_id) "
                   "VALUES (1.0, 'rules', 'create', 'a', 'P1')")
    state = make_state("old")
    assert (state.migrated.before, state.migrated.applied) == (version, tuple(range(version + 1, LATEST + 1)))
    assert [i.incident_key for i in state.select({"repo": ("acme/api",)})] == ["a"]
    assert [(e["action"], e["incident_key"]) for e in state.recent_audit()] == [("create", "a")]
    state.record_open(incident("b", repo="acme/api"), 2.0, "rules", "create")  # and it takes new writes
    assert sorted(i.incident_key for i in state.open_incidents()) == ["a", "b"]


def test_a_resolve_by_hand_is_remembered_only_by_the_call_that_removed_its_row(make_state: MakeState) -> None:
    state = make_state()
    state.record_open(paged("k1"), 100.0, "rules", "create")
    known = state.get("k1")
    assert known is not None
    assert state.record_status("k1", "resolved", 150.0, "rules", "id-k1")  # a rule's recovery, first
    assert not make_state().record_status("k1", "resolved", 160.0, "reconcile", "id-k1", by_hand=known)
    assert state.hand_resolved("k1") is None and state.recent_audit(1)[0]["action"] == "resolved"  # nothing written
    state.record_open(paged("k1"), 200.0, "rules", "create")  # a newer incident, same id here: the row is removed
    assert state.record_status("k1", "resolved", 210.0, "reconcile", "id-k1", by_hand=known)
    assert state.hand_resolved("k1") is not None
    state.record_open(StoredIncident("k2", {}, "r", "high", "t", "P2", renotify=60.0), 300.0, "rules", "create")
    assert not state.record_status("k2", "resolved", 310.0, "rules", "P1")  # an older incident of the key
    assert state.get("k2") is not None
    state.record_open(StoredIncident("k3", {}, "r", "high", "t", None), 300.0, "rules", "deduplicate")
    assert state.record_status("k3", "resolved", 310.0, "rules", "P3")  # its id was never learnt: removed
    # the other order: reconcile recorded the hand resolve while the recovery was under way; its record forgets it
    assert not state.record_status("k1", "resolved", 220.0, "rules", "id-k1")
    assert state.hand_resolved("k1") is None
    assert [r["action"] for r in state.recent_audit(2)] == ["hand_resolved_recovered", "resolved"]


def test_a_pending_trigger_keeps_its_rules_renotify_and_flap(make_state: MakeState) -> None:
    from dataclasses import replace

    from engine.language.model import Flap
    state = make_state()
    state.hold_pending(replace(held("k1"), renotify=3600.0, flap=Flap(3, 1800.0)))
    state.hold_pending(held("k2"))
    got = make_state().pending("k1")
    assert got is not None and (got.renotify, got.flap) == (3600.0, Flap(3, 1800.0))
    assert (got.action().renotify, got.action().flap) == (3600.0, Flap(3, 1800.0))  # the wake-up's page keeps them
    plain = state.pending("k2")
    assert plain is not None and (plain.renotify, plain.flap) == (None, None)


def test_a_due_hold_is_taken_once_with_a_lease_and_removed_only_by_its_taker(make_state: MakeState) -> None:
    state, other = make_state(), make_state()  # two processes on one state
    state.hold_pending(held("k1", since=100.0, hold=600.0))  # due at 700
    assert state.take_pending("k1", 700.0, 760.0) and not other.take_pending("k1", 700.0, 761.0)
    assert [p.incident_key for p in other.due_pending(759.0)] == []  # leased: not due for anyone else
    assert [p.until for p in other.due_pending(760.0)] == [760.0]  # the taker died: due again after the lease
    assert other.take_pending("k1", 760.0, 820.0) and not state.finish_pending("k1", 760.0, 770.0, "paged")
    assert other.release_pending("k1", 820.0, 850.0) and not other.release_pending("k1", 820.0, 860.0)
    assert other.take_pending("k1", 850.0, 910.0) and other.finish_pending("k1", 910.0, 860.0, "paged")
    assert state.pending("k1") is None and state.recent_audit(1)[0]["action"] == "pending_paged"


def test_a_muted_hold_is_kept_due_for_no_wake_up_and_taken_by_the_next_trigger(make_state: MakeState) -> None:
    """A hold whose page a silence muted is given back due at MUTED (infinity): stored as such by both
    backends, never in a due range, and taken again by its key's next trigger."""
    from engine.dispatch.dispatcher import MUTED
    state, other = make_state(), make_state()
    state.hold_pending(held("k1", since=100.0, hold=600.0))  # due at 700
    assert state.take_pending("k1", 700.0, 760.0) and state.release_pending("k1", 760.0, MUTED)
    assert other.due_pending(1e15) == []
    muted = other.pending("k1")
    assert muted is not None and muted.until == MUTED
    assert other.take_pending("k1", MUTED, 2000.0) and other.finish_pending("k1", 2000.0, 1950.0, "paged")
    assert state.pending("k1") is None


def test_a_recovery_cancelling_a_hold_says_whether_a_wake_up_had_it_taken(make_state: MakeState) -> None:
    """Second review item 2: the recovery learns, in the statement that drops the hold, whether a wake-up
    has it taken (and may be paging it), so it still resolves the key then."""
    state, other = make_state(), make_state()
    state.hold_pending(held("k1", since=100.0, hold=600.0))  # due at 700
    assert other.cancel_pending("k1", 200.0) == 1 and state.cancel_pending("k1", 200.0) == 0
    state.hold_pending(held("k1", since=100.0, hold=600.0))
    assert state.take_pending("k1", 700.0, 760.0)
    assert other.cancel_pending("k1", 710.0) == 2  # taken, lease not over: the wake-up may be paging it
    assert state.recent_audit(1)[0]["action"] == "pending_cancelled"
    state.hold_pending(held("k1", since=100.0, hold=600.0))
    assert state.take_pending("k1", 700.0, 760.0) and state.release_pending("k1", 760.0, 790.0)
    assert other.cancel_pending("k1", 770.0) == 1  # given back: nobody is paging it
    state.hold_pending(held("k1", since=100.0, hold=600.0))
    assert state.take_pending("k1", 700.0, 760.0)
    assert other.cancel_pending("k1", 900.0) == 2  # its taker died, maybe mid-page: the lease's end proves
    # nothing (third review R1: a slow create outlives it), so the recovery still resolves the key


def test_a_taken_held_resolve_is_not_cancelled_but_marked_by_a_re_fire(make_state: MakeState) -> None:
    from engine.evaluation.actions import HeldResolve
    state, other = make_state(), make_state()
    state.hold_resolve(HeldResolve("k1", "main-green", "p3", "m", 100.0, 700.0, 3))
    assert state.take_held_resolve("k1", 700.0, 760.0) == 1 and other.take_held_resolve("k1", 700.0, 761.0) is None
    assert not other.forget_held_resolve("k1", 710.0, "refired")  # a wake-up is releasing it
    assert other.refire_held_resolve("k1", 710.0) == (False, 760.0)  # the re-fire waits for the lease's end
    assert not state.release_held_resolve("k1", 760.0, 790.0)  # fired meanwhile: not held again
    assert state.take_held_resolve("k1", 760.0, 820.0) == 2  # a taker after a crash sees it fired
    assert state.finish_held_resolve("k1", 820.0, 800.0, "refired") and state.held_resolve("k1") is None
    state.hold_resolve(HeldResolve("k2", "main-green", "p3", "m", 100.0, 700.0, 3))
    assert state.take_held_resolve("k2", 700.0, 760.0) == 1 and state.release_held_resolve("k2", 760.0, 790.0)
    assert other.refire_held_resolve("k2", 780.0) == (True, None)  # held again, untaken: a re-fire cancels it
    assert state.recent_audit(1)[0]["action"] == "flapping_refired" and state.held_resolve("k2") is None
    assert other.refire_held_resolve("k2", 780.0) == (False, None)  # none held


def test_a_recovery_after_a_re_fire_marks_a_taken_held_resolve_taken_only_again(make_state: MakeState) -> None:
    """Third review R4: the key recovered again after the re-fire, so the taker's release (or the next
    taker after a crash) still sends the resolve instead of dropping it as re-fired."""
    from engine.evaluation.actions import HeldResolve
    state, other = make_state(), make_state()
    state.hold_resolve(HeldResolve("k1", "main-green", "p3", "m", 100.0, 700.0, 3))
    assert not other.recover_held_resolve("k1")  # held, untaken: nothing to mark
    assert state.take_held_resolve("k1", 700.0, 760.0) == 1
    assert other.refire_held_resolve("k1", 710.0) == (False, 760.0)
    assert other.recover_held_resolve("k1") and not other.recover_held_resolve("k1")
    assert state.release_held_resolve("k1", 760.0, 790.0)  # held again, for the retry
    assert state.take_held_resolve("k1", 790.0, 850.0) == 1  # and a taker sends it
