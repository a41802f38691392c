"""Action -> Outcome (outcomes.py): the gates of README "Configuration" and "Output and exit status", then
the Backend: the protocol every caller uses, and DryRun, the backend of a dry run.

The gates are the same for a dry run and a live run, in this order:
trigger: below the severity threshold -> silenced -> disabled -> backend (already open: deduplicated; else create);
resolve: auto-resolve off -> disabled -> backend (nothing open; else resolve).
A dry run differs only in its backend: it plans, and remembers what it planned;
the live one (engine/pagerduty/backend.py) asks the state and PagerDuty.

A trigger whose rule has ``for:`` is held first (after the threshold, README "Pending triggers"): its
first match for a key that is not open prints ``pending`` and is remembered in the view; a repeat at or
after the duration, or ``fire_due`` once it is due with no recovery in between, pages through the gates
above as they stand then. A resolve of a key still pending prints ``cancelled_pending`` and sends nothing.

Repeat control and flap control (README "Repeat control", "Flap control") sit after ``enabled``, just
before the backend, so they never hide a threshold, pending or silence answer. A trigger whose rule has
``renotify:`` for a key that is not open but that a person resolved waits (``renotify_wait``) until
``renotify`` has passed since its last page; a repeat of an open key never looks (the hot path). A
recovery of a key whose rule has ``flap:`` and that opened ``opens`` times within ``within`` is held
(``flapping``, a note on the incident) and resolves at ``fire_due`` once ``within`` passed with no
trigger; a trigger in between cancels the hold, adds a note and pages nothing (``flapping``).

Silences are read through the backend's view (SilenceView): the state's when live, the silences a dry
run was given otherwise. A silenced trigger calls nothing; resolves and change events are never muted,
so an incident opened before a silence still closes (alertmanager#226).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from engine import severity as sev
from engine.config import Config
from engine.dispatch.outcomes import (
    CANCELLED_PENDING,
    DEDUPLICATED,
    NOTHING_OPEN,
    PLANNED,
    Outcome,
    Result,
    Status,
    changed,
    errored,
    resolved,
    triggered,
)
from engine.errors import PageRulesError
from engine.evaluation.actions import (
    Action,
    ChangeAction,
    HandResolved,
    HeldResolve,
    IncidentView,
    OpenIncident,
    PendingTrigger,
    ResolveAction,
    TriggerAction,
)
from engine.evaluation.evaluate import iso_time
from engine.language.model import Flap
from engine.language.routes import Route, load_routes, pick_route, route_name
from engine.language.silences import Silence

_BELOW_THRESHOLD, _DISABLED = Result(Status.BELOW_THRESHOLD), Result(Status.DISABLED)
_AUTO_RESOLVE_OFF = Result(Status.AUTO_RESOLVE_OFF)
RETRY_DUE_SECONDS = 30.0  # a due pending trigger (or held resolve) PagerDuty could not take is tried again this later
# A wake-up takes a due hold for this long (its due time moved forward) and removes it once the page or resolve
# is decided: a process that dies in between leaves it to be taken again once the lease has passed.
LEASE_SECONDS = 60.0
# The due time of a for: hold whose page a silence muted: no wake-up takes it (nothing pages retroactively), and
# the key's next trigger after the silence pages at once, its for: long passed; a recovery drops it.
MUTED = float("inf")
# A due hold skipped this long because another process holds its key's turn is warned of (at most once a
# minute a key): a page that does not go out must never be silent.
BUSY_WARN_SECONDS = 2 * LEASE_SECONDS
log = logging.getLogger("pagerules.dispatch")
_OPENED = (Status.CREATED, Status.PLANNED)


@runtime_checkable
class SilenceView(Protocol):
    """What the silence gate asks of a backend's view (MemoryView; engine/pagerduty/state.py StateView)."""

    event_time: bool  # True: a trigger's own time (its event's ``time``) decides, as in a dry run and rule tests

    def active_silences(self, at: float) -> tuple[Silence, ...]:
        """The silences muting at ``at`` (none: the gate renders no labels); cheap, called per trigger."""
        ...

    def record_silenced(self, action: TriggerAction, silence: Silence, at: float) -> None:
        """Remember that ``silence`` muted ``action`` (live: the audit trail, as the silence's creator)."""
        ...


@runtime_checkable
class PendingView(Protocol):
    """Where triggers held by ``for:`` are remembered (MemoryView; engine/pagerduty/state.py StateView)."""

    event_time: bool

    def pending_get(self, incident_key: str) -> PendingTrigger | None: ...

    def pending_hold(self, held: PendingTrigger) -> PendingTrigger:
        """Remember ``held`` unless the key is already held; the hold now in force."""
        ...

    def pending_forget(self, incident_key: str, at: float, why: str) -> bool:
        """Drop the hold (``why``: paged, cancelled); whether this call dropped it (False: none, or another
        process took it first)."""
        ...

    def pending_due(self, at: float, limit: int = 100) -> list[PendingTrigger]:
        """Holds whose ``until`` is at or before ``at``, soonest first."""
        ...

    def pending_cancel(self, incident_key: str, at: float) -> int:
        """A recovery drops the hold: 0 none (or another process dropped it first), 1 dropped, 2 dropped one
        a wake-up has taken, which may have paged it (it died mid-page, or pages it this moment where no key
        turns order the two), so the recovery still resolves the key."""
        ...

    def pending_take(self, incident_key: str, until: float, lease_until: float) -> bool:
        """Take the due hold (read due at ``until``): due at ``lease_until`` now; True for one taker only."""
        ...

    def pending_done(self, incident_key: str, lease_until: float, at: float, why: str) -> bool:
        """Drop the hold this taker took (``why``: paged), once its page was decided."""
        ...

    def pending_release(self, incident_key: str, lease_until: float, until: float) -> bool:
        """Give back the hold this taker took, due at ``until``."""
        ...


@runtime_checkable
class RepeatView(Protocol):
    """What repeat control and flap control remember (MemoryView; engine/pagerduty/state.py StateView):
    keys a person resolved, each key's recent opens, and the resolves held for a flapping key."""

    event_time: bool

    def hand_resolved_get(self, incident_key: str) -> HandResolved | None: ...

    def hand_resolved_forget(self, incident_key: str, at: float, why: str) -> bool:
        """Forget a resolve by hand (``why``: recovered); whether there was one."""
        ...

    def record_renotify_wait(self, action: TriggerAction, at: float, until: float) -> None:
        """Remember that ``action`` waited for its renotify (live: the audit trail)."""
        ...

    def opened(self, action: TriggerAction, at: float, paged: bool = True) -> int:
        """The key's incident opened (a page went out, or, ``paged`` False, a flap re-fired) at ``at``:
        remember a page's time (the last page, for ``renotify:``) and, for a rule with ``flap:``, count
        it; the opens within its window."""
        ...

    def flap_count(self, incident_key: str, at: float) -> tuple[int, Flap] | None:
        """The key's opens within its flap window up to ``at``, and the setting they were counted for;
        None when no rule with ``flap:`` opened it lately."""
        ...

    def resolves_any(self) -> bool:
        """Whether any key's resolve is held (cheap: asked per trigger, so a trigger of a rule without
        ``flap:`` looks for its key's held resolve only when there is one somewhere)."""
        ...

    def resolve_held(self, incident_key: str) -> HeldResolve | None: ...

    def resolve_hold(self, held: HeldResolve) -> HeldResolve:
        """Hold ``held`` unless the key's resolve is held already; the hold in force."""
        ...

    def resolve_forget(self, incident_key: str, at: float, why: str) -> bool:
        """Drop the held resolve (``why``: refired, released); whether this call dropped it."""
        ...

    def resolves_due(self, at: float, limit: int = 100) -> list[HeldResolve]:
        """Held resolves whose ``until`` is at or before ``at``, soonest first."""
        ...

    def resolve_take(self, incident_key: str, until: float, lease_until: float) -> int | None:
        """Take the due held resolve with a lease; None (another taker has it), 1, or 2 (its key fired
        while an earlier taker had it: cancel it)."""
        ...

    def resolve_done(self, incident_key: str, lease_until: float, at: float, why: str) -> bool: ...

    def resolve_release(self, incident_key: str, lease_until: float, until: float) -> bool:
        """Hold again the resolve this taker took, due at ``until``; False when its key fired meanwhile."""
        ...

    def resolve_refire(self, incident_key: str, at: float) -> tuple[bool, float | None]:
        """The key fired, in one step: drop its held resolve ((True, None)); or, while a wake-up has it taken
        (lease not over), mark it fired and give the lease's end ((False, end)); (False, None): none held."""
        ...

    def resolve_recovered(self, incident_key: str) -> bool:
        """The key recovered again after a re-fire marked its taken held resolve fired: marked taken only
        again, so the taker's release (or, if it died, the next taker) still sends it; whether it was marked."""
        ...


@runtime_checkable
class KeyTurns(Protocol):
    """A backend whose processes take turns per incident_key (engine/pagerduty/keylock.py KeyLocked, on
    PostgreSQL): the dispatcher holds the key's turn across a whole decision (a hold taken and paged, a
    recovery's cancel and resolve), so another worker's decision for the key never falls in between."""

    def turn(self, incident_key: str) -> AbstractContextManager[None]:
        """Wait for the key's turn and hold it inside (reentrant: the backend's own calls take it again)."""
        ...

    def try_turn(self, incident_key: str) -> AbstractContextManager[bool]:
        """Take the key's turn only if no other process has it: True inside when taken (and held), else False
        at once. A wake-up uses it, so a key whose turn is held elsewhere (a long decision, a host that froze)
        is left due for a later round and never stalls the holds of other keys."""
        ...


@runtime_checkable
class NoteTaker(Protocol):
    """A backend that can add a note to a key's open incident (Live: REST; not the Events API)."""

    def add_note(self, incident_key: str, text: str) -> str | None:
        """Add ``text`` as a note; None when added (or there is nothing to add it to), else why it failed."""
        ...


def holds_labels(held: PendingTrigger, labels: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether a held trigger's every named label has one of the given values (a recovery's selector)."""
    return all(held.labels.get(name) in values for name, values in labels.items())


class MemoryView:
    """Open incidents in memory, indexed by key and by label value, for dry runs and tests; the
    silences a dry run was given (none unless given); and the triggers held pending."""

    event_time = True

    def __init__(self, incidents: Iterable[OpenIncident] = (), silences: Iterable[Silence] = ()):
        self._open: dict[str, OpenIncident] = {}
        self.pending: dict[str, PendingTrigger] = {}
        self._taken: set[str] = set()  # held keys a wake-up has taken (their until is the lease's end)
        self.hand_resolved: dict[str, float] = {}  # key -> when a person resolved it (README "Repeat control")
        self._hand_labels: dict[str, Mapping[str, str]] = {}
        self.paged_at: dict[str, float] = {}  # key -> its last page, for a rule with renotify: or flap:
        self.opens: dict[str, tuple[list[float], Flap]] = {}  # key -> its recent opens (README "Flap control")
        self.held_resolves: dict[str, HeldResolve] = {}
        self._by_label: dict[tuple[str, str], set[str]] = {}
        self.silences = tuple(silences)  # fixed here: a Dispatcher reads whether there are any when it is made
        for incident in incidents:
            self.open(incident)

    def active_silences(self, at: float) -> tuple[Silence, ...]:
        return tuple(s for s in self.silences if s.active_at(at)) if self.silences else ()

    def record_silenced(self, action: TriggerAction, silence: Silence, at: float) -> None:
        return None  # a dry run writes no audit trail: its output line says it

    def pending_get(self, incident_key: str) -> PendingTrigger | None:
        return self.pending.get(incident_key) if self.pending else None

    def pending_hold(self, held: PendingTrigger) -> PendingTrigger:
        return self.pending.setdefault(held.incident_key, held)

    def pending_forget(self, incident_key: str, at: float, why: str) -> bool:
        self._taken.discard(incident_key)
        return self.pending.pop(incident_key, None) is not None

    def pending_any(self) -> bool:
        return bool(self.pending) or bool(self.hand_resolved)

    def pending_keys(self, labels: Mapping[str, tuple[str, ...]]) -> list[str]:
        """Held triggers and keys resolved by hand whose labels match: a recovery selecting them cancels
        the one and forgets the other."""
        if not labels:
            return []
        keys = {k for k, p in self.pending.items() if holds_labels(p, labels)}
        keys |= {k for k, held in self._hand_labels.items()
                 if all(held.get(name) in values for name, values in labels.items())}
        return sorted(keys)

    # repeat control and flap control (RepeatView)
    def hand_resolved_get(self, incident_key: str) -> HandResolved | None:
        at = self.hand_resolved.get(incident_key) if self.hand_resolved else None
        if at is None:
            return None
        return HandResolved(incident_key, self.paged_at.get(incident_key), at, self._hand_labels.get(incident_key, {}))

    def hand_resolved_forget(self, incident_key: str, at: float, why: str) -> bool:
        self._hand_labels.pop(incident_key, None)
        return self.hand_resolved.pop(incident_key, None) is not None

    def record_renotify_wait(self, action: TriggerAction, at: float, until: float) -> None:
        return None  # a dry run writes no audit trail: its output line says it

    def opened(self, action: TriggerAction, at: float, paged: bool = True) -> int:
        key = action.incident_key
        if paged:  # a re-fire deduplicated into the open incident paged nothing: the last page stands
            self.paged_at[key] = at
        if action.flap is None:
            return 0
        times = [t for t in self.opens.get(key, ([], action.flap))[0] if t > at - action.flap.within] + [at]
        self.opens[key] = (times, action.flap)
        return len(times)

    def flap_count(self, incident_key: str, at: float) -> tuple[int, Flap] | None:
        found = self.opens.get(incident_key) if self.opens else None
        if found is None:
            return None
        times, flap = found
        return sum(1 for t in times if at - flap.within <= t <= at), flap

    def resolves_any(self) -> bool:
        return bool(self.held_resolves)

    def resolve_held(self, incident_key: str) -> HeldResolve | None:
        return self.held_resolves.get(incident_key) if self.held_resolves else None

    def resolve_hold(self, held: HeldResolve) -> HeldResolve:
        return self.held_resolves.setdefault(held.incident_key, held)

    def resolve_forget(self, incident_key: str, at: float, why: str) -> bool:
        held = self.held_resolves.get(incident_key) if self.held_resolves else None
        if held is None or held.taken and held.until > at:
            return False
        return self.held_resolves.pop(incident_key, None) is not None

    def resolves_due(self, at: float, limit: int = 100) -> list[HeldResolve]:
        return sorted((h for h in self.held_resolves.values() if h.until <= at), key=lambda h: h.until)[:limit]

    def resolve_take(self, incident_key: str, until: float, lease_until: float) -> int | None:
        held = self.held_resolves.get(incident_key)
        if held is None or held.until != until:
            return None
        self.held_resolves[incident_key] = replace(held, until=lease_until, taken=2 if held.taken == 2 else 1)
        return self.held_resolves[incident_key].taken

    def resolve_done(self, incident_key: str, lease_until: float, at: float, why: str) -> bool:
        held = self.held_resolves.get(incident_key)
        return held is not None and held.until == lease_until and self.held_resolves.pop(incident_key) is not None

    def resolve_release(self, incident_key: str, lease_until: float, until: float) -> bool:
        held = self.held_resolves.get(incident_key)
        if held is None or held.until != lease_until or held.taken != 1:
            return False
        self.held_resolves[incident_key] = replace(held, until=until, taken=0)
        return True

    def resolve_refire(self, incident_key: str, at: float) -> tuple[bool, float | None]:
        held = self.held_resolves.get(incident_key)
        if held is None:
            return False, None
        if held.taken and held.until > at:
            self.held_resolves[incident_key] = replace(held, taken=2)
            return False, held.until
        del self.held_resolves[incident_key]
        return True, None

    def resolve_recovered(self, incident_key: str) -> bool:
        held = self.held_resolves.get(incident_key)
        if held is None or held.taken != 2:
            return False
        self.held_resolves[incident_key] = replace(held, taken=1)
        return True

    def pending_due(self, at: float, limit: int = 100) -> list[PendingTrigger]:
        return sorted((p for p in self.pending.values() if p.until <= at), key=lambda p: p.until)[:limit]

    def pending_take(self, incident_key: str, until: float, lease_until: float) -> bool:
        held = self.pending.get(incident_key)
        if held is None or held.until != until:
            return False
        self.pending[incident_key] = replace(held, until=lease_until)
        self._taken.add(incident_key)
        return True

    def pending_cancel(self, incident_key: str, at: float) -> int:
        held = self.pending.pop(incident_key, None) if self.pending else None
        taken = incident_key in self._taken
        self._taken.discard(incident_key)
        return 0 if held is None else 2 if taken else 1

    def pending_done(self, incident_key: str, lease_until: float, at: float, why: str) -> bool:
        held = self.pending.get(incident_key)
        if held is None or held.until != lease_until:
            return False
        self._taken.discard(incident_key)
        return self.pending.pop(incident_key) is not None

    def pending_release(self, incident_key: str, lease_until: float, until: float) -> bool:
        held = self.pending.get(incident_key)
        if held is None or held.until != lease_until:
            return False
        self.pending[incident_key] = replace(held, until=until)
        self._taken.discard(incident_key)
        return True

    def get(self, incident_key: str) -> OpenIncident | None:
        return self._open.get(incident_key)

    def any_with(self, label: str, values: tuple[str, ...]) -> bool:
        if len(values) == 1:
            return (label, values[0]) in self._by_label  # entries are dropped when they empty
        return any((label, v) in self._by_label for v in values)

    def select(self, labels: Mapping[str, tuple[str, ...]]) -> list[OpenIncident]:
        if not labels:
            return []
        keys: set[str] | None = None
        for name, values in labels.items():
            found = self._with_label(name, values)
            keys = found if keys is None else keys & found
            if not keys:
                return []
        return [self._open[k] for k in sorted(keys or ())]

    def _with_label(self, name: str, values: tuple[str, ...]) -> set[str]:
        if len(values) == 1:
            return self._by_label.get((name, values[0]), set())
        return set().union(*(self._by_label.get((name, v), set()) for v in values))

    def open(self, incident: OpenIncident) -> None:
        self.close(incident.incident_key)
        if self.hand_resolved:  # paging again forgets a resolve by hand (README "Repeat control")
            self.hand_resolved_forget(incident.incident_key, 0.0, "paged")
        self._open[incident.incident_key] = incident
        for item in incident.labels.items():
            self._by_label.setdefault(item, set()).add(incident.incident_key)

    def close(self, incident_key: str) -> None:
        incident = self._open.pop(incident_key, None)
        held = self.held_resolves.get(incident_key) if self.held_resolves else None
        if held is not None and not held.taken:  # closed: a resolve held for it has nothing left to do
            del self.held_resolves[incident_key]  # (one a wake-up has taken, it removes, as the state does)
        for item in (incident.labels.items() if incident else ()):
            keys = self._by_label.get(item)
            if keys is not None:
                keys.discard(incident_key)
                if not keys:  # drop the entry, or the index grows with every label value ever seen
                    del self._by_label[item]

    def resolve_by_hand(self, incident_key: str, at: float) -> bool:
        """A person resolved the key's incident (in PagerDuty, or a rule test's ``resolve_by_hand`` step):
        closed, and remembered with its time for ``renotify:``. False when nothing was open for the key."""
        incident = self._open.get(incident_key)
        if incident is None:
            return False
        self.close(incident_key)
        self.hand_resolved[incident_key] = at
        self._hand_labels[incident_key] = dict(incident.labels)
        return True

    def __len__(self) -> int:
        return len(self._open)


class Announcer(Protocol):
    """Where news of an incident goes: the config's chat channels when live, nowhere in a dry run."""

    @property
    def failures(self) -> Iterable[Mapping[str, Any]]:
        """The latest deliveries that failed, newest first."""
        ...

    def announce(self, kind: str, incident: Mapping[str, Any]) -> None:
        """Queue ``kind`` (triggered, acknowledged, resolved) of ``incident`` for every channel that wants it."""
        ...

    def flush(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout``) for queued announcements to go out."""
        ...


class Backend(Protocol):
    """Where a gated action goes: a dry-run planner (DryRun), or PagerDuty (engine/pagerduty/backend.py: Live).

    Everything a caller needs is here, so no caller asks which one it has."""

    @property
    def view(self) -> IncidentView:
        """The open incidents evaluation reads."""
        ...

    @property
    def notifier(self) -> Announcer: ...

    def create(self, action: TriggerAction, route: Route | None = None) -> Result:
        """Open the incident (or find it open) on ``route``'s target (None: the global settings):
        planned/created, deduplicated, or failed."""
        ...

    def resolve(self, action: ResolveAction) -> Result:
        """Resolve the incident: planned/resolved, nothing_open, or failed."""
        ...

    def change(self, action: ChangeAction, route: Route | None = None) -> Result:
        """Send a change event to the route's routing key (None, or a REST route: the change routing key):
        planned/sent, disabled (no routing key for it, ``error`` says which setting), or failed."""
        ...

    def acknowledge(self, incident_key: str) -> Result:
        """Acknowledge the incident: planned/acknowledged, nothing_open, already_resolved, or failed."""
        ...

    def reconcile(self) -> dict[str, int]:
        """Learn what changed by hand: counts of checked, resolved, acknowledged and failed incidents."""
        ...

    def with_actor(self, actor: str) -> Backend:
        """The same backend, recording its actions in the audit trail as ``actor``."""
        ...


class SilentNotifier:
    """A dry run announces nothing."""

    failures: tuple[Mapping[str, Any], ...] = ()

    def announce(self, kind: str, incident: Mapping[str, Any]) -> None:
        return None

    def flush(self, timeout: float = 10.0) -> None:
        return None


@dataclass
class DryRun:
    """Plans actions and keeps the in-memory view they would leave behind. Contacts nothing."""

    view: MemoryView = field(default_factory=MemoryView)
    notifier: SilentNotifier = field(default_factory=SilentNotifier)

    def create(self, action: TriggerAction, route: Route | None = None) -> Result:
        if self.view.get(action.incident_key) is not None:
            return DEDUPLICATED
        self.view.open(OpenIncident(action.incident_key, dict(action.labels), action.rule, action.severity,
                                    action.title))
        return PLANNED

    def resolve(self, action: ResolveAction) -> Result:
        if action.incident_key is None or self.view.get(action.incident_key) is None:
            return NOTHING_OPEN
        self.view.close(action.incident_key)
        return PLANNED

    def change(self, action: ChangeAction, route: Route | None = None) -> Result:
        return PLANNED  # a dry run sends nothing, so there is nothing to remember

    def acknowledge(self, incident_key: str) -> Result:
        return PLANNED if self.view.get(incident_key) is not None else NOTHING_OPEN

    def reconcile(self) -> dict[str, int]:
        return {"checked": 0, "resolved": 0, "acknowledged": 0, "failed": 0}  # nothing to ask

    def with_actor(self, actor: str) -> DryRun:
        return self  # a dry run writes no audit trail

    def add_note(self, incident_key: str, text: str) -> str | None:
        return None  # a dry run has no incident to note: its output line says what would be held


def trigger_route(routes: tuple[Route, ...], action: TriggerAction) -> Route | None:
    """The route a trigger takes (README "Routes"): the first whose match holds for its labels; None: the
    global settings. The one place a route is chosen, for a dry run and a live one alike; with no routes
    the labels are not even rendered."""
    return pick_route(routes, action.labels) if routes else None


def resolve_route(routes: tuple[Route, ...], view: IncidentView, incident_key: str | None) -> Route | None:
    """The route of the open incident a resolve closes, chosen by the labels it was opened with; None
    (``default``) when no route is configured or the incident is not known open."""
    if not routes or incident_key is None:
        return None
    incident = view.get(incident_key)
    return pick_route(routes, incident.labels) if incident is not None else None


def matching_silence(silences: Iterable[Silence], labels: Mapping[str, str]) -> Silence | None:
    """The first of these silences whose matchers hold for the labels (they come soonest-started first)."""
    return next((s for s in silences if s.matches(labels)), None)


class Dispatcher:
    """Turns actions into outcomes, applying the config's gates. ``clock`` is the time of a live run's
    silences; a dry run's is each trigger's own (its event's ``time``), the clock when it has none."""

    def __init__(self, config: Config, backend: Backend, clock: Callable[[], float] = time.time,
                 honour_silences: bool = True):
        """``honour_silences=False`` for a page a person sends by hand: a silence mutes what rules decide,
        never a deliberate page (Alertmanager's silences, too, apply to alerts only)."""
        self.config = config
        self.backend = backend
        self.view = backend.view
        self.clock = clock
        self.routes = load_routes(config)
        self._threshold = sev.rank(config.severity_threshold)
        view = backend.view  # a dry run given no silences (the usual one) pays nothing per trigger for the gate
        self._silences = None if not honour_silences or isinstance(view, MemoryView) and not view.silences else \
            view if isinstance(view, SilenceView) else None
        self._pending = view if isinstance(view, PendingView) else None
        self._repeat = view if isinstance(view, RepeatView) else None
        self._notes = backend if isinstance(backend, NoteTaker) else None
        self._turns = backend if isinstance(backend, KeyTurns) else None
        self._busy_warned: dict[str, float] = {}  # key -> when a skipped due hold of it was last warned of

    def _skipped(self, what: str, incident_key: str, due: float, now: float) -> None:
        """A due hold skipped for its key's turn, held by another process: warned of once it is overdue."""
        if now - due >= BUSY_WARN_SECONDS and now - self._busy_warned.get(incident_key, -MUTED) >= 60:
            self._busy_warned[incident_key] = now
            log.warning("incident_key %r: its held %s, due at %s, is not sent yet: another process holds the "
                        "key's lock each time it is tried (a long decision, or a host frozen mid-decision); it is "
                        "tried again every round", incident_key, what, iso_time(due))

    def _turn(self, incident_key: str | None) -> AbstractContextManager[None]:
        """The key's turn across processes (KeyTurns), else nothing to wait for (one process decides alone)."""
        return self._turns.turn(incident_key) if self._turns is not None and incident_key is not None \
            else nullcontext()

    def _try_turn(self, incident_key: str) -> AbstractContextManager[bool]:
        """The key's turn if free now (KeyTurns.try_turn), else False; always True in one process alone."""
        return self._turns.try_turn(incident_key) if self._turns is not None else nullcontext(True)

    def handle(self, action: Action) -> list[Outcome]:
        """The outcome of an action, after the error outcomes of any template it rendered on the way."""
        if isinstance(action, TriggerAction):
            with self._turn(action.incident_key):
                outcome = self._trigger(action)
            errors = action.render_errors
            return [*map(errored, errors), outcome] if errors else [outcome]
        if isinstance(action, ResolveAction):
            with self._turn(action.incident_key):
                return [self._resolve(action)]
        if isinstance(action, ChangeAction):
            return [self._change(action)]
        return [errored(action)]

    def _trigger(self, action: TriggerAction) -> Outcome:
        route = trigger_route(self.routes, action) if self.routes else None  # no routes: no call (a hot path)
        name = route_name(route) if route else "default"
        if sev.rank(action.severity) < self._threshold:
            return triggered(action, _BELOW_THRESHOLD, name)
        over: PendingTrigger | None = None  # the over for: hold this trigger took (``until``: its lease)
        if action.pending_for is not None and self._pending is not None:
            held = self._held(action, self._pending)
            if isinstance(held, Result):
                return triggered(action, held, name)
            over = held
        with self._back_if_raised(over, action):  # not paged: the hold stays, over, never left taken
            muted = self._silenced(action) if self._silences is not None else None
            if muted is not None:
                if over is not None and self._pending is not None:  # kept, muted: the next repeat pages at once
                    self._pending.pending_release(over.incident_key, over.until, MUTED)
                return triggered(action, muted, name)
            if not self.config.enabled:
                self._over_done(over, action)
                return triggered(action, _DISABLED, name)
            # Any trigger for a key whose resolve is held cancels the hold, whether or not its rule says flap:
            # (the rule was edited, another rule fires for the key): one cheap "any held?" check first.
            repeat = self._repeat
            held_any = repeat is not None and repeat.resolves_any()
            if repeat is not None and action.renotify is None and action.flap is None and not held_any:
                repeat = None  # the hot path: nothing of repeat or flap control to look at
            refired: HeldResolve | None = None
            if repeat is not None:
                now = self._now(repeat, action.at)
                waiting = self._renotify_wait(action, repeat, now) if action.renotify is not None else None
                if waiting is not None:
                    self._hold_until_renotify(action, over, now, waiting)
                    return triggered(action, waiting, name)
                refired = repeat.resolve_held(action.incident_key) if held_any else None
                forgot, behind = repeat.resolve_refire(action.incident_key, now) if refired is not None \
                    else (False, None)
                if refired is not None and not forgot:
                    refired = None  # another worker released or cancelled it first, or is releasing it now
                    # (one step, so a hold given back meanwhile is cancelled, never left for the next wake-up):
                    if behind is not None and self._pending is not None:
                        # a wake-up is resolving the key this moment: this trigger is held until its lease ends,
                        # and pages then if the resolve went out (the resolve is not held again if it did not);
                        # the over hold this trigger took is given back due then (a wake-up's own row, taken by
                        # fire_due, is given back by it from this line's wait_until)
                        if over is not None:
                            self._pending.pending_release(action.incident_key, over.until, behind)
                        else:
                            self._pending.pending_hold(PendingTrigger.hold(action, now, behind))
                        return triggered(action, Result(Status.PENDING, pending_until=iso_time(behind),
                                                        wait_until=behind), name)
            try:
                result = self.backend.create(action, route)  # created/planned, deduplicated, failed
            except BaseException:
                if refired is not None:
                    repeat.resolve_hold(refired)  # type: ignore[union-attr]  # not known to have re-fired: held still
                raise
        pending = self._pending
        if result.status is Status.RENOTIFY_WAIT:  # the backend learnt of a resolve by hand just now
            self._hold_until_renotify(action, over, self._now(pending, action.at) if pending else 0.0, result)
        elif over is not None and result.status is Status.FAILED and result.retry:
            # Not paged yet: the hold stays, already over, so the retry of this event pages at once rather
            # than waiting out a new hold (or, with no further event, the wake-up pages it).
            self._over_back(over, action)
        elif over is not None:
            self._over_done(over, action)  # its page was decided: the hold is done
        elif action.renotify is not None and result.status in _OPENED and pending is not None \
                and pending.pending_get(action.incident_key) is not None:  # paged: a wait's hold is done
            pending.pending_forget(action.incident_key, self._now(pending, action.at), "paged")
        if repeat is not None:
            result = self._after_create(action, repeat, now, result, refired)
        return triggered(action, result, name)

    def _hold_until_renotify(self, action: TriggerAction, over: PendingTrigger | None, now: float,
                             waiting: Result) -> None:
        """A trigger that waits for its renotify is held as a pending trigger due at ``renotify_at``, so the
        wake-up pages it then unless a recovery for the key comes first (README "Repeat control"); a trigger
        whose ``for:`` was over keeps its hold, due then too. Nothing is dropped."""
        view = self._pending
        if view is None:
            return
        if over is not None:  # the hold this trigger took: given back, due then (or at once, if no time)
            view.pending_release(action.incident_key, over.until, waiting.wait_until or now)
        elif waiting.wait_until is not None:
            view.pending_hold(PendingTrigger.hold(action, now, waiting.wait_until))

    def _renotify_wait(self, action: TriggerAction, view: RepeatView, now: float) -> Result | None:
        """``renotify_wait`` when a person resolved the key's incident and ``renotify`` has not passed since
        its last page; None (page as usual) otherwise. A key open (a repeat, the usual trigger) never looks."""
        assert action.renotify is not None
        if self.view.get(action.incident_key) is not None:
            return None
        hand = view.hand_resolved_get(action.incident_key)
        if hand is None or hand.paged_at is None or now < hand.paged_at:
            return None  # never resolved by hand, or its last page is not known (or "after" now: the clock
            # went back): page as usual
        until = hand.paged_at + action.renotify
        if now >= until:
            return None
        view.record_renotify_wait(action, now, until)
        return Result(Status.RENOTIFY_WAIT, renotify_at=iso_time(until), wait_until=until)

    def _after_create(self, action: TriggerAction, view: RepeatView, now: float, result: Result,
                      refired: HeldResolve | None) -> Result:
        """Count an open (a page that went out, or a flap that re-fired) and, for a re-fire of a held key
        the backend found still open, note it on the incident: ``flapping``, nothing paged."""
        if refired is not None and result.status is Status.FAILED:
            view.resolve_hold(refired)  # not known to be open still: the resolve stays held, the retry decides
            return result
        if result.status not in _OPENED and not (refired is not None and result.status is Status.DEDUPLICATED):
            return result
        if refired is not None and action.flap is None:  # a rule without flap: re-fired a flapping key:
            counted = view.flap_count(action.incident_key, now)  # counted with the setting that held it
            action = replace(action, flap=counted[1] if counted else Flap(refired.opens, refired.until - refired.since))
        opens = view.opened(action, now, paged=result.status in _OPENED)
        if refired is None or result.status is not Status.DEDUPLICATED:
            return result
        window = _span(action.flap.within if action.flap else 0.0)
        note_error = self._note(action.incident_key, (
            f"pagerules: flapped again: {action.rule} fired at {iso_time(now)} ({_nth(opens)} open in {window}); "
            "the held resolve is cancelled and the incident stays open"))
        return Result(Status.FLAPPING, result.incident_id, note_error=note_error, incident_url=result.incident_url)

    def _note(self, incident_key: str, text: str) -> str | None:
        """Add a note to the key's incident; why it failed, or None. A failure is logged by the backend and
        never undoes the hold it explains."""
        if self._notes is None:
            return None
        try:
            return self._notes.add_note(incident_key, text)
        except PageRulesError as exc:
            return str(exc)

    def _now(self, view: PendingView | RepeatView, at: float | None) -> float:
        return at if view.event_time and at is not None else self.clock()

    def _held(self, action: TriggerAction, view: PendingView) -> Result | PendingTrigger | None:
        """``pending`` while the key's hold lasts (its first match starts one); else page now: the hold
        that is over, taken with a lease as a wake-up takes it (``until``: the lease), which the caller
        finishes once the page is decided or gives back if it is not, so a process killed in between
        leaves it to a wake-up after the lease instead of losing it; or None when the key is open already
        (a repeat: deduplicated as usual, no hold), or another process took the hold first (it pages it;
        this one goes on, and the key's lock or PagerDuty's dedup makes the two one incident). A hold a
        silence muted (MUTED) is over: this trigger pages it, or it is muted again."""
        key = action.incident_key
        if self.view.get(key) is not None:
            return None
        now = self._now(view, action.at)
        held = view.pending_get(key) or view.pending_hold(PendingTrigger.hold(action, now))
        if held.until != MUTED and now < held.until:
            return Result(Status.PENDING, pending_until=iso_time(held.until))
        lease = now + LEASE_SECONDS
        return replace(held, until=lease) if view.pending_take(key, held.until, lease) else None

    def _over_done(self, over: PendingTrigger | None, action: TriggerAction) -> None:
        """The over hold this trigger took is done: its page was decided (sent, muted, or refused)."""
        if over is not None and self._pending is not None:
            self._pending.pending_done(over.incident_key, over.until, self._now(self._pending, action.at), "paged")

    @contextmanager
    def _back_if_raised(self, over: PendingTrigger | None, action: TriggerAction) -> Iterator[None]:
        """Give back the over hold this trigger took if anything before or in its send raises (the state's
        silence check, the send itself): nothing went out, so it must not stay taken, which a recovery reads
        as a page that may be out unrecorded (ResolveAction.maybe_sent) and resolves everywhere in case."""
        try:
            yield
        except BaseException:
            self._over_back(over, action)
            raise

    def _over_back(self, over: PendingTrigger | None, action: TriggerAction) -> None:
        """Give back the over hold this trigger took, due at once: it was not paged."""
        if over is not None and self._pending is not None:
            self._pending.pending_release(over.incident_key, over.until, self._now(self._pending, action.at))

    def fire_due(self, at: float | None = None) -> list[Outcome]:
        """Page every held trigger whose duration has passed with no recovery for its key (the condition
        "still holds"): the daemon's wake-up, and a rule test's ``until``. Each goes through the gates as
        they stand now; one PagerDuty cannot take yet is held again and tried on a later call.

        Each is taken with a lease (LEASE_SECONDS) and removed only once its page was decided, so a process
        that dies in between loses nothing: another wake-up takes it once the lease has passed."""
        view = self._pending
        now = self.clock() if at is None else at
        out = self._release_resolves(now) if self._repeat is not None else []
        if view is None:
            return out
        for held in view.pending_due(now):
            with self._try_turn(held.incident_key) as mine:  # a recovery waits until the page is decided
                if mine:  # else another process is deciding for the key: still due on the next round
                    out += self._fire(view, held, now)
                else:
                    self._skipped("page", held.incident_key, held.until, now)
        return out

    def _fire(self, view: PendingView, held: PendingTrigger, now: float) -> list[Outcome]:
        """Take one due hold with a lease and page it: its outcomes (none when another worker took it)."""
        key, lease = held.incident_key, now + LEASE_SECONDS
        if not view.pending_take(key, held.until, lease):
            return []  # another worker took it
        outcomes = self.handle(held.action())  # raises: left taken, taken again once the lease passes
        waiting = next((o.result.wait_until for o in outcomes
                        if o.status in (Status.RENOTIFY_WAIT, Status.PENDING)), None)
        if any(o.status is Status.FAILED and o.retry for o in outcomes):
            view.pending_release(key, lease, now + RETRY_DUE_SECONDS)
        elif any(o.status is Status.SILENCED for o in outcomes):
            view.pending_release(key, lease, MUTED)  # its next trigger after the silence pages at once
        elif waiting is not None:  # a person resolved it meanwhile: due again when its renotify passes;
            # or held behind a resolve another wake-up has taken: due again when that lease ends (its
            # own hold is this very row, so it is given back, never removed unpaged)
            view.pending_release(key, lease, waiting)
        else:
            view.pending_done(key, lease, now, "paged")
        return outcomes

    def _release_resolves(self, now: float) -> list[Outcome]:
        """Resolve every held resolve (a flapping key's) whose window passed with no trigger, through the
        recovery's gates as they stand now; one PagerDuty cannot take yet is held again, tried later. Each
        is taken with a lease, as fire_due's holds are."""
        view = self._repeat
        assert view is not None
        out: list[Outcome] = []
        for held in view.resolves_due(now):
            with self._try_turn(held.incident_key) as mine:  # a trigger waits until the resolve is decided
                if mine:  # else another process is deciding for the key: still due on the next round
                    out += self._release(view, held, now)
                else:
                    self._skipped("resolve", held.incident_key, held.until, now)
        return out

    def _release(self, view: RepeatView, held: HeldResolve, now: float) -> list[Outcome]:
        """Take one due held resolve with a lease and send it: its outcome (none when another worker took it,
        or when the key fired while a wake-up that died had it: cancelled, as a re-fire cancels)."""
        key, lease = held.incident_key, now + LEASE_SECONDS
        taken = view.resolve_take(key, held.until, lease)
        if taken is None:
            return []  # another worker took it
        if taken == 2:
            view.resolve_done(key, lease, now, "refired")
            return []
        outcome = self._resolve(held.action(), hold=False)  # raises: left taken, taken again later
        if outcome.status is Status.FAILED and outcome.retry:
            if not view.resolve_release(key, lease, now + RETRY_DUE_SECONDS):
                view.resolve_done(key, lease, now, "refired")  # it fired meanwhile: not held again
        else:
            view.resolve_done(key, lease, now, "released")
        return [outcome]

    def _silenced(self, action: TriggerAction) -> Result | None:
        """``silenced`` (recorded by the view) when an active silence matches the trigger's labels; else None.
        The labels are rendered only when some silence is active."""
        view = self._silences
        assert view is not None
        at = action.at if view.event_time and action.at is not None else self.clock()
        active = view.active_silences(at)
        silence = matching_silence(active, action.labels) if active else None
        if silence is None:
            return None
        view.record_silenced(action, silence, at)
        return Result(Status.SILENCED, silence_id=silence.id)

    def _change(self, action: ChangeAction) -> Outcome:
        """A change event never pages, so no severity threshold; PAGERDUTY_ENABLED=false still holds it."""
        route = pick_route(self.routes, action.labels) if self.routes else None
        name = route_name(route) if route else "default"
        if not self.config.enabled:
            return changed(action, _DISABLED, name)
        return changed(action, self.backend.change(action, route), name)

    def _resolve(self, action: ResolveAction, hold: bool = True) -> Outcome:
        pending, key = self._pending, action.incident_key
        repeat = self._repeat
        if repeat is not None and key is not None and not action.by_hand \
                and repeat.hand_resolved_get(key) is not None:
            # the problem ended: the next failure is new and pages at once (README "Repeat control")
            repeat.hand_resolved_forget(key, self._now(repeat, action.at), "recovered")
        paging = False  # a wake-up that took the hold may be paging it this moment
        held = pending.pending_get(key) if hold and pending is not None and key is not None else None
        if held is not None:
            # a trigger held by for:, or waiting for its renotify: the recovery came first, it never pages
            # (a wake-up's release is no recovery: a trigger held behind it stays)
            assert pending is not None and key is not None
            dropped = pending.pending_cancel(key, self._now(pending, action.at))
            if dropped == 1 and self.view.get(key) is None:
                return resolved(action, CANCELLED_PENDING)  # nothing was sent for it, so nothing to resolve
            paging = dropped == 2  # resolve anyway: under watch --queue this recovery holds the key's turn,
            # which the wake-up held from its take to its release, so its page (if it went out) is open now,
            # or went out unrecorded if that wake-up died in between (ResolveAction.maybe_sent)
            if paging:
                action = replace(action, maybe_sent=True)
        unrecorded = held.labels if paging and held is not None and self.view.get(held.incident_key) is None \
            else None  # a page the state does not know: its route is where its labels send it
        name = "default" if not self.routes else route_name(
            pick_route(self.routes, unrecorded) if unrecorded is not None
            else resolve_route(self.routes, self.view, action.incident_key))
        if not self.config.auto_resolve:
            return resolved(action, _AUTO_RESOLVE_OFF, name)
        if not self.config.enabled:
            return resolved(action, _DISABLED, name)
        if hold and repeat is not None and key is not None and not action.by_hand:
            flapping = self._flapping(action, key, repeat)
            if flapping is not None:
                return resolved(action, flapping, name)
        result = self.backend.resolve(action)
        if paging and held is not None and result.status is Status.FAILED and result.retry:
            self._keep_unsure(held)
        if paging and result.status is Status.NOTHING_OPEN:
            return resolved(action, CANCELLED_PENDING)  # the wake-up had not paged it (or died): nothing sent
        return resolved(action, result, name)

    def _keep_unsure(self, held: PendingTrigger) -> None:
        """A recovery of a taken hold whose resolves PagerDuty could not all take yet: the hold goes back,
        taken and muted (no wake-up pages it), so the recovery, tried again with its event, finds it taken
        again and sends every resolve again (ResolveAction.maybe_sent lives in memory only)."""
        pending = self._pending
        assert pending is not None
        back = pending.pending_hold(held)  # due as it was (a key's turn keeps wake-ups off it meanwhile)
        pending.pending_take(back.incident_key, back.until, MUTED)

    def _flapping(self, action: ResolveAction, key: str, view: RepeatView) -> Result | None:
        """``flapping`` when the key opened its rule's ``flap.opens`` times within ``flap.within`` before this
        recovery: the resolve is held until ``within`` after it (or already was) and the incident noted;
        None (resolve as usual) otherwise, or when nothing is open for the key."""
        now = self._now(view, action.at)
        counted = view.flap_count(key, now)
        if counted is None:
            return None  # the usual recovery: one read, nothing held
        held = view.resolve_held(key)
        if held is not None:  # a repeat of the recovery: the first one's window stands
            if held.taken == 2:  # a trigger came while a wake-up was releasing it, and now this recovery:
                view.resolve_recovered(key)  # the last word is a recovery, so it is sent, not dropped as refired
            if now < held.until:
                return Result(Status.FLAPPING, resolve_at=iso_time(held.until))
            # due, and no wake-up released it (`process` runs none): this recovery resolves it
            view.resolve_forget(key, now, "released")
            return None
        opens, flap = counted
        incident = self.view.get(key)
        if opens < flap.opens or incident is None:
            return None
        held = view.resolve_hold(HeldResolve(key, action.rule, action.event_id, action.message, now,
                                             now + flap.within, opens))
        window = _span(flap.within)
        note_error = self._note(key, (
            f"pagerules: recovered, but this key opened {opens} times in {window}: held open as flapping; "
            f"it resolves once it stays recovered for {window} (at {iso_time(held.until)})"))
        return Result(Status.FLAPPING, incident.incident_id, note_error=note_error, resolve_at=iso_time(held.until))


def _span(seconds: float) -> str:
    """A duration as rules write it: ``30m``, ``1h30m``, ``45s``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or f"{seconds:g}s"


def _nth(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
