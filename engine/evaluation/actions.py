"""What evaluation decides, and the view of open incidents it reads. No I/O here."""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from engine.language.model import Flap

# PagerDuty documents 255 characters for Events API dedup keys and gives no limit
# for REST incident_key; we hold REST keys to the same 255
# (tests/fixtures/pagerduty-api/REFERENCE.md §11).
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

    def any_with(self, label: str, values: tuple[str, ...]) -> bool:
        """Whether any open incident has ``label`` set to one of ``values`` (a cheap first cut)."""
        ...

    def select(self, labels: Mapping[str, tuple[str, ...]]) -> list[OpenIncident]:
        """Open incidents whose every named label has one of the given values, by key."""
        ...


class PendingLabels(Protocol):
    """A view that also keeps triggers held pending, so a recovery selecting labels finds them too."""

    def pending_any(self) -> bool:
        """Whether any trigger is held (cheap: asked once per label selector)."""
        ...

    def pending_keys(self, labels: Mapping[str, tuple[str, ...]]) -> list[str]:
        """Keys of the held triggers whose every named label has one of the given values."""
        ...


@dataclass(slots=True)
class ErrorAction:
    """An event rejected, or a rule that could not be evaluated or rendered."""

    event_id: Any
    error: str
    rule: str | None = None
    kind: str = "error"


class Extras(NamedTuple):
    """A trigger's labels and details, and the error lines of templates that failed in them."""

    labels: dict[str, str]
    details: dict[str, str]
    errors: list[ErrorAction]


# Actions are made for every event, so they are slotted rather than frozen
# (frozen dataclasses set each field through object.__setattr__). Treat them as immutable.
@dataclass(slots=True)
class TriggerAction:
    """Open (or find open) the incident ``incident_key``.

    Labels and details are needed only when an incident is created, and most
    triggers in a storm are duplicates, so they are rendered on first use.
    """

    rule: str
    event_id: Any
    incident_key: str
    title: str
    severity: str
    render_extras: Callable[[], Extras] | None = field(default=None, repr=False, compare=False)
    also_matched: tuple[str, ...] = ()
    links: tuple[Mapping[str, str], ...] = ()  # [{href, text?}] rendered from the rule's links:
    at: float | None = None  # the event's own time (its ``time`` field, epoch seconds), when it gave one
    pending_for: float | None = None  # the rule's ``for:`` in seconds: hold the first page this long
    renotify: float | None = None  # the rule's ``renotify:`` in seconds (README "Repeat control")
    flap: Flap | None = None  # the rule's ``flap:`` (README "Flap control")
    kind: str = "trigger"
    _extras: Extras | None = field(default=None, repr=False, compare=False)

    def extras(self) -> Extras:
        if self._extras is None:
            self._extras = self.render_extras() if self.render_extras else Extras({}, {}, [])
        return self._extras

    @property
    def labels(self) -> dict[str, str]:
        return self.extras().labels

    @property
    def details(self) -> dict[str, str]:
        return self.extras().details

    @property
    def render_errors(self) -> tuple[ErrorAction, ...]:
        """The templates that failed in the labels and details rendered so far (none before first use)."""
        return tuple(self._extras.errors) if self._extras is not None and self._extras.errors else ()


@dataclass(frozen=True)
class PendingTrigger:
    """A trigger held by its rule's ``for:`` (README "Pending triggers"): what it would page with, rendered
    when it was first held, and when it pages (``until``) unless a recovery for its key comes first."""

    incident_key: str
    rule: str
    title: str
    severity: str
    labels: Mapping[str, str]
    details: Mapping[str, str]
    links: tuple[Mapping[str, str], ...]
    event_id: Any
    since: float
    until: float
    renotify: float | None = None  # the rule's renotify: and flap:, so the page it sends keeps them
    flap: Flap | None = None

    @classmethod
    def hold(cls, action: TriggerAction, since: float, until: float | None = None) -> PendingTrigger:
        """Hold ``action`` from ``since`` until its ``for:`` has passed, or until ``until`` (a trigger
        waiting for its ``renotify:``, README "Repeat control")."""
        if until is None:
            assert action.pending_for is not None
            until = since + action.pending_for
        return cls(action.incident_key, action.rule, action.title, action.severity, dict(action.labels),
                   dict(action.details), action.links, action.event_id, since, until, action.renotify, action.flap)

    def action(self) -> TriggerAction:
        """The trigger it pages with once due: no ``for:`` left, timed at ``until`` (a dry run's gates read it),
        with its rule's ``renotify:`` and ``flap:`` (README "Repeat control", "Flap control")."""
        return TriggerAction(self.rule, self.event_id, self.incident_key, self.title, self.severity,
                             links=self.links, at=self.until, renotify=self.renotify, flap=self.flap,
                             _extras=Extras(dict(self.labels), dict(self.details), []))


@dataclass(frozen=True)
class HandResolved:
    """A key whose incident a person resolved (README "Repeat control"): in PagerDuty (found by reconcile
    or before a create), or through pagerules (`pagerules resolve`, the dashboard, the API). ``paged_at``
    is when it last paged (None: not known, as for an incident a dry run was given open), ``labels`` what
    it was opened with, so a recovery selecting labels still finds it."""

    incident_key: str
    paged_at: float | None
    resolved_at: float
    labels: Mapping[str, str]


@dataclass(frozen=True)
class HeldResolve:
    """A recovery of a flapping key held back (README "Flap control"): it resolves at ``until`` unless the
    key fires again before then. ``opens`` is how many times the key opened within the window."""

    incident_key: str
    rule: str
    event_id: Any
    message: str
    since: float
    until: float
    opens: int
    taken: int = 0  # 0 held; 1 taken by a wake-up releasing it (``until`` is its lease); 2 taken, and fired since

    def action(self) -> ResolveAction:
        """The resolve it sends once due, timed at ``until``."""
        return ResolveAction(self.rule, self.event_id, self.incident_key, self.message, at=self.until)


@dataclass(slots=True)
class ResolveAction:
    """Resolve one incident. ``incident_key`` is None when a label selector found nothing open.
    ``by_hand``: a person's resolve (`pagerules resolve`, the dashboard, the API), not a rule's recovery."""

    rule: str
    event_id: Any
    incident_key: str | None
    message: str
    at: float | None = None  # the event's own time, when it gave one
    by_hand: bool = False
    kind: str = "resolve"
    # A page may be out that the state does not know of: a wake-up (or an event) took the key's for: hold
    # and may have died between sending its page and recording it. A REST page is found by incident_key; an
    # Events API one has no id to look up, so the resolve also goes by dedup_key to every Events API
    # integration (PagerDuty drops a resolve for a dedup_key it holds no open alert for).
    maybe_sent: bool = False


@dataclass(slots=True)
class ChangeAction:
    """Send a change event (a deploy, a rollback) to PagerDuty's Events API: shown beside incidents,
    never paging. ``labels`` choose the route; ``details`` and ``links`` travel in the body."""

    rule: str
    event_id: Any
    summary: str
    labels: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[Mapping[str, str], ...] = ()
    source: str | None = None
    timestamp: str | None = None  # ISO 8601, the event's time when it has one
    kind: str = "change"


Action = TriggerAction | ResolveAction | ChangeAction | ErrorAction


def full_key(prefix: str, rendered: str) -> str:
    """``prefix-rendered``, shortened deterministically past MAX_INCIDENT_KEY (a prefix plus a hash of the whole)."""
    key = f"{prefix}-{rendered}"
    if len(key) <= MAX_INCIDENT_KEY:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{key[: MAX_INCIDENT_KEY - _HASH_CHARS - 1]}-{digest}"


def is_shortened_key(key: str) -> bool:
    """Whether ``full_key`` shortened this key (it ends in the hash that stands for the rest)."""
    return len(key) == MAX_INCIDENT_KEY and key[-_HASH_CHARS - 1] == "-"


def full_title(title_format: str, severity: str, text: str) -> str:
    """``[CodeSpar] Critical: text``, cut to MAX_TITLE with an ellipsis."""
    title = title_format.format(Severity=severity.capitalize(), severity=severity, title=text)
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"
