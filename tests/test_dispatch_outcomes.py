"""Outcome.to_line: each status as the line README "Output and exit status" shows, exactly those fields in order."""
from __future__ import annotations

from typing import Any

import pytest

from engine.dispatch.outcomes import Outcome, Result, Status, acknowledged, errored, resolved, triggered
from engine.evaluation.actions import ErrorAction, ResolveAction, TriggerAction

TRIGGER = TriggerAction("build-failed", "e3", "codespar-acme-api-build-349", "[CodeSpar] High: build #349 failed",
                        "high")
RESOLVE = ResolveAction("build-fixed", "e7", "codespar-acme-api-build-349", "fixed in #350")
TRIGGER_FIELDS = {"incident_key": "codespar-acme-api-build-349", "title": "[CodeSpar] High: build #349 failed",
                  "severity": "high", "rule": "build-failed", "event_id": "e3", "route": "default"}
RESOLVE_FIELDS = {"incident_key": "codespar-acme-api-build-349", "rule": "build-fixed", "event_id": "e7",
                  "message": "fixed in #350", "route": "default"}


def _line(action: str, status: str, fields: dict[str, Any], **extra: Any) -> list[tuple[str, Any]]:
    return list({"action": action, "status": status, **fields, **extra}.items())


TRIGGERS = [
    (Result(Status.PLANNED), {}),
    (Result(Status.CREATED, "PABC123"), {"incident_id": "PABC123"}),
    (Result(Status.DEDUPLICATED, "PABC123"), {"incident_id": "PABC123"}),
    (Result(Status.DEDUPLICATED), {}),  # PagerDuty had it open, its id unknown
    (Result(Status.CREATED, "PABC123", incident_url="https://acme.pagerduty.com/incidents/PABC123"),
     {"incident_id": "PABC123", "incident_url": "https://acme.pagerduty.com/incidents/PABC123"}),
    (Result(Status.DEDUPLICATED, "PABC123", incident_url="https://acme.pagerduty.com/incidents/PABC123"),
     {"incident_id": "PABC123", "incident_url": "https://acme.pagerduty.com/incidents/PABC123"}),
    (Result(Status.CREATED, "PABC123", incident_url=""), {"incident_id": "PABC123"}),  # never an empty value
    (Result(Status.BELOW_THRESHOLD), {}),
    (Result(Status.DISABLED), {}),
    (Result(Status.FAILED, error="PagerDuty: 500", retry=True), {"error": "PagerDuty: 500", "retry": True}),
    (Result(Status.FAILED, error="PagerDuty: 400", retry=False), {"error": "PagerDuty: 400", "retry": False}),
]


@pytest.mark.parametrize(("result", "extra"), TRIGGERS, ids=lambda v: getattr(v, "status", ""))
def test_a_trigger_line_carries_the_trigger_fields_then_what_pagerduty_said(result: Result,
                                                                            extra: dict[str, Any]) -> None:
    line = triggered(TRIGGER, result).to_line()
    assert list(line.items()) == _line("trigger", result.status.value, TRIGGER_FIELDS, **extra)
    assert type(line["status"]) is str  # not the enum: `pagerules test` diffs print it with repr()


RESOLVES = [
    (Result(Status.PLANNED), {}),
    (Result(Status.RESOLVED, "PABC123"), {"incident_id": "PABC123"}),
    (Result(Status.RESOLVED, "PABC123", note_error="PagerDuty: 500"),
     {"incident_id": "PABC123", "note_error": "PagerDuty: 500"}),
    (Result(Status.NOTHING_OPEN), {}),
    (Result(Status.AUTO_RESOLVE_OFF), {}),
    (Result(Status.DISABLED), {}),
    (Result(Status.FAILED, error="timed out", retry=True), {"error": "timed out", "retry": True}),
]


@pytest.mark.parametrize(("result", "extra"), RESOLVES, ids=lambda v: getattr(v, "status", ""))
def test_a_resolve_line_carries_the_resolve_fields_then_what_pagerduty_said(result: Result,
                                                                            extra: dict[str, Any]) -> None:
    assert list(resolved(RESOLVE, result).to_line().items()) == _line("resolve", result.status.value,
                                                                      RESOLVE_FIELDS, **extra)


def test_a_resolve_that_found_nothing_open_keeps_its_null_key() -> None:
    line = resolved(ResolveAction("build-fixed", "e7", None, "fixed"), Result(Status.NOTHING_OPEN)).to_line()
    assert line == {"action": "resolve", "status": "nothing_open", "incident_key": None, "rule": "build-fixed",
                    "event_id": "e7", "message": "fixed", "route": "default"}


def test_trigger_and_resolve_lines_name_the_route_taken_and_an_ack_line_none() -> None:
    assert triggered(TRIGGER, Result(Status.CREATED, "P1"), 2).to_line()["route"] == 2
    assert resolved(RESOLVE, Result(Status.RESOLVED, "P1"), 0).to_line()["route"] == 0
    assert "route" not in acknowledged("k", Result(Status.ACKNOWLEDGED, "P1")).to_line()


ACKS = [
    (Result(Status.ACKNOWLEDGED, "P1"), {"incident_id": "P1"}),
    (Result(Status.NOTHING_OPEN), {}),
    (Result(Status.DISABLED), {}),
    (Result(Status.ALREADY_RESOLVED, "P1", error="already resolved"),
     {"incident_id": "P1", "error": "already resolved"}),
    (Result(Status.FAILED, error="PagerDuty: 403", retry=True), {"error": "PagerDuty: 403", "retry": True}),
]


@pytest.mark.parametrize(("result", "extra"), ACKS, ids=lambda v: getattr(v, "status", ""))
def test_an_ack_line_carries_the_key_then_what_pagerduty_said(result: Result, extra: dict[str, Any]) -> None:
    assert list(acknowledged("k", result).to_line().items()) == _line("ack", result.status.value,
                                                                     {"incident_key": "k"}, **extra)


@pytest.mark.parametrize(("action", "expected"), [
    (ErrorAction("e9", "deploy.health: 'repo' is a required property"),
     {"action": "error", "status": "rejected", "event_id": "e9",
      "error": "deploy.health: 'repo' is a required property"}),
    (ErrorAction(None, "stdin:3: not JSON"), {"action": "error", "status": "rejected", "error": "stdin:3: not JSON"}),
    (ErrorAction("e1", "title: 'x' is undefined", "build-failed"),
     {"action": "error", "status": "rule_error", "event_id": "e1", "rule": "build-failed",
      "error": "title: 'x' is undefined"}),
])
def test_an_error_line_names_the_event_when_known_and_the_rule_when_one_failed(action: ErrorAction,
                                                                             expected: dict[str, Any]) -> None:
    assert list(errored(action).to_line().items()) == list(expected.items())


def test_every_status_has_a_line_and_failed_counts_against_the_exit_status() -> None:
    failing = {Status.FAILED}
    for status in Status:
        outcome = Outcome(TRIGGER, Result(status))
        assert outcome.to_line()["status"] == status.value
        assert outcome.failed is (status in failing)
    assert errored(ErrorAction("e", "bad")).failed


def test_an_outcome_cannot_be_changed() -> None:
    outcome = triggered(TRIGGER, Result(Status.PLANNED))
    with pytest.raises(AttributeError):
        outcome.result = Result(Status.CREATED)  # type: ignore[misc]


def test_a_silenced_trigger_line_names_the_silence() -> None:
    line = triggered(TRIGGER, Result(Status.SILENCED, silence_id="5f1c")).to_line()
    assert (line["status"], line["silence_id"]) == ("silenced", "5f1c")
    assert list(line)[-1] == "silence_id" and "silence_id" not in triggered(TRIGGER, Result(Status.CREATED)).to_line()


def test_a_renotify_wait_names_when_it_may_page_and_a_held_resolve_when_it_resolves() -> None:
    line = triggered(TRIGGER, Result(Status.RENOTIFY_WAIT, renotify_at="2026-01-01T04:00:00Z")).to_line()
    assert (line["status"], list(line)[-1], line["renotify_at"]) == ("renotify_wait", "renotify_at",
                                                                    "2026-01-01T04:00:00Z")
    held = Outcome(ResolveAction("build-fixed", "e2", "k", "fixed"),
                   Result(Status.FLAPPING, "PINC1", note_error="503", resolve_at="2026-01-01T00:40:00Z")).to_line()
    assert (held["action"], held["status"], held["incident_id"], held["note_error"], held["resolve_at"]) == \
        ("resolve", "flapping", "PINC1", "503", "2026-01-01T00:40:00Z")
    plain = triggered(TRIGGER, Result(Status.CREATED)).to_line()
    assert "renotify_at" not in plain and "resolve_at" not in plain
