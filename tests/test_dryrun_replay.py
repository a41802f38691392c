"""`replay` (engine/dryrun/replay.py): only the differences in paging between two rulesets over the same events."""
from __future__ import annotations

import io
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from builders import ROOT, make_config, rules_from

from engine.dispatch.dispatcher import Dispatcher, DryRun
from engine.dispatch.pipeline import Pipeline
from engine.dryrun.replay import Difference, recorded_events, replay, summary
from engine.events.stream import read_events

BUILD_RULES = (ROOT / "rules" / "build.yaml").read_text(encoding="utf-8")
KEY = "codespar-acme-backend-api-build-349"
TITLE = "acme/backend-api CI build #349 failed on main"


def build(number: int, status: str) -> dict[str, Any]:
    return {"type": "build", "id": f"b{number}", "repo": "acme/backend-api", "branch": "main",
            "build_number": number, "status": status}


def pipeline(rules_text: str) -> Pipeline:
    config = make_config()
    return Pipeline(rules_from(rules_text, config), Dispatcher(config, DryRun()))


def differences(new_text: str, events: list[dict[str, Any]], old_text: str = BUILD_RULES) -> list[Difference]:
    text = "\n".join(json.dumps(e) for e in events)
    return list(replay(read_events(io.StringIO(text), "recorded.ndjson"), pipeline(new_text), pipeline(old_text)))


def test_the_same_rules_make_no_difference() -> None:
    assert differences(BUILD_RULES, [build(349, "failed"), build(350, "passed")]) == []


def test_a_severity_change_is_one_change_naming_both_values() -> None:
    [found] = differences(BUILD_RULES.replace("severity: high", "severity: critical"), [build(349, "failed")])
    assert (found.kind, found.rule, found.event_id, found.incident_key) == ("changed", "build-failed", "b349", KEY)
    assert found.detail == (f"severity: 'high' -> 'critical'; title: '[CodeSpar] High: {TITLE}' -> "
                            f"'[CodeSpar] Critical: {TITLE}'")
    assert str(found) == f"recorded.ndjson line 1: event b349: changed: {KEY} [build-failed] {found.detail}"


def test_a_key_that_moved_is_a_change_not_a_page_gained_and_one_lost() -> None:
    new = BUILD_RULES.replace('-build-{{ event.build_number | slug }}"', '-ci-{{ event.build_number | slug }}"')
    [found] = differences(new, [build(349, "failed")])
    assert (found.kind, found.incident_key) == ("changed", "codespar-acme-backend-api-ci-349")
    assert found.detail == f"incident_key: '{KEY}' -> 'codespar-acme-backend-api-ci-349'"


def test_a_trigger_gone_no_longer_pages_and_its_resolve_is_not_reported_again() -> None:
    new = BUILD_RULES.replace("status: failed", "status: errored")  # the trigger never matches now
    found = differences(new, [build(349, "failed"), build(350, "passed")])
    assert [(d.kind, d.event_id, d.incident_key) for d in found] == [("no longer pages", "b349", KEY)]
    assert found[0].detail == f"(high) [CodeSpar] High: {TITLE}"
    assert summary(found) == {"build-failed": {"no longer pages": 1}}


def test_a_new_trigger_now_pages_and_its_resolution_is_gained_only_as_a_page_first() -> None:
    old = BUILD_RULES.replace("status: failed", "status: errored")
    found = differences(BUILD_RULES, [build(349, "failed"), build(350, "passed")], old_text=old)
    assert [(d.kind, d.incident_key) for d in found] == [("now pages", KEY)]


def test_an_error_only_the_new_rules_make_is_an_error_gained() -> None:
    new = BUILD_RULES.replace('url: "{{ event.url | default(\'\') }}"', 'url: "{{ event.url }}"')
    found = differences(new, [build(349, "failed")])
    assert [(d.kind, d.rule) for d in found] == [("error gained", "build-failed")]
    assert "url" in found[0].detail


def test_unreadable_recorded_events_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture,
                                                             tmp_path: Path) -> None:
    (tmp_path / "a.ndjson").write_text("{bad\n" + json.dumps(build(349, "failed")) + "\n")
    new = BUILD_RULES.replace("severity: high", "severity: critical")
    with caplog.at_level(logging.WARNING, "pagerules"):
        found = list(replay(recorded_events([str(tmp_path)]), pipeline(new), pipeline(BUILD_RULES)))
    assert [d.kind for d in found] == ["changed"]
    assert any("a.ndjson line 1: not valid JSON" in r.getMessage() and r.getMessage().endswith("; skipped")
               for r in caplog.records)


def test_a_folder_of_recorded_events_types_a_file_by_its_name(tmp_path: Path) -> None:
    untyped = {k: v for k, v in build(349, "failed").items() if k != "type"}
    (tmp_path / "x.build.json").write_text(json.dumps(untyped))
    new = BUILD_RULES.replace("severity: high", "severity: critical")
    found = list(replay(recorded_events([str(tmp_path)]), pipeline(new), pipeline(BUILD_RULES)))
    assert [(d.kind, d.incident_key) for d in found] == [("changed", KEY)]


CHANGE_RULE = """
changes:
  - id: build-green
    on: build
    match: {status: passed}
    summary: "{{ event.repo }} #{{ event.build_number }} is green"
"""


def test_change_events_gained_lost_and_changed_are_differences_paired_by_rule() -> None:
    events = [build(349, "failed"), build(350, "passed")]
    [gained] = differences(BUILD_RULES + CHANGE_RULE, events)
    assert str(gained) == ("recorded.ndjson line 2: event b350: change gained: [build-green] "
                           "acme/backend-api #350 is green")
    [lost] = differences(BUILD_RULES, events, old_text=BUILD_RULES + CHANGE_RULE)
    assert (lost.kind, lost.rule, lost.incident_key, lost.detail) == (
        "change lost", "build-green", None, "acme/backend-api #350 is green")
    [changed] = differences(BUILD_RULES + CHANGE_RULE.replace("is green", "passed"), events,
                            old_text=BUILD_RULES + CHANGE_RULE)
    assert (changed.kind, changed.detail) == (
        "change changed", "summary: 'acme/backend-api #350 is green' -> 'acme/backend-api #350 passed'")
    assert differences(BUILD_RULES + CHANGE_RULE, events, old_text=BUILD_RULES + CHANGE_RULE) == []


# ---- the wake-up (README "Pending triggers"): replay pages for: holds as the daemon would ------------
FOR_RULES = (ROOT / "rules" / "examples" / "deploy-for.yaml").read_text(encoding="utf-8")
AT_ONCE = FOR_RULES.replace("    for: 10m\n", "")
HELD_KEY = "codespar-acme-api-deploy-v1-error-rate"


def health(eid: str, at: str, rate: float = 0.03) -> dict[str, Any]:
    return {"type": "deploy.health", "id": eid, "time": f"2026-01-01T{at}Z", "repo": "acme/api",
            "deploy": {"version": "v1"}, "error_rate": rate, "baseline_error_rate": 0.01, "sustained_minutes": 0,
            "checks": {"passed": 1, "total": 2}}


def timed(new_text: str, old_text: str, events: list[dict[str, Any]], **end: Any) -> list[Difference]:
    text = "\n".join(json.dumps(e) for e in events)
    return list(replay(read_events(io.StringIO(text), "recorded.ndjson"), pipeline(new_text), pipeline(old_text),
                       **end))


def test_a_hold_whose_time_passes_before_the_next_event_pages_at_the_wake_up() -> None:
    later = build(1, "passed") | {"time": "2026-01-01T00:20:00Z"}
    found = timed(FOR_RULES, AT_ONCE, [health("d1", "00:00:00"), later])
    assert [str(d) for d in found] == [
        f"recorded.ndjson line 1: event d1: no longer pages: {HELD_KEY} [deploy-error-rate-held] (high) "
        "[CodeSpar] High: acme/api deploy v1 — error rate 3.0x baseline for 10 minutes",
        f"wake-up at 2026-01-01T00:10:00Z: event d1: now pages: {HELD_KEY} [deploy-error-rate-held] (high) "
        "[CodeSpar] High: acme/api deploy v1 — error rate 3.0x baseline for 10 minutes"]


def test_the_same_for_rules_page_alike_at_the_wake_up_and_resolve_alike_after() -> None:
    events = [health("d1", "00:00:00"), health("d2", "00:15:00", rate=0.01)]
    assert timed(FOR_RULES, FOR_RULES, events) == []
    # Held, the new rules page at +10m (the wake-up), and both resolve at +15m: without the wake-up the
    # recovery would cancel the hold, and the page would never be reported.
    assert [(d.kind, d.where) for d in timed(FOR_RULES, AT_ONCE, events)] == [
        ("no longer pages", "recorded.ndjson line 1"), ("now pages", "wake-up at 2026-01-01T00:10:00Z")]


def test_a_recovery_before_the_hold_is_due_still_cancels_it_in_replay() -> None:
    found = timed(FOR_RULES, AT_ONCE, [health("d1", "00:00:00"), health("d2", "00:05:00", rate=0.01),
                                       health("d3", "00:30:00", rate=0.01)])
    assert [(d.kind, d.event_id) for d in found] == [("no longer pages", "d1")]  # never paged, nothing lost


def test_the_last_wake_up_is_at_the_last_event_unless_asked_to_run_later() -> None:
    events = [health("d1", "00:00:00")]
    assert [d.kind for d in timed(FOR_RULES, AT_ONCE, events)] == ["no longer pages"]
    later = timed(FOR_RULES, AT_ONCE, events, past_end=15 * 60.0)
    assert [(d.kind, d.where) for d in later] == [("no longer pages", "recorded.ndjson line 1"),
                                                   ("now pages", "wake-up at 2026-01-01T00:10:00Z")]
    until = timed(FOR_RULES, AT_ONCE, events, until=event_seconds("2026-01-01T00:09:59Z"))
    assert [d.kind for d in until] == ["no longer pages"]
    assert [d.kind for d in timed(FOR_RULES, AT_ONCE, events, until=event_seconds("2026-01-01T00:10:00Z"))] == [
        "no longer pages", "now pages"]


def event_seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
