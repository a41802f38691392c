"""What became of an action: a typed outcome, and its one serialisation as an output line.

README "Output and exit status" lists the statuses; they are spelled here only. A backend answers
with a ``Result`` (its part of the story); the dispatcher adds what the action says; ``to_line``
is the only place an outcome turns into the JSON object `process`, `watch`, `test`, `replay`,
`explain` and the manual commands print.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from engine.evaluation.actions import ErrorAction, ResolveAction, TriggerAction

Kind = Literal["trigger", "resolve", "ack", "error"]


class Status(str, Enum):
    """Every status an outcome line can carry. Written out as ``.value`` (``str()`` of a str Enum
    differs between Python versions)."""

    PLANNED = "planned"                    # dry run: what would be sent
    CREATED = "created"
    DEDUPLICATED = "deduplicated"
    BELOW_THRESHOLD = "below_threshold"
    DISABLED = "disabled"
    FAILED = "failed"
    RESOLVED = "resolved"
    NOTHING_OPEN = "nothing_open"
    AUTO_RESOLVE_OFF = "auto_resolve_off"
    ACKNOWLEDGED = "acknowledged"
    ALREADY_RESOLVED = "already_resolved"  # ack refused: acknowledging would re-open it
    REJECTED = "rejected"                  # error line: the event is not valid
    RULE_ERROR = "rule_error"              # error line: a rule could not be evaluated or rendered


@dataclass(frozen=True, slots=True)
class Result:
    """A backend's answer: the status, and what PagerDuty said (an id, or why it failed).

    ``retry`` is set on a failure only: whether trying again later can help."""

    status: Status
    incident_id: str | None = None
    error: str | None = None
    retry: bool | None = None
    note_error: str | None = None


# A dry run answers with one of these for every action: no allocation per event.
PLANNED = Result(Status.PLANNED)
DEDUPLICATED = Result(Status.DEDUPLICATED)
NOTHING_OPEN = Result(Status.NOTHING_OPEN)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One output line, typed. Which fields a line carries depends on ``action`` (see ``to_line``)."""

    action: Kind
    status: Status
    incident_key: str | None = None
    title: str | None = None
    severity: str | None = None
    rule: str | None = None
    event_id: Any = None
    message: str | None = None
    incident_id: str | None = None
    error: str | None = None
    retry: bool | None = None
    note_error: str | None = None

    @property
    def failed(self) -> bool:
        """Counts against the exit status: an error line, or an action that failed."""
        return self.action == "error" or self.status is Status.FAILED

    def to_line(self) -> dict[str, Any]:
        """The output line: exactly the fields README "Output and exit status" gives this action, in order."""
        if self.action == "error":
            line: dict[str, Any] = {"action": "error", "status": self.status.value}
            if self.event_id is not None:
                line["event_id"] = self.event_id
            if self.rule:
                line["rule"] = self.rule
            line["error"] = self.error
            return line
        line = {"action": self.action, "status": self.status.value, "incident_key": self.incident_key}
        if self.action == "trigger":
            line["title"], line["severity"] = self.title, self.severity
            line["rule"], line["event_id"] = self.rule, self.event_id
        elif self.action == "resolve":
            line["rule"], line["event_id"], line["message"] = self.rule, self.event_id, self.message
        if self.incident_id:
            line["incident_id"] = self.incident_id
        if self.error is not None:
            line["error"] = self.error
        if self.retry is not None:
            line["retry"] = self.retry
        if self.note_error is not None:
            line["note_error"] = self.note_error
        return line


def triggered(action: TriggerAction, result: Result) -> Outcome:
    """The outcome of a trigger: the action's fields and the backend's (or a gate's) answer."""
    return Outcome("trigger", result.status, action.incident_key, action.title, action.severity, action.rule,
                   action.event_id, None, result.incident_id, result.error, result.retry, result.note_error)


def resolved(action: ResolveAction, result: Result) -> Outcome:
    """The outcome of a resolve (a recovery's, or one by hand)."""
    return Outcome("resolve", result.status, action.incident_key, None, None, action.rule, action.event_id,
                   action.message, result.incident_id, result.error, result.retry, result.note_error)


def acknowledged(incident_key: str, result: Result) -> Outcome:
    """The outcome of an acknowledge by hand."""
    return Outcome("ack", result.status, incident_key, incident_id=result.incident_id, error=result.error,
                   retry=result.retry, note_error=result.note_error)


def errored(action: ErrorAction) -> Outcome:
    """An error line: ``rule_error`` for a rule that failed, ``rejected`` for a bad event."""
    return Outcome("error", Status.RULE_ERROR if action.rule else Status.REJECTED, rule=action.rule,
                   event_id=action.event_id, error=action.error)
