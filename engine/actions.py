"""What evaluation decides, and the view of open incidents it reads. No I/O here."""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# PagerDuty documents 255 characters for Events API dedup keys and gives no limit
# for REST incident_key; we hold REST keys to the same 255
# (../shared/pagerduty-api/REFERENCE.md §11).
MAX_INCIDENT_KEY = 255
# The REST spec sets no maxLength on incident.title; the Events API caps a summary
# at 1024 characters, the only documented figure (REFERENCE.md §11).
MAX_TITLE = 1024
_HASH_CHARS = 16


@dataclass(frozen=True)
class OpenIncident:
    """An incident believed open, as a recovery sees it."""

    incident_key: str
    labels: Mapping[str, str]
    rule: str
    severity: str
    title: str
    incident_id: str | None = None


class IncidentView(Protocol):
    """Read-only view of open incidents: in memory for a dry run, the state file when live."""

    def get(self, incident_key: str) -> OpenIncident | None: ...

    def select(self, labels: Mapping[str, frozenset[str]]) -> list[OpenIncident]: ...


@dataclass(frozen=True)
class TriggerAction:
    rule: str
    event_id: Any
    incident_key: str
    title: str
    severity: str
    labels: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)
    also_matched: tuple[str, ...] = ()
    kind: str = "trigger"


@dataclass(frozen=True)
class ResolveAction:
    """Resolve one incident. ``incident_key`` is None when a label selector found nothing open."""

    rule: str
    event_id: Any
    incident_key: str | None
    message: str
    known_open: bool
    selector: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "resolve"


@dataclass(frozen=True)
class ErrorAction:
    """An event rejected, or a rule that could not be evaluated or rendered."""

    event_id: Any
    error: str
    rule: str | None = None
    kind: str = "error"


Action = TriggerAction | ResolveAction | ErrorAction


def full_key(prefix: str, rendered: str) -> str:
    """``prefix-rendered``, shortened deterministically past MAX_INCIDENT_KEY (a prefix plus a hash of the whole)."""
    key = f"{prefix}-{rendered}"
    if len(key) <= MAX_INCIDENT_KEY:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{key[: MAX_INCIDENT_KEY - _HASH_CHARS - 1]}-{digest}"


def full_title(title_format: str, severity: str, text: str) -> str:
    """``[CodeSpar] Critical: text``, cut to MAX_TITLE with an ellipsis."""
    title = title_format.format(Severity=severity.capitalize(), severity=severity, title=text)
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"
