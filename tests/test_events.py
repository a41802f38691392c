"""Reading events: object, array, JSON lines, pretty-printed; bad input named by line, never dropped."""
from __future__ import annotations

import io

import pytest

from conftest import dry_run
from engine.events import event_id, read_events


def read(text: str) -> list[tuple[str, object]]:
    return [(p.where, p.event if p.event is not None else p.error) for p in read_events(io.StringIO(text), "stdin")]


def test_json_lines_skip_blank_lines() -> None:
    assert read('{"a":1}\n\n{"b":2}\n') == [("stdin line 1", {"a": 1}), ("stdin line 3", {"b": 2})]


def test_an_array_yields_each_object_and_names_a_bad_item() -> None:
    assert read('[{"a":1}, 3]') == [("stdin line 1 item 0", {"a": 1}),
                                    ("stdin line 1 item 1", "stdin line 1 item 1: expected a JSON object, got 3")]


def test_pretty_printed_objects_and_arrays() -> None:
    assert read('{\n  "a": 1\n}\n[\n  {"b": 2}\n]\n') == [("stdin line 1", {"a": 1}), ("stdin line 4 item 0", {"b": 2})]


def test_a_malformed_line_is_reported_and_reading_goes_on() -> None:
    assert read('{"a":1}\n{"a": 2,, }\n{"c":3}\n') == [
        ("stdin line 1", {"a": 1}),
        ("stdin line 2", "stdin line 2: not valid JSON: Expecting property name enclosed in double quotes (column 9)"),
        ("stdin line 3", {"c": 3})]


def test_a_truncated_line_does_not_swallow_the_lines_after_it() -> None:
    assert read('{"a": 2, "b"\n{"c":3}\n') == [
        ("stdin line 1", "stdin line 1: not valid JSON: incomplete JSON: the document never closes"),
        ("stdin line 2", {"c": 3})]


def test_a_broken_pretty_printed_object_is_one_error() -> None:
    assert read('{\n  "a": 1\n  "b": 2\n}\n{"c":3}\n') == [
        ("stdin lines 1-4", "stdin lines 1-4: not valid JSON: Expecting ',' delimiter at line 3 column 3"),
        ("stdin line 5", {"c": 3})]


def test_input_ending_mid_document_is_reported() -> None:
    assert read('{"a":1}\n{"a":\n') == [
        ("stdin line 1", {"a": 1}),
        ("stdin line 2", "stdin line 2: not valid JSON: incomplete JSON: the document never closes")]


def test_the_derived_id_is_stable_and_content_based() -> None:
    a = event_id({"type": "build", "x": 1, "y": 2})
    assert a == event_id({"y": 2, "x": 1, "type": "build"}) and a.startswith("sha-") and len(a) == 20
    assert a != event_id({"type": "build", "x": 1, "y": 3})
    assert event_id({"id": "e1"}) == "e1"


@pytest.mark.parametrize("event, error", [
    ({"id": "x"}, "event has no 'type' (set it in the event, or use --type for raw webhook payloads)"),
    ({"type": "biuld", "id": "x"}, "unknown event type 'biuld' (did you mean 'build'? known: alertmanager, "
                                   "alertmanager.alert, build, deploy.health, github.deployment_status, "
                                   "github.workflow_run, incident.escalation, incident.resolved, rollback, "
                                   "sentry.errors, sentry.event_alert, sentry.issue, sentry.metric_alert)"),
    ({"type": "build", "id": "x", "repo": "a/b", "branch": "main", "build_number": 1},
     "build: 'status' is a required property"),
    ({"type": "build", "id": "x", "repo": "a/b", "branch": "main", "build_number": 1, "status": "broken"},
     "build: status: 'broken' is not one of ['failed', 'passed']"),
    ({"type": "deploy.health", "id": "x", "repo": "a/b", "deploy": {}, "error_rate": "high",
      "baseline_error_rate": 0.1, "sustained_minutes": 0, "checks": {"passed": 1, "total": 1}},
     "deploy.health: deploy: 'version' is a required property; deploy.health: error_rate: 'high' is not of type "
     "'number'"),
])
def test_a_rejected_event_names_the_field(event: dict, error: str) -> None:  # type: ignore[type-arg]
    assert dry_run([event]) == [{"action": "error", "status": "rejected", "event_id": "x", "error": error}]
