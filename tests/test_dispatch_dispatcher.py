"""The dispatcher's gates, table-driven: every status a trigger or a resolve can get, and from where."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from builders import make_config

from engine.dispatch.dispatcher import Dispatcher, DryRun, MemoryView, SilentNotifier
from engine.dispatch.outcomes import Result, Status
from engine.evaluation.actions import ChangeAction, ErrorAction, Extras, OpenIncident, ResolveAction, TriggerAction
from engine.language.routes import Route
from engine.language.silences import Silence, make_silence

KEY = "codespar-acme-api-build-349"


def trigger(severity: str = "high", errors: list[ErrorAction] | None = None) -> TriggerAction:
    return TriggerAction("build-failed", "e1", KEY, "t", severity,
                         lambda: Extras({"repo": "acme/api"}, {}, list(errors or [])))


def resolve(key: str | None = KEY) -> ResolveAction:
    return ResolveAction("build-fixed", "e2", key, "fixed")


@dataclass
class Answering:
    """A backend that answers every call with ``result`` and records what reached it."""

    result: Result
    view: MemoryView = field(default_factory=MemoryView)
    notifier: SilentNotifier = field(default_factory=SilentNotifier)
    calls: list[str] = field(default_factory=list)

    def create(self, action: TriggerAction, route: Route | None = None) -> Result:
        self.calls.append("create")
        return self.result

    def resolve(self, action: ResolveAction) -> Result:
        self.calls.append("resolve")
        return self.result

    def acknowledge(self, incident_key: str) -> Result:
        self.calls.append("acknowledge")
        return self.result

    def reconcile(self) -> dict[str, int]:
        return {}

    def with_actor(self, actor: str) -> Answering:
        return self


GATED = [  # (settings, severity, status, whether the backend was asked)
    ({"severity_threshold": "high"}, "medium", Status.BELOW_THRESHOLD, False),
    ({"severity_threshold": "high", "enabled": False}, "low", Status.BELOW_THRESHOLD, False),  # threshold first
    ({"enabled": False}, "critical", Status.DISABLED, False),
    ({}, "high", Status.CREATED, True),
    ({}, "high", Status.FAILED, True),
]


@pytest.mark.parametrize(("settings", "severity", "status", "asked"), GATED)
def test_trigger_gates_threshold_then_enabled_then_the_backend(settings: dict[str, Any], severity: str,
                                                               status: Status, asked: bool) -> None:
    backend = Answering(Result(status if asked else Status.CREATED, error="boom" if status is Status.FAILED else None))
    config = make_config(**{"enabled": True, **settings})
    [outcome] = Dispatcher(config, backend).handle(trigger(severity))
    assert (outcome.action, outcome.status, backend.calls) == ("trigger", status, ["create"] if asked else [])


RESOLVE_GATED = [
    ({"auto_resolve": False}, Status.AUTO_RESOLVE_OFF, False),
    ({"auto_resolve": False, "enabled": False}, Status.AUTO_RESOLVE_OFF, False),  # auto-resolve first
    ({"enabled": False}, Status.DISABLED, False),
    ({}, Status.RESOLVED, True),
    ({}, Status.NOTHING_OPEN, True),
    ({}, Status.FAILED, True),
]


@pytest.mark.parametrize(("settings", "status", "asked"), RESOLVE_GATED)
def test_resolve_gates_auto_resolve_then_enabled_then_the_backend(settings: dict[str, Any], status: Status,
                                                                  asked: bool) -> None:
    backend = Answering(Result(status if asked else Status.RESOLVED))
    config = make_config(**{"enabled": True, "auto_resolve": True, **settings})
    [outcome] = Dispatcher(config, backend).handle(resolve())
    assert (outcome.action, outcome.status, backend.calls) == ("resolve", status, ["resolve"] if asked else [])


def test_a_dry_run_plans_then_deduplicates_then_resolves_once() -> None:
    dispatcher = Dispatcher(make_config(enabled=True), DryRun())
    statuses = [o.status for action in (trigger(), trigger(), resolve(), resolve(), resolve(None))
                for o in dispatcher.handle(action)]
    assert statuses == [Status.PLANNED, Status.DEDUPLICATED, Status.PLANNED, Status.NOTHING_OPEN,
                        Status.NOTHING_OPEN]


def test_a_dry_run_starts_from_the_incidents_it_is_given() -> None:
    view = MemoryView([OpenIncident(KEY, {"repo": "acme/api"}, "build-failed", "high", "t")])
    [outcome] = Dispatcher(make_config(), DryRun(view)).handle(trigger())
    assert outcome.status is Status.DEDUPLICATED


def test_template_errors_met_while_creating_come_before_the_trigger_line() -> None:
    failed = ErrorAction("e1", "labels.repo: 'x' is undefined", "build-failed")
    outcomes = Dispatcher(make_config(), DryRun()).handle(trigger(errors=[failed]))
    assert [(o.action, o.status) for o in outcomes] == [("error", Status.RULE_ERROR), ("trigger", Status.PLANNED)]
    assert outcomes[0].error == "labels.repo: 'x' is undefined" and outcomes[0].rule == "build-failed"


def test_a_duplicate_renders_no_labels_so_it_reports_no_template_errors() -> None:
    view = MemoryView([OpenIncident(KEY, {}, "build-failed", "high", "t")])
    failed = ErrorAction("e1", "labels.repo: 'x' is undefined", "build-failed")
    outcomes = Dispatcher(make_config(), DryRun(view)).handle(trigger(errors=[failed]))
    assert [o.status for o in outcomes] == [Status.DEDUPLICATED]


@pytest.mark.parametrize(("action", "status"), [
    (ErrorAction("e9", "deploy.health: 'repo' is a required property"), Status.REJECTED),
    (ErrorAction("e9", "when: division by zero", "deploy-errors"), Status.RULE_ERROR),
])
def test_an_error_action_is_an_error_line(action: ErrorAction, status: Status) -> None:
    [outcome] = Dispatcher(make_config(), DryRun()).handle(action)
    assert (outcome.action, outcome.status, outcome.error) == ("error", status, action.error)


def test_a_dry_run_acknowledges_only_what_it_has_open_and_reconciles_nothing() -> None:
    backend = DryRun()
    Dispatcher(make_config(), backend).handle(trigger())
    assert backend.acknowledge(KEY).status is Status.PLANNED
    assert backend.acknowledge("other").status is Status.NOTHING_OPEN
    assert backend.reconcile() == {"checked": 0, "resolved": 0, "acknowledged": 0, "failed": 0}
    backend.notifier.announce("triggered", {"incident_key": KEY})
    backend.notifier.flush()
    assert list(backend.notifier.failures) == []


# Silences (README "Silences and maintenance windows"): after the threshold, before everything else.

def silence(starts_at: float = 100.0, ends_at: float = 200.0, silence_id: str = "s1", **match: Any) -> Silence:
    return make_silence(match or {"repo": "acme/api"}, created_by="ada", comment="db upgrade", starts_at=starts_at,
                        ends_at=ends_at, created_at=starts_at, silence_id=silence_id)


@dataclass
class LiveLikeView(MemoryView):
    """A view that, like the state's, goes by the clock and records what it muted."""

    event_time = False  # type: ignore[assignment]
    muted: list[tuple[str, str, float]] = field(default_factory=list)

    def __init__(self, silences: tuple[Silence, ...]):
        MemoryView.__init__(self, silences=silences)
        self.muted = []

    def record_silenced(self, action: TriggerAction, silence: Silence, at: float) -> None:
        self.muted.append((action.incident_key, silence.id, at))


def at(when: float | None, severity: str = "high") -> TriggerAction:
    action = trigger(severity)
    action.at = when
    return action


SILENCE_GATED = [  # (settings, severity, status, whether the backend was asked)
    ({}, "high", Status.SILENCED, False),
    ({"severity_threshold": "high"}, "medium", Status.BELOW_THRESHOLD, False),  # below threshold stays so
    ({"enabled": False}, "critical", Status.SILENCED, False),  # silenced says more than disabled
]


@pytest.mark.parametrize(("settings", "severity", "status", "asked"), SILENCE_GATED)
def test_a_matching_silence_mutes_after_the_threshold(settings: dict[str, Any], severity: str, status: Status,
                                                      asked: bool) -> None:
    backend = Answering(Result(Status.CREATED), view=MemoryView(silences=[silence()]))
    [outcome] = Dispatcher(make_config(**{"enabled": True, **settings}), backend).handle(at(150.0, severity))
    assert (outcome.status, backend.calls) == (status, [])
    assert outcome.to_line().get("silence_id") == ("s1" if status is Status.SILENCED else None)


def test_resolves_and_change_events_are_never_muted() -> None:
    backend = Answering(Result(Status.RESOLVED), view=MemoryView(silences=[silence(0.0, 1e10)]))
    dispatcher = Dispatcher(make_config(enabled=True, auto_resolve=True), backend)
    [outcome] = dispatcher.handle(ResolveAction("build-fixed", "e2", KEY, "fixed", at=150.0))
    assert (outcome.status, backend.calls) == (Status.RESOLVED, ["resolve"])
    change = ChangeAction("deploy", "e3", "deployed v2", labels={"repo": "acme/api"})
    [sent] = Dispatcher(make_config(enabled=True), DryRun(MemoryView(silences=[silence(0.0, 1e10)]))).handle(change)
    assert sent.status is Status.PLANNED


def test_a_page_sent_by_hand_is_never_muted_by_a_silence() -> None:
    backend = Answering(Result(Status.CREATED), view=MemoryView(silences=[silence(0.0, 1e10)]))
    [outcome] = Dispatcher(make_config(enabled=True), backend, honour_silences=False).handle(at(150.0))
    assert (outcome.status, backend.calls) == (Status.CREATED, ["create"])


def test_a_silence_that_does_not_match_the_labels_lets_the_page_through() -> None:
    backend = Answering(Result(Status.CREATED), view=MemoryView(silences=[silence(repo="acme/web")]))
    [outcome] = Dispatcher(make_config(enabled=True), backend).handle(at(150.0))
    assert (outcome.status, backend.calls) == (Status.CREATED, ["create"])


def test_a_dry_run_goes_by_the_events_time_and_the_clock_when_it_has_none() -> None:
    dispatcher = Dispatcher(make_config(), DryRun(MemoryView(silences=[silence()])), clock=lambda: 250.0)
    statuses = [dispatcher.handle(at(when))[0].status for when in (99.0, 150.0, None)]
    assert statuses == [Status.PLANNED, Status.SILENCED, Status.DEDUPLICATED]  # None: the clock's 250, after it


def test_a_live_run_goes_by_its_clock_and_records_what_it_muted() -> None:
    view = LiveLikeView((silence(),))
    backend = Answering(Result(Status.CREATED), view=view)
    now = [150.0]
    dispatcher = Dispatcher(make_config(enabled=True), backend, clock=lambda: now[0])
    assert dispatcher.handle(at(999.0))[0].status is Status.SILENCED  # the event's own time is not asked
    assert view.muted == [(KEY, "s1", 150.0)] and backend.calls == []


def test_when_a_silence_ends_the_next_repeat_pages_and_nothing_pages_before_it() -> None:
    backend = Answering(Result(Status.CREATED), view=LiveLikeView((silence(),)))
    now = [120.0]
    dispatcher = Dispatcher(make_config(enabled=True), backend, clock=lambda: now[0])
    assert dispatcher.handle(trigger())[0].status is Status.SILENCED
    now[0] = 250.0  # the silence is over; no event yet: nothing is sent on its own
    assert backend.calls == []
    assert dispatcher.handle(trigger())[0].status is Status.CREATED and backend.calls == ["create"]


def test_with_no_silence_active_a_trigger_renders_no_labels() -> None:
    rendered: list[str] = []

    def extras() -> Extras:
        rendered.append("labels")
        return Extras({"repo": "acme/api"}, {}, [])
    view = MemoryView([OpenIncident(KEY, {}, "build-failed", "high", "t")], silences=[silence(500.0, 600.0)])
    action = TriggerAction("build-failed", "e1", KEY, "t", "high", extras, at=150.0)
    assert Dispatcher(make_config(), DryRun(view)).handle(action)[0].status is Status.DEDUPLICATED
    assert rendered == []


def test_the_first_matching_silence_is_named() -> None:
    view = MemoryView(silences=[silence(silence_id="a", repo="acme/web"), silence(silence_id="b"),
                                silence(silence_id="c", repo="acme/api", kind={"exists": False})])
    [outcome] = Dispatcher(make_config(), DryRun(view)).handle(at(150.0))
    assert outcome.to_line()["silence_id"] == "b"


# ---- pending triggers (for:) with an injected clock ---------------------------------------------
class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def held(at: float | None = None, hold: float = 600.0) -> TriggerAction:
    action = trigger()
    action.pending_for, action.at = hold, at
    return action


def pending_dispatcher(**settings: Any) -> tuple[Dispatcher, DryRun, Clock]:
    clock, backend = Clock(), DryRun()
    return Dispatcher(make_config(**settings), backend, clock), backend, clock


def test_a_first_match_is_pending_until_its_duration_then_a_repeat_pages() -> None:
    dispatcher, backend, clock = pending_dispatcher()
    first = dispatcher.handle(held(at=1000.0))[0]
    assert first.status is Status.PENDING and first.to_line()["pending_until"] == "1970-01-01T00:26:40Z"
    assert backend.view.get(KEY) is None and KEY in backend.view.pending
    early = dispatcher.handle(held(at=1599.0))[0]
    assert early.status is Status.PENDING and early.result.pending_until == first.result.pending_until
    late = dispatcher.handle(held(at=1600.0))[0]  # at the duration: it pages
    assert late.status is Status.PLANNED and backend.view.get(KEY) is not None and not backend.view.pending
    assert dispatcher.handle(held(at=1601.0))[0].status is Status.DEDUPLICATED  # open: no new hold


def test_a_recovery_while_pending_cancels_it_and_sends_nothing() -> None:
    dispatcher, backend, clock = pending_dispatcher()
    dispatcher.handle(held(at=1000.0))
    out = dispatcher.handle(resolve())[0]
    assert out.status is Status.CANCELLED_PENDING and out.to_line()["status"] == "cancelled_pending"
    assert not backend.view.pending and dispatcher.fire_due(10_000.0) == []
    assert dispatcher.handle(resolve())[0].status is Status.NOTHING_OPEN  # the hold is gone: nothing to cancel
    assert dispatcher.handle(held(at=2000.0))[0].status is Status.PENDING  # a new first match holds anew


def test_fire_due_pages_a_hold_once_its_time_has_passed_through_the_gates_then() -> None:
    dispatcher, backend, clock = pending_dispatcher()
    dispatcher.handle(held(at=None))  # no event time: the clock (1000) starts the hold
    assert dispatcher.fire_due(1599.0) == []
    clock.now = 1600.0
    fired = dispatcher.fire_due()
    assert [(o.status, o.incident_key) for o in fired] == [(Status.PLANNED, KEY)]
    assert backend.view.get(KEY) is not None and backend.view.get(KEY).labels == {"repo": "acme/api"}
    assert dispatcher.fire_due(99_999.0) == []  # paged once


def test_a_due_hold_meets_the_gates_as_they_stand_when_it_fires() -> None:
    backend = DryRun()
    Dispatcher(make_config(), backend).handle(held(at=1000.0))
    disabled = Dispatcher(make_config(enabled=False), backend)  # e.g. a reload turned paging off meanwhile
    assert [o.status for o in disabled.fire_due(1600.0)] == [Status.DISABLED]
    silence = make_silence({"repo": "acme/api"}, created_by="ops", comment="maint", starts_at=0.0, ends_at=9e9,
                           created_at=0.0)
    silenced = DryRun(MemoryView(silences=[silence]))
    dispatcher = Dispatcher(make_config(), silenced)
    dispatcher.handle(held(at=1000.0))
    assert [o.status for o in dispatcher.fire_due(1600.0)] == [Status.SILENCED]


def test_a_for_hold_a_silence_mutes_is_kept_and_the_first_trigger_after_the_silence_pages_at_once() -> None:
    """Found rereading issue 15 ("when a silence ends, a trigger that is still being repeated pages at its next
    event"): a for: hold that came due inside a silence was dropped, so the first repeat after the silence
    started a new hold and its page waited out the whole for: again. The muted hold is kept: no wake-up pages
    it (nothing pages retroactively), a repeat inside the silence is muted too, the first one after pages."""
    view = MemoryView(silences=[silence(starts_at=0.0, ends_at=2000.0)])
    dispatcher = Dispatcher(make_config(), DryRun(view))
    assert dispatcher.handle(held(at=1000.0))[0].status is Status.PENDING  # for: 600 s, due at 1600
    assert [o.status for o in dispatcher.fire_due(1600.0)] == [Status.SILENCED]  # due inside the silence
    assert KEY in view.pending and dispatcher.fire_due(1700.0) == []  # kept, and muted once, not every tick
    assert dispatcher.handle(held(at=1800.0))[0].status is Status.SILENCED  # a repeat inside the silence
    assert dispatcher.fire_due(2500.0) == []  # the silence is over: nothing pages on its own
    paged = dispatcher.handle(held(at=2600.0))[0]  # the first repeat after it: its for: passed long ago
    assert paged.status is Status.PLANNED and view.get(KEY) is not None and not view.pending


def test_an_over_hold_an_event_finds_inside_a_silence_is_muted_kept_and_a_recovery_drops_it() -> None:
    view = MemoryView(silences=[silence(starts_at=0.0, ends_at=2000.0)])
    dispatcher = Dispatcher(make_config(), DryRun(view))
    dispatcher.handle(held(at=1000.0))
    assert dispatcher.handle(held(at=1650.0))[0].status is Status.SILENCED  # over, but muted
    assert KEY in view.pending and dispatcher.fire_due(9_999.0) == []
    out = dispatcher.handle(resolve())[0]
    assert out.status is Status.CANCELLED_PENDING and not view.pending  # nothing was sent for it
    assert dispatcher.handle(held(at=2600.0))[0].status is Status.PENDING  # a new first match holds anew


def test_below_the_threshold_a_trigger_is_never_held() -> None:
    dispatcher, backend, _ = pending_dispatcher(severity_threshold="critical")
    assert dispatcher.handle(held(at=1000.0))[0].status is Status.BELOW_THRESHOLD and not backend.view.pending


def test_a_due_hold_pagerduty_cannot_take_is_held_again_not_lost() -> None:
    backend = Answering(Result(Status.FAILED, error="PagerDuty unreachable", retry=True))
    clock = Clock()
    dispatcher = Dispatcher(make_config(), backend, clock)
    dispatcher.handle(held(at=None))
    assert [o.status for o in dispatcher.fire_due(1600.0)] == [Status.FAILED]
    assert backend.view.pending[KEY].until == 1630.0  # tried again later
    backend.result = Result(Status.CREATED, incident_id="P1")
    assert [o.status for o in dispatcher.fire_due(1630.0)] == [Status.CREATED] and not backend.view.pending


def test_a_repeat_whose_page_pagerduty_cannot_take_yet_is_retried_at_once_not_held_anew() -> None:
    """Found in review: the over hold was dropped before the page, so the retry of that event started a new
    hold and the page waited out another whole duration (with no further event, in a queue, for ever)."""
    clock, outage = Clock(), Answering(Result(Status.FAILED, error="PagerDuty unreachable", retry=True))
    down = Dispatcher(make_config(enabled=True), outage, clock)
    assert down.handle(held(at=1000.0))[0].status is Status.PENDING
    assert down.handle(held(at=1600.0))[0].status is Status.FAILED  # due, but PagerDuty is down
    outage.result = Result(Status.CREATED, "P1")
    retried = down.handle(held(at=1630.0))[0]  # the daemon retries the event
    assert (retried.status, outage.calls) == (Status.CREATED, ["create", "create"])


class Killed(BaseException):
    """kill -9: the process stops where it is and writes nothing more."""


@dataclass
class KilledMidPage(DryRun):
    """A dry run whose process is killed while it creates an incident: from then on no state is written."""

    def create(self, action: TriggerAction, route: Route | None = None) -> Result:
        def dead(*args: Any) -> Any:
            raise Killed()
        for step in ("pending_hold", "pending_release", "pending_done", "pending_forget"):
            setattr(self.view, step, dead)
        raise Killed()


def test_a_process_killed_while_an_event_pages_an_over_hold_leaves_it_to_a_wake_up_after_the_lease() -> None:
    """Third review R3: the event that found its key's for: over dropped the hold before it paged and put it
    back only from an except clause, which kill -9 never runs: the page was lost. The hold is now taken with
    a lease, as a wake-up takes it, so another process's wake-up pages it once the lease has passed."""
    from engine.dispatch.dispatcher import LEASE_SECONDS
    view = MemoryView()
    killed = Dispatcher(make_config(), KilledMidPage(view), Clock())
    assert killed.handle(held(at=1000.0))[0].status is Status.PENDING
    with pytest.raises(Killed):
        killed.handle(held(at=1600.0))  # over: this repeat pages it, and the process dies mid-create
    for step in ("pending_hold", "pending_release", "pending_done", "pending_forget"):
        delattr(view, step)
    assert KEY in view.pending, "the hold was dropped with its page never sent"
    survivor = Dispatcher(make_config(), DryRun(view), Clock())
    assert survivor.fire_due(1600.0 + LEASE_SECONDS - 1) == []  # the dead process's lease holds it still
    assert [o.status for o in survivor.fire_due(1600.0 + LEASE_SECONDS)] == [Status.PLANNED]
    assert view.get(KEY) is not None and not view.pending
    assert survivor.handle(held(at=1700.0 + LEASE_SECONDS))[0].status is Status.DEDUPLICATED


# ---- repeat control and flap control (README "Repeat control", "Flap control") ---------------------------
def flapping(at: float) -> TriggerAction:
    from engine.language.model import Flap
    action = trigger()
    action.flap, action.renotify, action.at = Flap(2, 600.0), 3600.0, at
    return action


def test_disabled_answers_before_renotify_and_flap_and_neither_holds_then() -> None:
    view = MemoryView()
    view.paged_at[KEY], view.hand_resolved[KEY] = 0.0, 10.0
    [outcome] = Dispatcher(make_config(enabled=False), DryRun(view)).handle(flapping(at=100.0))
    assert outcome.status is Status.DISABLED and KEY in view.hand_resolved  # nothing looked at, nothing forgotten


def test_a_due_held_resolve_pagerduty_cannot_take_is_held_again_30_seconds_later() -> None:
    backend = Answering(Result(Status.CREATED, incident_id="P1"))
    dispatcher = Dispatcher(make_config(), backend, Clock())
    for at in (100.0, 200.0):  # two opens within 600 s: flapping from the second recovery on
        backend.view.open(OpenIncident(KEY, {"repo": "acme/api"}, "build-failed", "high", "t"))
        dispatcher.handle(flapping(at=at))
    backend.result = Result(Status.RESOLVED)
    [outcome] = dispatcher.handle(ResolveAction("build-fixed", "e2", KEY, "fixed", at=300.0))
    assert outcome.status is Status.FLAPPING and backend.calls == ["create", "create"]  # no resolve sent
    backend.result = Result(Status.FAILED, error="PagerDuty unreachable", retry=True)
    assert [o.status for o in dispatcher.fire_due(900.0)] == [Status.FAILED]
    assert backend.view.held_resolves[KEY].until == 930.0  # not lost: tried again later
    backend.result = Result(Status.RESOLVED)
    assert [o.status for o in dispatcher.fire_due(930.0)] == [Status.RESOLVED] and not backend.view.held_resolves


def test_a_held_resolve_whose_release_raises_is_held_again() -> None:
    class Raising(Answering):
        def resolve(self, action: ResolveAction) -> Result:
            raise RuntimeError("state unreachable")

    backend = Raising(Result(Status.CREATED))
    dispatcher = Dispatcher(make_config(), backend, Clock())
    backend.view.open(OpenIncident(KEY, {"repo": "acme/api"}, "build-failed", "high", "t"))
    dispatcher.handle(flapping(at=100.0))
    dispatcher.handle(flapping(at=200.0))
    assert dispatcher.handle(ResolveAction("build-fixed", "e2", KEY, "fixed", at=300.0))[0].status is Status.FLAPPING
    with pytest.raises(RuntimeError):
        dispatcher.fire_due(900.0)
    assert KEY in backend.view.held_resolves


class KeyOrdered(DryRun):
    """A dry run whose create and resolve take one lock, as KeyLocked's key lock orders them under
    ``watch --queue``; a create waits (with a deadline) for a resolve to be waiting on it."""

    def __init__(self, view: MemoryView):
        super().__init__(view)
        self.lock, self.creating, self.resolving = threading.Lock(), threading.Event(), threading.Event()

    def create(self, action: Any, route: Any = None) -> Result:
        with self.lock:
            self.creating.set()
            self.resolving.wait(5.0)  # the recovery is waiting on the key (or, never calling resolve, never is)
            return super().create(action, route)

    def resolve(self, action: Any) -> Result:
        self.resolving.set()
        with self.lock:
            return super().resolve(action)


def test_a_recovery_meeting_a_hold_a_wake_up_is_paging_resolves_after_the_page() -> None:
    """Second review item 2: worker A's wake-up took a due for: hold and is creating its incident; worker B's
    recovery of the key finds the taken hold. B must not answer cancelled_pending unresolved: it goes on to
    resolve, which the key lock orders after A's create, so no page is left open after its recovery."""
    from builders import MAIN_RED_KEY as KEY
    from builders import T0, main_build, main_red_rules, rules_from

    from engine.dispatch.pipeline import Pipeline
    config = make_config()
    backend = KeyOrdered(MemoryView())
    rules = rules_from(main_red_rules("for: 30s"), config)
    a, b = Pipeline(rules, Dispatcher(config, backend)), Pipeline(rules, Dispatcher(config, backend))
    assert [o.status for o in a.outcomes(main_build("failed", 0, "f1"))] == [Status.PENDING]
    seen: list[Status] = []
    recovery = threading.Thread(target=lambda: seen.extend(
        o.status for o in b.outcomes(main_build("passed", 0.75, "p1"))))

    def start_recovery() -> None:
        backend.creating.wait(5.0)
        recovery.start()
    starter = threading.Thread(target=start_recovery)
    starter.start()
    [paged] = a.dispatcher.fire_due(T0 + 31)
    starter.join(5.0)
    recovery.join(5.0)
    assert paged.status is Status.PLANNED
    assert seen and seen[-1] is Status.PLANNED, seen  # the resolve went out, after the page
    assert backend.view.get(KEY) is None and not backend.view.pending


def test_a_recovery_meeting_a_hold_taken_by_a_wake_up_that_died_is_cancelled_pending() -> None:
    """The same, when the wake-up died before paging: the resolve finds nothing open, and the line says the
    hold was cancelled (nothing was sent for it)."""
    from builders import MAIN_RED_KEY as KEY
    from builders import T0, main_build, main_red_rules, rules_from

    from engine.dispatch.dispatcher import LEASE_SECONDS
    from engine.dispatch.pipeline import Pipeline
    config = make_config()
    view = MemoryView()
    p = Pipeline(rules_from(main_red_rules("for: 30s"), config), Dispatcher(config, DryRun(view)))
    p.outcomes(main_build("failed", 0, "f1"))
    assert view.pending_take(KEY, T0 + 30, T0 + 31 + LEASE_SECONDS)  # a wake-up took it, then died
    assert [o.status for o in p.outcomes(main_build("passed", 0.75, "p1"))] == [Status.CANCELLED_PENDING]
    assert not view.pending and view.get(KEY) is None
