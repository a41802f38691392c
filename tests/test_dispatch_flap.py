"""Flap control (README "Flap control"): a key that opened ``flap.opens`` times within ``flap.within`` has
its recovery held (``flapping``, a note on the incident) until it stays recovered for the window; a
trigger in between cancels the hold, adds a note and pages nothing; ``fire_due`` resolves it after.
On a dry run (MemoryView, event times) here; against the fake PagerDuty, with a restart, below."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from builders import EVENTS_ROUTING_KEY, T0, events_api_config, main_red_rules, make_config, rules_from
from builders import MAIN_RED_KEY as KEY
from builders import iso_at as iso
from builders import main_build as event
from fake_pagerduty import FROM_EMAIL, POLICY, SERVICE, TOKEN, FakePagerDuty

from engine.dispatch.dispatcher import Dispatcher, DryRun, MemoryView
from engine.dispatch.outcomes import Status
from engine.dispatch.pipeline import Pipeline
from engine.pagerduty.backend import live_backend
from engine.pagerduty.state import State

FLAP = "flap: {opens: 3, within: 30m}"


@dataclass
class NotingDryRun(DryRun):
    """A dry run that records the notes it was asked to add (the live one sends them to PagerDuty)."""

    notes: list[tuple[str, str]] = field(default_factory=list)
    note_error: str | None = None

    def add_note(self, incident_key: str, text: str) -> str | None:
        self.notes.append((incident_key, text))
        return self.note_error


def pipeline(flap: str = FLAP, **settings: Any) -> tuple[Pipeline, NotingDryRun]:
    config = make_config(**settings)
    backend = NotingDryRun(MemoryView())
    return Pipeline(rules_from(main_red_rules(flap), config), Dispatcher(config, backend)), backend


def lines(p: Pipeline, *events: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    out = [o for e in events for o in p.outcomes(e)]
    return [(o.action, o.status.value, o.to_line().get("resolve_at")) for o in out]


FLAPPING = [event("failed", 0, "f1"), event("passed", 2, "p1"), event("failed", 4, "f2"), event("passed", 6, "p2"),
            event("failed", 8, "f3")]


def test_the_third_open_within_the_window_holds_its_recovery_with_a_note() -> None:
    p, backend = pipeline()
    assert lines(p, *FLAPPING[:4]) == [("trigger", "planned", None), ("resolve", "planned", None)] * 2
    [line] = lines(p, FLAPPING[4], event("passed", 10, "p3"))[1:]
    assert line == ("resolve", "flapping", iso(T0 + 40 * 60))  # recovered at +10m, held for 30m
    assert backend.view.get(KEY) is not None  # still one open incident
    [(key, text)] = backend.notes
    assert key == KEY
    assert text == ("pagerules: recovered, but this key opened 3 times in 30m: held open as flapping; it resolves "
                    f"once it stays recovered for 30m (at {iso(T0 + 40 * 60)})")


def test_a_trigger_while_held_pages_nothing_cancels_the_hold_and_is_noted() -> None:
    p, backend = pipeline()
    lines(p, *FLAPPING, event("passed", 10, "p3"))
    assert lines(p, event("failed", 12, "f4")) == [("trigger", "flapping", None)]
    assert backend.view.held_resolves == {} and backend.view.get(KEY) is not None
    assert backend.notes[-1] == (KEY, "pagerules: flapped again: main-red fired at 2026-01-01T00:12:00Z "
                                      "(4th open in 30m); the held resolve is cancelled and the incident stays open")
    assert lines(p, event("failed", 13, "f5")) == [("trigger", "deduplicated", None)]  # a plain repeat now
    # the cancelled hold resolves nothing when its time comes; the next recovery is held anew
    assert p.dispatcher.fire_due(T0 + 41 * 60) == []
    assert lines(p, event("passed", 14, "p4")) == [("resolve", "flapping", iso(T0 + 44 * 60))]


def test_the_wake_up_resolves_it_once_it_stayed_recovered_for_the_window() -> None:
    p, backend = pipeline()
    lines(p, *FLAPPING, event("passed", 10, "p3"))
    assert p.dispatcher.fire_due(T0 + 40 * 60 - 1) == []  # not yet
    [outcome] = p.dispatcher.fire_due(T0 + 40 * 60)
    line = outcome.to_line()
    assert (line["action"], line["status"], line["incident_key"], line["rule"], line["event_id"]) == \
        ("resolve", "planned", KEY, "main-green", "p3")
    assert backend.view.get(KEY) is None and backend.view.held_resolves == {}
    assert p.dispatcher.fire_due(T0 + 50 * 60) == []  # once only


def test_a_repeated_recovery_while_held_keeps_the_first_window() -> None:
    p, backend = pipeline()
    lines(p, *FLAPPING, event("passed", 10, "p3"))
    assert lines(p, event("passed", 20, "p4")) == [("resolve", "flapping", iso(T0 + 40 * 60))]
    assert len(backend.notes) == 1  # one note for the hold, none for a repeat of the recovery


def test_opens_outside_the_window_do_not_count() -> None:
    p, _ = pipeline()
    spread = [event("failed", 0, "f1"), event("passed", 2, "p1"), event("failed", 20, "f2"), event("passed", 22, "p2"),
              event("failed", 40, "f3"), event("passed", 42, "p3")]
    assert [s for _, s, _ in lines(p, *spread)] == ["planned"] * 6  # the first open is 42m before the last recovery


def test_without_flap_or_with_auto_resolve_off_nothing_is_held() -> None:
    p, backend = pipeline(flap="")
    assert [s for _, s, _ in lines(p, *FLAPPING, event("passed", 10, "p3"))] == ["planned"] * 6
    p, backend = pipeline(auto_resolve=False)
    assert lines(p, *FLAPPING, event("passed", 10, "p3"))[-1] == ("resolve", "auto_resolve_off", None)
    assert backend.view.held_resolves == {} and backend.notes == []


def test_a_note_that_fails_keeps_the_hold_and_says_why_on_the_line() -> None:
    p, backend = pipeline()
    backend.note_error = "PagerDuty unreachable"
    lines(p, *FLAPPING)
    [outcome] = p.outcomes(event("passed", 10, "p3"))
    assert (outcome.status, outcome.to_line()["note_error"]) == (Status.FLAPPING, "PagerDuty unreachable")
    assert KEY in backend.view.held_resolves  # held all the same: never a lost resolve


# ---- live, against the fake PagerDuty -------------------------------------------------------------------------
def live_pipeline(fake: FakePagerDuty, tmp_path: Path, now: list[float]) -> tuple[Pipeline, State]:
    env = {"PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL, "PAGERDUTY_SERVICE_ID": SERVICE,
           "PAGERDUTY_ESCALATION_POLICY_ID": POLICY, "PAGERDUTY_API_URL": fake.url,  # type: ignore[attr-defined]
           "PAGERULES_RETRY_BACKOFF": "0.05"}
    config = make_config("dedup_window_seconds: 60", env=env)
    backend = live_backend(config, str(tmp_path / "state.db"))
    backend.clock = lambda: now[0]
    return Pipeline(rules_from(main_red_rules(FLAP), config),
                    Dispatcher(config, backend, clock=lambda: now[0])), backend.state


def live_lines(p: Pipeline, now: list[float], *steps: tuple[float, dict[str, Any]]) -> list[str]:
    out = []
    for minute, e in steps:
        now[0] = T0 + minute * 60
        out += [o.status.value for o in p.outcomes(e)]
    return out


def test_live_a_flapping_key_is_held_noted_refired_and_resolved_after_a_restart(fake: FakePagerDuty,
                                                                               tmp_path: Path) -> None:
    now = [T0]
    p, state = live_pipeline(fake, tmp_path, now)
    steps = [(float(e["build_number"] - 1), e) for e in FLAPPING]
    assert live_lines(p, now, *steps) == ["created", "resolved", "created", "resolved", "created"]
    assert live_lines(p, now, (10, event("passed", 10, "p3"))) == ["flapping"]
    [open_id] = [i for i, inc in fake.incidents.items() if inc["status"] != "resolved"]
    assert fake.incidents[open_id]["notes"][-1].startswith("pagerules: recovered, but this key opened 3 times in 30m")
    # a re-fire: no incident, a note, the hold gone
    assert live_lines(p, now, (12, event("failed", 12, "f4"))) == ["flapping"]
    assert len(fake.incidents) == 3 and "(4th open in 30m)" in fake.incidents[open_id]["notes"][-1]
    assert state.held_resolve(KEY) is None
    # recovered again: held anew, and a restart (a new State on the same file) keeps the hold
    assert live_lines(p, now, (14, event("passed", 14, "p4"))) == ["flapping"]
    p, state = live_pipeline(fake, tmp_path, now)
    held = state.held_resolve(KEY)
    assert held is not None and held.until == T0 + 44 * 60
    assert p.dispatcher.fire_due(T0 + 43 * 60) == []
    [outcome] = p.dispatcher.fire_due(T0 + 44 * 60)
    assert (outcome.status, outcome.incident_key) == (Status.RESOLVED, KEY)
    assert fake.incidents[open_id]["status"] == "resolved" and state.get(KEY) is None
    actions = [r["action"] for r in reversed(state.recent_audit(100)) if r["incident_key"] == KEY]
    assert actions.count("flapping") == 2 and actions.count("note") == 3
    assert "flapping_refired" in actions and actions[-2:] == ["resolved", "flapping_released"]  # removed once decided


def test_live_a_note_pagerduty_refuses_still_holds_the_resolve(fake: FakePagerDuty, tmp_path: Path) -> None:
    now = [T0]
    p, state = live_pipeline(fake, tmp_path, now)
    live_lines(p, now, *[(float(e["build_number"] - 1), e) for e in FLAPPING])
    fake.faults = {"status": 500, "count": 100}
    now[0] = T0 + 600
    [outcome] = p.outcomes(event("passed", 10, "p3"))
    fake.faults = {}
    assert outcome.status is Status.FLAPPING and outcome.to_line()["note_error"]
    assert state.held_resolve(KEY) is not None
    assert any(r["action"] == "note_failed" for r in state.recent_audit(20))


def test_a_recovery_after_the_hold_is_due_resolves_when_no_wake_up_ran() -> None:
    p, backend = pipeline()
    lines(p, *FLAPPING, event("passed", 10, "p3"))
    assert lines(p, event("passed", 40, "p4")) == [("resolve", "planned", None)]  # `process` has no wake-up
    assert backend.view.get(KEY) is None and backend.view.held_resolves == {}


def test_live_an_events_api_route_holds_the_same_way_without_notes(fake: FakePagerDuty, tmp_path: Path) -> None:
    routing_key = EVENTS_ROUTING_KEY
    config = events_api_config(fake, "dedup_window_seconds: 60")
    now = [T0]
    backend = live_backend(config, str(tmp_path / "state.db"))
    backend.clock = lambda: now[0]
    p = Pipeline(rules_from(main_red_rules(FLAP), config), Dispatcher(config, backend, clock=lambda: now[0]))
    steps = [(float(e["build_number"] - 1), e) for e in [*FLAPPING, event("passed", 10, "p3")]]
    assert live_lines(p, now, *steps) == ["created", "resolved", "created", "resolved", "created", "flapping"]
    assert fake.open_dedup_keys(routing_key) == {routing_key: [KEY]}  # held open: no resolve event sent
    assert fake.calls("POST", "/incidents") == [] and not [c for c in fake.calls() if c["path"].endswith("/notes")]
    assert live_lines(p, now, (12, event("failed", 12, "f4"))) == ["flapping"]
    # 3 triggers, 2 resolves, and the re-fire's trigger past the dedup window, folded into the open alert
    assert len(fake.events_calls("/v2/enqueue")) == 6 and fake.open_dedup_keys(routing_key) == {routing_key: [KEY]}
    live_lines(p, now, (14, event("passed", 14, "p4")))
    [outcome] = p.dispatcher.fire_due(T0 + 44 * 60)
    assert outcome.status is Status.RESOLVED and fake.open_dedup_keys(routing_key) == {}


def test_a_trigger_without_flap_still_cancels_a_held_resolve() -> None:
    """The rule file was edited to drop flap: (or another rule fires for the key) while its resolve is held:
    the trigger still cancels the hold and is noted, so the wake-up never resolves a key that fires."""
    p, backend = pipeline()
    lines(p, *FLAPPING, event("passed", 10, "p3"))
    assert KEY in backend.view.held_resolves
    config = make_config()
    edited = Pipeline(rules_from(main_red_rules(""), config), Dispatcher(config, backend))
    assert lines(edited, event("failed", 12, "f4")) == [("trigger", "flapping", None)]
    assert backend.view.held_resolves == {}
    assert backend.notes[-1] == (KEY, "pagerules: flapped again: main-red fired at 2026-01-01T00:12:00Z "
                                      "(4th open in 30m); the held resolve is cancelled and the incident stays open")
    assert edited.dispatcher.fire_due(T0 + 45 * 60) == []
    assert backend.view.get(KEY) is not None  # still open: it fired after the recovery


def test_with_no_held_resolve_a_trigger_without_flap_never_looks_for_one() -> None:
    p, backend = pipeline(flap="")
    looked: list[str] = []
    backend.view.resolve_held = lambda key: looked.append(key)  # type: ignore[method-assign,assignment,func-returns-value]
    assert [s for _, s, _ in lines(p, event("failed", 0, "f1"), event("failed", 1, "f2"))] == \
        ["planned", "deduplicated"]
    assert looked == []  # nothing held anywhere: the hot path pays one cheap check, no per-key look-up


def test_opens_paged_by_the_wake_up_count_for_flap() -> None:
    """A rule with for: and flap: pages each open from the wake-up (a held trigger): each counts."""
    p, backend = pipeline(flap=FLAP + "\n    for: 1m")
    out: list[tuple[str, str]] = []
    for minute, eid in ((0, "f1"), (4, "f2"), (8, "f3")):
        out += [(a, s) for a, s, _ in lines(p, event("failed", minute, eid))]
        out += [(o.action, o.status.value) for o in p.dispatcher.fire_due(T0 + (minute + 1) * 60)]
        out += [(a, s) for a, s, _ in lines(p, event("passed", minute + 2, f"p{eid}"))]
    assert out == [("trigger", "pending"), ("trigger", "planned"), ("resolve", "planned")] * 2 + \
        [("trigger", "pending"), ("trigger", "planned"), ("resolve", "flapping")]
    assert KEY in backend.view.held_resolves


def held_on_two_workers(backend: DryRun) -> tuple[Pipeline, Pipeline]:
    """Two workers (A, B) on one backend, once A has held the flapping key's recovery."""
    config = make_config()
    rules = rules_from(main_red_rules(FLAP), config)
    a, b = Pipeline(rules, Dispatcher(config, backend)), Pipeline(rules, Dispatcher(config, backend))
    lines(a, *FLAPPING, event("passed", 10, "p3"))
    return a, b


class Died(BaseException):
    """The process was killed between taking a held resolve and acting on it."""


def test_live_a_held_resolve_taken_by_a_wake_up_that_died_is_taken_again_after_the_lease(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    from engine.dispatch.dispatcher import LEASE_SECONDS
    now = [T0]
    p, state = live_pipeline(fake, tmp_path, now)
    live_lines(p, now, *[(float(e["build_number"] - 1), e) for e in FLAPPING], (10, event("passed", 10, "p3")))
    backend = p.dispatcher.backend

    def die(action: Any) -> Any:
        raise Died()
    backend.resolve = die  # type: ignore[method-assign]
    due = T0 + 40 * 60
    with pytest.raises(Died):
        p.dispatcher.fire_due(due)
    held = state.held_resolve(KEY)
    assert held is not None and held.until == due + LEASE_SECONDS  # taken, not lost
    other, state2 = live_pipeline(fake, tmp_path, now)  # another dispatcher on the same state
    assert other.dispatcher.fire_due(due + LEASE_SECONDS - 1) == []  # the lease still holds
    [outcome] = other.dispatcher.fire_due(due + LEASE_SECONDS)
    assert (outcome.status, outcome.incident_key) == (Status.RESOLVED, KEY)
    assert state2.held_resolve(KEY) is None and state2.get(KEY) is None


def test_a_trigger_while_a_wake_up_is_releasing_the_key_is_held_and_pages_once_it_resolved() -> None:
    """Review item 3: worker A's wake-up took the held resolve; before its resolve went out, worker B got
    the key's re-fire. B must not be deduplicated into the incident that A then resolves."""

    class Racy(NotingDryRun):
        hook: Any = None

        def resolve(self, action: Any) -> Any:
            if self.hook:
                hook, self.hook = self.hook, None
                hook()  # B runs between A's take and A's resolve
            return super().resolve(action)

    backend = Racy(MemoryView())
    a, b = held_on_two_workers(backend)
    seen: list[tuple[str, str, str | None]] = []
    backend.hook = lambda: seen.extend(lines(b, event("failed", 40.001, "f4")))
    [released] = a.dispatcher.fire_due(T0 + 40 * 60 + 0.01)
    assert released.status is Status.PLANNED and backend.view.get(KEY) is None  # A's resolve went out
    assert [(action, status) for action, status, _ in seen] == [("trigger", "pending")]  # B held, not merged
    [paged] = b.dispatcher.fire_due(T0 + 42 * 60)  # once A's lease has passed, B's trigger pages
    assert (paged.status, paged.to_line()["event_id"]) == (Status.PLANNED, "f4")
    assert backend.view.get(KEY) is not None


def test_a_for_hold_due_behind_a_resolve_whose_wake_up_died_pages_after_the_lease() -> None:
    """Second review item 1: a wake-up resolved the flapping key and died before it removed the held resolve
    (taken for its lease). A for: trigger of the key falls due inside that lease: the wake-up that takes it
    finds the resolve taken and holds the trigger behind it, on the trigger's own row. That row must be
    given back due at the lease's end, never removed as paged: the trigger pages then."""
    from engine.dispatch.dispatcher import LEASE_SECONDS
    from engine.evaluation.actions import HeldResolve, OpenIncident
    config = make_config()
    view = MemoryView()
    p = Pipeline(rules_from(main_red_rules("for: 30s"), config), Dispatcher(config, DryRun(view)))
    view.open(OpenIncident(KEY, {"kind": "main-red", "repo": "acme/api"}, "main-red", "high", "t"))
    view.held_resolves[KEY] = HeldResolve(KEY, "main-green", "p3", "green", T0 - 1800, T0, 3)

    def die(*args: Any) -> bool:
        raise Died()
    view.resolve_done = die  # type: ignore[method-assign]
    with pytest.raises(Died):
        p.dispatcher.fire_due(T0)  # resolved the key, died before it removed the held resolve
    del view.resolve_done
    assert view.get(KEY) is None and view.held_resolves[KEY].taken == 1
    failed = dict(event("failed", 0, "f9"), time=iso(T0 + 5))
    assert [o.status for o in p.outcomes(failed)] == [Status.PENDING]  # for: 30s, due at T0+35
    [behind] = p.dispatcher.fire_due(T0 + 36)  # due, but the resolve is taken: held behind it
    assert behind.status is Status.PENDING
    assert view.pending_get(KEY) is not None, "the trigger was dropped unpaged"
    assert view.pending[KEY].until == T0 + LEASE_SECONDS
    outcomes = p.dispatcher.fire_due(T0 + LEASE_SECONDS + 1)
    assert [(o.action, o.status) for o in outcomes if o.action == "trigger"] == [("trigger", Status.PLANNED)]
    assert view.get(KEY) is not None and view.pending_get(KEY) is None


def test_a_re_fire_while_a_wake_up_gives_its_held_resolve_back_never_leaves_the_resolve_held() -> None:
    """Second review item 3: worker A's wake-up took the held resolve and PagerDuty failed it (retry); A gives it
    back just as worker B's re-fire of the key looks at it (injected at the re-fire's first look that finds it
    taken). The re-fire must cancel the hold or wait behind it in one step: never be deduplicated with the
    hold left in place for the next wake-up to resolve a key that fired after its recovery."""
    from engine.dispatch.dispatcher import LEASE_SECONDS, RETRY_DUE_SECONDS
    from engine.evaluation.actions import HeldResolve, OpenIncident
    config = make_config()
    view = MemoryView()
    b = Pipeline(rules_from(main_red_rules(FLAP), config), Dispatcher(config, DryRun(view)))
    view.open(OpenIncident(KEY, {"kind": "main-red", "repo": "acme/api"}, "main-red", "high", "t"))
    view.held_resolves[KEY] = HeldResolve(KEY, "main-green", "p3", "green", T0 - 1800, T0, 3)
    lease = T0 + 1 + LEASE_SECONDS
    assert view.resolve_take(KEY, T0, lease) == 1  # A's resolve is under way
    released: list[bool] = []
    for name in ("resolve_forget", "resolve_refire"):  # whichever the re-fire asks first, A releases right after
        real = getattr(view, name, None)
        if real is None:
            continue

        def hooked(*args: Any, real: Any = real) -> Any:
            answer = real(*args)
            if not released:
                released.append(view.resolve_release(KEY, lease, T0 + 1 + RETRY_DUE_SECONDS))
            return answer
        setattr(view, name, hooked)
    [refire] = b.outcomes(dict(event("failed", 0, "f4"), time=iso(T0 + 2)))
    for name in ("resolve_forget", "resolve_refire"):
        view.__dict__.pop(name, None)
    assert refire.status in (Status.FLAPPING, Status.PENDING), refire.status
    woke = b.dispatcher.fire_due(T0 + 31)
    assert [o for o in woke if o.action == "resolve"] == [] and view.get(KEY) is not None  # it fired: stays open


def test_a_recovery_after_a_re_fire_during_a_failed_release_still_resolves_the_key() -> None:
    """Third review R4: worker A's wake-up took the held resolve; while its resolve was out, worker B got the
    key's re-fire (marked the hold fired, the trigger held behind A's lease) and then its recovery (which
    cancels that trigger and finds the resolve held). PagerDuty failed A's resolve. The last word was a
    recovery, so the resolve must be held again and sent, not dropped as re-fired with the key left open."""
    from engine.dispatch.dispatcher import RETRY_DUE_SECONDS
    from engine.dispatch.outcomes import Result

    class FailingRelease(NotingDryRun):
        hook: Any = None

        def resolve(self, action: Any) -> Any:
            if self.hook:
                hook, self.hook = self.hook, None
                hook()  # B runs while A's resolve is out
                return Result(Status.FAILED, error="PagerDuty answered 503", retry=True)
            return super().resolve(action)

    backend = FailingRelease(MemoryView())
    a, b = held_on_two_workers(backend)
    seen: list[tuple[str, str]] = []
    backend.hook = lambda: seen.extend((action, status) for action, status, _ in
                                       lines(b, event("failed", 40.001, "f4"), event("passed", 40.002, "p4")))
    due = T0 + 40 * 60 + 0.01
    [failed] = a.dispatcher.fire_due(due)
    assert failed.status is Status.FAILED and backend.view.get(KEY) is not None
    assert seen == [("trigger", "pending"), ("resolve", "flapping")]
    assert backend.view.pending_get(KEY) is None  # the recovery cancelled the re-fire's trigger
    assert KEY in backend.view.held_resolves, "the recovery's resolve was dropped as re-fired"
    outcomes = a.dispatcher.fire_due(due + RETRY_DUE_SECONDS)
    assert [(o.action, o.status) for o in outcomes] == [("resolve", Status.PLANNED)]
    assert backend.view.get(KEY) is None and KEY not in backend.view.held_resolves
