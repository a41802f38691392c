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

from engine.evaluation.actions import ChangeAction, ErrorAction, ResolveAction, TriggerAction

Kind = Literal["trigger", "resolve", "change", "ack", "error"]


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
    SENT = "sent"                          # a change event PagerDuty accepted
    SILENCED = "silenced"                  # a trigger a silence muted: nothing sent (README: Silences)
    PENDING = "pending"                    # a trigger held by its rule's for: (README: Pending triggers)
    CANCELLED_PENDING = "cancelled_pending"  # a resolve of a key still pending: nothing sent, the hold dropped
    RENOTIFY_WAIT = "renotify_wait"        # after a resolve by hand, before renotify: (README: Repeat control)
    FLAPPING = "flapping"                  # a flapping key: its resolve held, or a trigger while held (Flap control)
    REJECTED = "rejected"                  # error line: the event is not valid
    RULE_ERROR = "rule_error"              # error line: a rule could not be evaluated or rendered


@dataclass(frozen=True, slots=True)
class Result:
    """A backend's answer: the status, and what PagerDuty said (an id and its page, or why it failed).

    ``retry`` is set on a failure only: whether trying again later can help."""

    status: Status
    incident_id: str | None = None
    error: str | None = None
    retry: bool | None = None
    note_error: str | None = None
    incident_url: str | None = None  # the incident's page in PagerDuty, when PagerDuty gave one
    silence_id: str | None = None  # a silenced trigger: the silence that muted it
    pending_until: str | None = None  # a pending trigger: when it pages (ISO 8601) unless a recovery comes first
    renotify_at: str | None = None  # renotify_wait: when the key may page again (ISO 8601)
    wait_until: float | None = None  # renotify_wait: renotify_at in epoch seconds, for its hold (not on the line)
    resolve_at: str | None = None  # a held resolve (flapping): when it resolves unless the key fires again


# A dry run answers with one of these for every action: no allocation per event.
PLANNED = Result(Status.PLANNED)
DEDUPLICATED = Result(Status.DEDUPLICATED)
NOTHING_OPEN = Result(Status.NOTHING_OPEN)
CANCELLED_PENDING = Result(Status.CANCELLED_PENDING)


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """An acknowledge by hand: the one kind of action evaluation never makes."""

    incident_key: str
    kind: str = "ack"


Cause = TriggerAction | ResolveAction | ChangeAction | ErrorAction | Acknowledge
STATUS_TEXT = _TEXT = {status: status.value for status in Status}  # Enum.value is a slow property
_REJECTED, _RULE_ERROR = Result(Status.REJECTED), Result(Status.RULE_ERROR)


# Made for almost every event, so it holds the action and the backend's answer rather than a copy
# of their fields: a frozen dataclass sets each field through object.__setattr__.
@dataclass(frozen=True, slots=True)
class Outcome:
    """One output line, typed: the action it is about and what became of it (see ``to_line``)."""

    cause: Cause
    result: Result
    route: int | str = "default"  # trigger and resolve lines: the index of the route taken, or "default"

    @property
    def action(self) -> Kind:
        return self.cause.kind  # type: ignore[return-value]  # each action class fixes its kind

    @property
    def status(self) -> Status:
        return self.result.status

    @property
    def incident_key(self) -> str | None:
        return getattr(self.cause, "incident_key", None)

    @property
    def title(self) -> str | None:
        return getattr(self.cause, "title", None)

    @property
    def severity(self) -> str | None:
        return getattr(self.cause, "severity", None)

    @property
    def rule(self) -> str | None:
        return getattr(self.cause, "rule", None)

    @property
    def event_id(self) -> Any:
        return getattr(self.cause, "event_id", None)

    @property
    def message(self) -> str | None:
        return getattr(self.cause, "message", None)

    @property
    def error(self) -> str | None:
        cause = self.cause
        return cause.error if isinstance(cause, ErrorAction) else self.result.error

    @property
    def retry(self) -> bool | None:
        return self.result.retry

    @property
    def failed(self) -> bool:
        """Counts against the exit status: an error line, or an action that failed."""
        return self.cause.kind == "error" or self.result.status is Status.FAILED

    def to_line(self) -> dict[str, Any]:
        """The output line: exactly the fields README "Output and exit status" gives this action, in order."""
        cause, result = self.cause, self.result
        if isinstance(cause, ErrorAction):
            line: dict[str, Any] = {"action": "error", "status": _TEXT[result.status]}
            if cause.event_id is not None:
                line["event_id"] = cause.event_id
            if cause.rule:
                line["rule"] = cause.rule
            line["error"] = cause.error
            return line
        if isinstance(cause, ChangeAction):
            line = {"action": "change", "status": _TEXT[result.status], "rule": cause.rule,
                    "event_id": cause.event_id, "summary": cause.summary, "route": self.route}
            if result.error is not None:
                line["error"] = result.error
            if result.retry is not None:
                line["retry"] = result.retry
            return line
        line = {"action": cause.kind, "status": _TEXT[result.status], "incident_key": cause.incident_key}
        if isinstance(cause, TriggerAction):
            line["title"], line["severity"] = cause.title, cause.severity
            line["rule"], line["event_id"], line["route"] = cause.rule, cause.event_id, self.route
        elif isinstance(cause, ResolveAction):
            line["rule"], line["event_id"], line["message"] = cause.rule, cause.event_id, cause.message
            line["route"] = self.route
        if result is PLANNED or result is DEDUPLICATED or result is NOTHING_OPEN:
            return line  # a dry run's answer: nothing more to say
        if result.incident_id:
            line["incident_id"] = result.incident_id
        if result.incident_url:
            line["incident_url"] = result.incident_url
        if result.error is not None:
            line["error"] = result.error
        if result.retry is not None:
            line["retry"] = result.retry
        if result.note_error is not None:
            line["note_error"] = result.note_error
        if result.silence_id is not None:
            line["silence_id"] = result.silence_id
        if result.pending_until is not None:
            line["pending_until"] = result.pending_until
        if result.renotify_at is not None:
            line["renotify_at"] = result.renotify_at
        if result.resolve_at is not None:
            line["resolve_at"] = result.resolve_at
        return line


def triggered(action: TriggerAction, result: Result, route: int | str = "default") -> Outcome:
    """The outcome of a trigger: the backend's (or a gate's) answer to it, and the route it took."""
    return Outcome(action, result, route)


def resolved(action: ResolveAction, result: Result, route: int | str = "default") -> Outcome:
    """The outcome of a resolve (a recovery's, or one by hand), and the route of the incident it closes."""
    return Outcome(action, result, route)


def acknowledged(incident_key: str, result: Result) -> Outcome:
    """The outcome of an acknowledge by hand."""
    return Outcome(Acknowledge(incident_key), result)


def changed(action: ChangeAction, result: Result, route: int | str = "default") -> Outcome:
    """The outcome of a change event, and the route whose routing key it went to."""
    return Outcome(action, result, route)


def errored(action: ErrorAction) -> Outcome:
    """An error line: ``rule_error`` for a rule that failed, ``rejected`` for a bad event."""
    return Outcome(action, _RULE_ERROR if action.rule else _REJECTED)
