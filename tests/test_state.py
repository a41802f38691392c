"""The SQLite state: open incidents by key and label, status changes, audit, transactions."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.evaluation.actions import OpenIncident
from engine.pagerduty.state import State, StateError, StateView


def incident(key: str, **labels: str) -> OpenIncident:
    return OpenIncident(key, labels, "rule", "high", f"title {key}", f"id-{key}")


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(str(tmp_path / "sub" / "state.db"))


def test_the_file_and_its_folder_are_created_in_wal_mode(tmp_path: Path, state: State) -> None:
    assert (tmp_path / "sub" / "state.db").exists()
    assert state._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


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


def test_two_connections_see_each_others_writes(tmp_path: Path) -> None:
    first, second = State(str(tmp_path / "s.db")), State(str(tmp_path / "s.db"))
    first.record_open(incident("a"), 1.0, "rules", "create")
    assert second.get("a") is not None


def test_an_unusable_state_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StateError) as caught:
        State(str(tmp_path / "file" / "s.db"))
    assert str(caught.value) == f"cannot open the state file {tmp_path}/file/s.db: File exists"
    assert caught.value.exit_code == 2
