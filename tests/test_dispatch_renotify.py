"""Repeat control (README "Repeat control"): with ``renotify: R`` a key whose incident a person resolved,
and that still fires, pages again only once R has passed since its last page (``renotify_wait`` until
then); a rule's recovery, or the page itself, forgets the resolve by hand. Without it, as before: the
first trigger after the dedup window pages. Dry run (MemoryView, event times), then against the fake."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from builders import EVENTS_ROUTING_KEY, T0, events_api_config, main_red_rules, make_config, rules_from
from builders import MAIN_RED_KEY as KEY
from builders import iso_at as iso
from builders import main_build as event
from fake_pagerduty import FROM_EMAIL, POLICY, SERVICE, TOKEN, FakePagerDuty

from engine.dispatch.dispatcher import Dispatcher, DryRun, MemoryView
from engine.dispatch.pipeline import Pipeline
from engine.language.silences import make_silence
from engine.pagerduty import manual
from engine.pagerduty.backend import Live, live_backend


def rules(renotify: str = "renotify: 1h", severity: str = "high") -> str:
    return main_red_rules(renotify, severity)


def pipeline(renotify: str = "renotify: 1h", view: MemoryView | None = None, severity: str = "high",
             **settings: Any) -> tuple[Pipeline, MemoryView]:
    config = make_config(**settings)
    view = view if view is not None else MemoryView()
    return Pipeline(rules_from(rules(renotify, severity), config), Dispatcher(config, DryRun(view))), view


def lines(p: Pipeline, *events: dict[str, Any]) -> list[dict[str, Any]]:
    return [o.to_line() for e in events for o in p.outcomes(e)]


def statuses(p: Pipeline, *events: dict[str, Any]) -> list[str]:
    return [line["status"] for line in lines(p, *events)]


def test_after_a_resolve_by_hand_it_waits_for_renotify_since_its_last_page_then_pages() -> None:
    p, view = pipeline()
    assert statuses(p, event("failed", 0, "f1")) == ["planned"]
    assert view.resolve_by_hand(KEY, T0 + 10 * 60)
    [line] = lines(p, event("failed", 30, "f2"))
    assert (line["status"], line["renotify_at"]) == ("renotify_wait", iso(T0 + 3600))  # 1h after the page
    assert statuses(p, event("failed", 59, "f3"), event("failed", 60, "f4"), event("failed", 61, "f5")) == \
        ["renotify_wait", "planned", "deduplicated"]
    assert view.hand_resolved == {}  # paging again forgot it


def test_without_renotify_a_key_resolved_by_hand_pages_at_its_next_trigger() -> None:
    p, view = pipeline(renotify="")
    statuses(p, event("failed", 0, "f1"))
    view.resolve_by_hand(KEY, T0 + 60)
    assert statuses(p, event("failed", 2, "f2")) == ["planned"]


def test_a_rule_recovery_forgets_the_resolve_by_hand_so_the_next_failure_pages_at_once() -> None:
    p, view = pipeline()
    statuses(p, event("failed", 0, "f1"))
    view.resolve_by_hand(KEY, T0 + 60)
    [line] = lines(p, event("passed", 5, "p1"))  # its selector finds the key resolved by hand
    assert (line["action"], line["status"], line["incident_key"]) == ("resolve", "nothing_open", KEY)
    assert view.hand_resolved == {}
    assert statuses(p, event("failed", 10, "f2")) == ["planned"]


def test_a_threshold_or_a_silence_answers_before_renotify_and_a_repeat_never_looks() -> None:
    silence = make_silence({"repo": "acme/api"}, created_by="ada", comment="db work", starts_at=T0,
                           ends_at=T0 + 7200, created_at=T0)
    p, view = pipeline(view=MemoryView(silences=[silence]))
    view.paged_at[KEY] = T0  # paged before the silence began
    view.hand_resolved[KEY] = T0 + 60
    [line] = lines(p, event("failed", 5, "f1"))
    assert (line["status"], line["silence_id"]) == ("silenced", silence.id)
    p, view = pipeline(severity="low", severity_threshold="high")
    view.paged_at[KEY], view.hand_resolved[KEY] = T0, T0 + 60
    assert statuses(p, event("failed", 5, "f1")) == ["below_threshold"]
    p, view = pipeline()
    statuses(p, event("failed", 0, "f1"))
    looked: list[str] = []
    view.hand_resolved_get = lambda key: looked.append(key)  # type: ignore[method-assign,assignment,func-returns-value]
    assert statuses(p, event("failed", 1, "f2"), event("failed", 2, "f3")) == ["deduplicated"] * 2
    assert looked == []  # open: no renotify lookup on the hot path


# ---- live, against the fake PagerDuty -------------------------------------------------------------------------
def live(fake: FakePagerDuty, tmp_path: Path, now: list[float], renotify: str = "renotify: 1h"
         ) -> tuple[Pipeline, Live]:
    env = {"PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL, "PAGERDUTY_SERVICE_ID": SERVICE,
           "PAGERDUTY_ESCALATION_POLICY_ID": POLICY, "PAGERDUTY_API_URL": fake.url,  # type: ignore[attr-defined]
           "PAGERULES_RETRY_BACKOFF": "0.05"}
    config = make_config("dedup_window_seconds: 60", env=env)
    backend = live_backend(config, str(tmp_path / "state.db"))
    backend.clock = backend.reconciler.clock = lambda: now[0]
    return Pipeline(rules_from(rules(renotify), config), Dispatcher(config, backend, clock=lambda: now[0])), backend


def at(p: Pipeline, now: list[float], minute: float, e: dict[str, Any]) -> dict[str, Any]:
    now[0] = T0 + minute * 60
    [line] = [o.to_line() for o in p.outcomes(e)]
    return line


def creates(fake: FakePagerDuty) -> int:
    return len(fake.calls("POST", "/incidents"))


def test_live_a_resolve_by_hand_in_pagerduty_waits_before_reconcile_ran_then_pages(fake: FakePagerDuty,
                                                                                   tmp_path: Path) -> None:
    now = [T0]
    p, backend = live(fake, tmp_path, now)
    assert at(p, now, 0, event("failed", 0, "f1"))["status"] == "created"
    fake.resolve_by_hand(KEY)
    gets = len(fake.calls("GET"))
    line = at(p, now, 5, event("failed", 5, "f2"))  # past the dedup window: one GET finds it resolved
    assert (line["status"], line["renotify_at"]) == ("renotify_wait", iso(T0 + 3600))
    assert len(fake.calls("GET")) == gets + 1 and creates(fake) == 1
    line = at(p, now, 30, event("failed", 30, "f3"))  # the state knows now: no call at all
    assert line["status"] == "renotify_wait" and len(fake.calls("GET")) == gets + 1 and creates(fake) == 1
    line = at(p, now, 60, event("failed", 60, "f4"))
    assert (line["status"], line["incident_id"]) == ("created", "PINC0002")
    assert backend.state.hand_resolved(KEY) is None
    actions = [r["action"] for r in reversed(backend.state.recent_audit(50)) if r["incident_key"] == KEY]
    assert actions == ["create", "resolved", "hand_resolved", "renotify_wait", "pending", "renotify_wait", "create",
                       "pending_paged"]  # the wait held f2, due at renotify_at; f4's page took its place


def test_live_reconcile_learns_the_resolve_by_hand_and_a_rule_recovery_clears_it(fake: FakePagerDuty,
                                                                                 tmp_path: Path) -> None:
    now = [T0]
    p, backend = live(fake, tmp_path, now)
    at(p, now, 0, event("failed", 0, "f1"))
    fake.resolve_by_hand(KEY)
    now[0] = T0 + 120
    assert backend.reconcile()["resolved"] == 1
    hand = backend.state.hand_resolved(KEY)
    assert hand is not None and hand.paged_at == T0 and hand.labels == {"kind": "main-red", "repo": "acme/api"}
    assert at(p, now, 3, event("failed", 3, "f2"))["status"] == "renotify_wait"
    line = at(p, now, 4, event("passed", 4, "p1"))  # cancels f2, held until renotify_at
    assert (line["status"], line["incident_key"]) == ("cancelled_pending", KEY)
    assert backend.state.hand_resolved(KEY) is None
    assert at(p, now, 5, event("failed", 5, "f3"))["status"] == "created"  # a new failure pages at once


@pytest.mark.parametrize("actor", ["cli", "alice"])
def test_live_pagerules_resolve_is_a_resolve_by_hand(fake: FakePagerDuty, tmp_path: Path, actor: str) -> None:
    now = [T0]
    p, backend = live(fake, tmp_path, now)
    at(p, now, 0, event("failed", 0, "f1"))
    now[0] = T0 + 300
    assert manual.resolve(backend.config, backend.with_actor(actor), KEY)["status"] == "resolved"
    assert at(p, now, 10, event("failed", 10, "f2"))["status"] == "renotify_wait"
    assert creates(fake) == 1


def test_live_without_renotify_the_dedup_window_decides_as_before(fake: FakePagerDuty, tmp_path: Path) -> None:
    now = [T0]
    p, backend = live(fake, tmp_path, now, renotify="")
    at(p, now, 0, event("failed", 0, "f1"))
    fake.resolve_by_hand(KEY)
    gets = len(fake.calls("GET"))
    assert at(p, now, 2, event("failed", 2, "f2"))["status"] == "created"
    assert len(fake.calls("GET")) == gets  # no look-up for a rule without renotify


def test_live_an_events_api_route_waits_after_pagerules_resolve(fake: FakePagerDuty, tmp_path: Path) -> None:
    routing_key = EVENTS_ROUTING_KEY
    config = events_api_config(fake, "dedup_window_seconds: 60")
    now = [T0]
    backend = live_backend(config, str(tmp_path / "state.db"))
    backend.clock = lambda: now[0]
    p = Pipeline(rules_from(rules(), config), Dispatcher(config, backend, clock=lambda: now[0]))
    assert at(p, now, 0, event("failed", 0, "f1"))["status"] == "created"
    now[0] = T0 + 300
    assert manual.resolve(config, backend.with_actor("alice"), KEY)["status"] == "resolved"
    sent = len(fake.events_calls("/v2/enqueue"))
    line = at(p, now, 10, event("failed", 10, "f2"))
    assert (line["status"], line["renotify_at"]) == ("renotify_wait", iso(T0 + 3600))
    assert len(fake.events_calls("/v2/enqueue")) == sent  # nothing sent while it waits
    assert at(p, now, 60, event("failed", 60, "f3"))["status"] == "created"
    assert fake.open_dedup_keys(routing_key) == {routing_key: [KEY]}


def test_live_a_rule_recovery_during_a_full_reconcile_round_is_not_taken_for_a_resolve_by_hand(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    """The round read the open incidents, then the green build resolved one before the round asked about it."""
    now = [T0]
    p, backend = live(fake, tmp_path, now)
    assert at(p, now, 0, event("failed", 0, "f1"))["status"] == "created"
    client = backend.reconciler.client
    real_get = client.get_incident
    seen: list[str] = []

    def get_incident(incident_id: str) -> dict[str, Any]:
        client.get_incident = real_get  # type: ignore[method-assign]
        seen.append(at(p, now, 2, event("passed", 2, "p1"))["status"])  # the rule's recovery, mid-round
        return real_get(incident_id)
    client.get_incident = get_incident  # type: ignore[method-assign]
    now[0] = T0 + 150
    assert backend.reconciler.full()["checked"] == 1 and seen == ["resolved"]
    assert backend.state.hand_resolved(KEY) is None
    line = at(p, now, 10, event("failed", 10, "f2"))  # a new failure after the green build pages at once
    assert line["status"] == "created" and creates(fake) == 2


def test_live_a_log_entries_round_during_a_rule_recovery_is_not_taken_for_a_resolve_by_hand(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    """The recovery resolved the incident in PagerDuty and is adding its note when a round of log entries
    sees the resolve (the state still holds the incident): the recovery's own record forgets it again."""
    now = [T0]
    p, backend = live(fake, tmp_path, now)
    assert at(p, now, 0, event("failed", 0, "f1"))["status"] == "created"
    now[0] = T0 + 30
    backend.reconcile()  # the first round (full); the next one reads log entries
    client = backend.client
    real_note = client.add_note
    rounds: list[tuple[str, dict[str, int]]] = []

    def add_note(incident_id: str, text: str) -> Any:
        client.add_note = real_note  # type: ignore[method-assign]
        rounds.append((backend.reconciler.last_mode, backend.reconcile()))
        return real_note(incident_id, text)
    client.add_note = add_note  # type: ignore[method-assign]
    assert at(p, now, 2, event("passed", 2, "p1"))["status"] == "resolved"
    assert backend.reconciler.last_mode == "changes" and rounds[0][1]["resolved"] == 1  # the race happened
    assert backend.state.hand_resolved(KEY) is None
    assert at(p, now, 10, event("failed", 10, "f2"))["status"] == "created" and creates(fake) == 2


def test_a_page_by_the_wake_up_keeps_its_rules_renotify() -> None:
    p, view = pipeline(renotify="renotify: 1h\n    for: 1m")
    assert statuses(p, event("failed", 0, "f1")) == ["pending"]
    assert [o.status.value for o in p.dispatcher.fire_due(T0 + 60)] == ["planned"]
    assert view.resolve_by_hand(KEY, T0 + 10 * 60)
    assert statuses(p, event("failed", 20, "f2")) == ["pending"]  # for: answers first, as before a silence
    [outcome] = p.dispatcher.fire_due(T0 + 21 * 60)
    line = outcome.to_line()
    assert (line["status"], line["renotify_at"]) == ("renotify_wait", iso(T0 + 60 + 3600))  # 1h after its page


def test_a_trigger_that_waits_is_held_and_the_wake_up_pages_it_at_renotify_at() -> None:
    p, view = pipeline()
    statuses(p, event("failed", 0, "f1"))
    view.resolve_by_hand(KEY, T0 + 10 * 60)
    assert statuses(p, event("failed", 30, "f2")) == ["renotify_wait"]
    assert p.dispatcher.fire_due(T0 + 59 * 60) == []
    [outcome] = p.dispatcher.fire_due(T0 + 60 * 60)  # no further event: the wake-up pages it then
    assert (outcome.status.value, outcome.to_line()["event_id"]) == ("planned", "f2")
    assert view.pending == {} and view.hand_resolved == {}


def test_a_recovery_before_renotify_at_cancels_the_held_trigger() -> None:
    p, view = pipeline()
    statuses(p, event("failed", 0, "f1"))
    view.resolve_by_hand(KEY, T0 + 10 * 60)
    assert statuses(p, event("failed", 30, "f2"), event("passed", 40, "p1")) == ["renotify_wait", "cancelled_pending"]
    assert p.dispatcher.fire_due(T0 + 61 * 60) == [] and view.hand_resolved == {}


def test_an_over_for_hold_that_waits_is_held_until_renotify_at_not_paged_at_the_next_wake_up() -> None:
    """Review item 4: the for: hold put back after renotify_wait was paged by the next wake-up 1 s later."""
    p, view = pipeline(renotify="renotify: 1h\n    for: 1m")
    assert statuses(p, event("failed", 0, "f1")) == ["pending"]
    assert [o.status.value for o in p.dispatcher.fire_due(T0 + 60)] == ["planned"]
    view.resolve_by_hand(KEY, T0 + 10 * 60)
    assert statuses(p, event("failed", 20, "f3"), event("failed", 22, "f4")) == ["pending", "renotify_wait"]
    assert p.dispatcher.fire_due(T0 + 22 * 60 + 1) == [] and p.dispatcher.fire_due(T0 + 60 * 60) == []
    [outcome] = p.dispatcher.fire_due(T0 + 61 * 60)  # 1h after its last page (the wake-up's, at +1m)
    assert (outcome.status.value, outcome.to_line()["event_id"]) == ("planned", "f3")


def test_live_a_trigger_that_waits_is_paged_by_the_wake_up_at_renotify_at(fake: FakePagerDuty,
                                                                          tmp_path: Path) -> None:
    now = [T0]
    p, backend = live(fake, tmp_path, now)
    at(p, now, 0, event("failed", 0, "f1"))
    fake.resolve_by_hand(KEY)
    assert at(p, now, 5, event("failed", 5, "f2"))["status"] == "renotify_wait"  # learnt by the GET
    held = backend.state.pending(KEY)
    assert held is not None and held.until == T0 + 3600 and held.renotify == 3600.0
    now[0] = T0 + 3600
    [outcome] = p.dispatcher.fire_due()
    assert (outcome.status.value, outcome.result.incident_id) == ("created", "PINC0002") and creates(fake) == 2
    assert backend.state.pending(KEY) is None and backend.state.hand_resolved(KEY) is None


class Died(BaseException):
    """The process was killed between taking a pending trigger and paging it."""


def test_live_a_pending_trigger_taken_by_a_wake_up_that_died_is_paged_after_the_lease(fake: FakePagerDuty,
                                                                                    tmp_path: Path) -> None:
    from engine.dispatch.dispatcher import LEASE_SECONDS
    now = [T0]
    p, backend = live(fake, tmp_path, now)
    at(p, now, 0, event("failed", 0, "f1"))
    fake.resolve_by_hand(KEY)
    assert at(p, now, 5, event("failed", 5, "f2"))["status"] == "renotify_wait"  # held until T0 + 1h

    def die(action: Any, route: Any = None) -> Any:
        raise Died()
    backend.create = die  # type: ignore[method-assign]
    now[0] = T0 + 3600
    with pytest.raises(Died):
        p.dispatcher.fire_due()
    held = backend.state.pending(KEY)
    assert held is not None and held.until == T0 + 3600 + LEASE_SECONDS  # taken, not lost: a missed page otherwise
    other, backend2 = live(fake, tmp_path, now)  # another dispatcher on the same state
    now[0] = T0 + 3600 + LEASE_SECONDS - 1
    assert other.dispatcher.fire_due() == []
    now[0] = T0 + 3600 + LEASE_SECONDS
    [outcome] = other.dispatcher.fire_due()
    assert (outcome.status.value, outcome.to_line()["event_id"]) == ("created", "f2") and creates(fake) == 2
    assert backend2.state.pending(KEY) is None


def test_a_flap_re_fire_is_not_a_page_so_renotify_still_counts_from_the_last_page() -> None:
    """Review item 8: the dry run took a flap re-fire (deduplicated, nothing paged) for the last page."""
    p, view = pipeline(renotify="renotify: 1h\n    flap: {opens: 3, within: 30m}")
    statuses(p, event("failed", 0, "f1"), event("passed", 2, "p1"), event("failed", 4, "f2"),
             event("passed", 6, "p2"), event("failed", 8, "f3"))
    assert statuses(p, event("passed", 10, "p3"), event("failed", 12, "f4")) == ["flapping", "flapping"]
    assert view.resolve_by_hand(KEY, T0 + 13 * 60)
    [line] = lines(p, event("failed", 20, "f5"))
    assert (line["status"], line["renotify_at"]) == ("renotify_wait", iso(T0 + 68 * 60))  # f3's page + 1h


def test_a_clock_gone_back_before_the_last_page_counts_as_an_unknown_last_page_and_pages() -> None:
    """Review item 10: now < paged_at made the wait longer than renotify; page, as when it is not known."""
    p, view = pipeline()
    view.paged_at[KEY], view.hand_resolved[KEY] = T0 + 7200, T0 + 7300  # both after the trigger's own time
    assert statuses(p, event("failed", 0, "f1")) == ["planned"]


def test_live_the_wait_and_the_record_use_the_rules_renotify(fake: FakePagerDuty, tmp_path: Path) -> None:
    """Review item 9: an incident stored with no renotify (opened before the rule said renotify:) waited once
    on the rule's value while the state remembered nothing, so the next trigger paged."""
    now = [T0]
    plain, _ = live(fake, tmp_path, now, renotify="")
    assert at(plain, now, 0, event("failed", 0, "f1"))["status"] == "created"
    p, backend = live(fake, tmp_path, now)  # the rule file now says renotify: 1h
    fake.resolve_by_hand(KEY)
    assert at(p, now, 5, event("failed", 5, "f2"))["status"] == "renotify_wait"
    hand = backend.state.hand_resolved(KEY)
    assert hand is not None and hand.paged_at == T0
    assert at(p, now, 10, event("failed", 10, "f3"))["status"] == "renotify_wait" and creates(fake) == 1


def test_live_a_clock_gone_back_before_the_page_pages(fake: FakePagerDuty, tmp_path: Path) -> None:
    now = [T0 + 7200]
    p, backend = live(fake, tmp_path, now)
    assert at(p, now, 120, event("failed", 120, "f1"))["status"] == "created"
    fake.resolve_by_hand(KEY)
    now[0] = T0 + 7300
    assert backend.reconcile()["resolved"] == 1 and backend.state.hand_resolved(KEY) is not None
    assert at(p, now, 10, event("failed", 10, "f2"))["status"] == "created"  # the clock went back 110 minutes
