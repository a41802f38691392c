"""Pending triggers end to end (README "Pending triggers"): `watch` against the fake PagerDuty pages a
trigger held by ``for:`` once its duration passes with no further event, keeps the hold across a
restart, and a recovery in time cancels it. Waits are on conditions with deadlines, never fixed sleeps."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from builders import Daemon, build, wait_for
from fake_pagerduty import FakePagerDuty

RULES = """
triggers:
  - id: build-failing-for
    on: build
    match: {status: failed}
    severity: high
    title: "{{ event.repo }} still failing"
    incident_key: "{{ event.repo | slug }}-failing"
    labels: {repo: "{{ event.repo }}"}
    for: HOLD
recoveries:
  - id: build-passing
    on: build
    match: {status: passed}
    resolves: [{incident_key: "{{ event.repo | slug }}-failing"}]
    message: passing again
"""
KEY = "codespar-acme-backend-api-failing"


def daemon_with(tmp: Path, fake: FakePagerDuty, hold: str) -> Daemon:
    (tmp / "rules").mkdir()
    (tmp / "rules" / "pending.yaml").write_text(RULES.replace("HOLD", hold))
    (tmp / "pd.yaml").write_text("rules_dir: rules\nstate_path: state.db\nevents_dir: events\n")
    return Daemon(tmp, fake)


def created(fake: FakePagerDuty) -> list[dict[str, Any]]:
    return [c for c in fake.calls() if c["method"] == "POST" and c["path"] == "/incidents"]


def audit(tmp: Path) -> list[tuple[float, str, str | None]]:
    with sqlite3.connect(tmp / "state.db") as db:
        return db.execute("SELECT at, action, incident_key FROM audit ORDER BY id").fetchall()


def held_keys(tmp: Path) -> list[str]:
    with sqlite3.connect(tmp / "state.db") as db:
        return [r[0] for r in db.execute("SELECT incident_key FROM pending_triggers")]


def test_a_pending_trigger_pages_after_its_duration_with_no_further_event(fake: FakePagerDuty, tmp_path: Path
                                                                          ) -> None:
    daemon = daemon_with(tmp_path, fake, "2s").start()
    try:
        daemon.drop("a.json", [build(1)])
        wait_for(lambda: len(created(fake)) == 1, 20, "the held trigger to page on its own")
    finally:
        assert daemon.stop() == 0
    rows = audit(tmp_path)
    held = next(at for at, action, key in rows if action == "pending" and key == KEY)
    paged = next(at for at, action, key in rows if action == "pending_paged" and key == KEY)
    assert paged - held >= 2.0  # not before its duration
    assert [a for _, a, k in rows if k == KEY] == ["pending", "create", "pending_paged"]  # released once paged
    assert held_keys(tmp_path) == []
    assert "pending" in daemon.log.read_text() and "trigger created" in daemon.log.read_text()


def test_a_restart_in_the_middle_keeps_it_pending_and_it_pages_after(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = daemon_with(tmp_path, fake, "5s")
    daemon.drop("a.json", [build(1)])
    first = daemon.once()  # handles the file and exits: the hold is in the state, nothing paged yet
    assert first.returncode == 0, first.stderr
    assert held_keys(tmp_path) == [KEY] and created(fake) == []
    assert "trigger pending" in first.stderr
    daemon.start()  # a new process
    try:
        wait_for(lambda: len(created(fake)) == 1, 25, "the hold kept across the restart to page")
    finally:
        assert daemon.stop() == 0
    assert held_keys(tmp_path) == []


def test_a_recovery_in_time_cancels_the_hold_and_nothing_is_sent(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = daemon_with(tmp_path, fake, "1h")
    daemon.drop("a.json", [build(1), build(2, "passed", eid="b2")])
    result = daemon.once()
    assert result.returncode == 0, result.stderr
    assert "resolve cancelled_pending" in result.stderr
    assert held_keys(tmp_path) == [] and [c for c in fake.calls() if c["path"].startswith("/incidents")] == []
    assert [a for _, a, k in audit(tmp_path) if k == KEY] == ["pending", "pending_cancelled"]
