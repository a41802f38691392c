"""The live backend through the Events API v2 (README "Routes: page the right team"), against the
fake PagerDuty in this process: triggers, dedup, resolve and acknowledge by dedup_key, the default
routing key, failures, reconcile, change events, and the routing key kept out of everything."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from builders import Clock, build, make_config, shipped_rules
from fake_pagerduty import FROM_EMAIL, POLICY, SERVICE, TOKEN, FakePagerDuty

from engine.config import Config
from engine.dispatch.dispatcher import Dispatcher
from engine.dispatch.outcomes import Status
from engine.dispatch.pipeline import Tally, run
from engine.errors import InvalidFiles
from engine.evaluation.actions import ChangeAction, Extras, ResolveAction, TriggerAction
from engine.events.stream import read_events
from engine.language.routes import load_routes
from engine.pagerduty import manual
from engine.pagerduty.backend import Live, make_client, trigger_source
from engine.pagerduty.state import State

KEY = "routingkeyforpayments00000000001"  # 32 characters, like an integration key
DEFAULT_KEY = "routingkeyforthedefault000000002"
CHANGE_KEY = "routingkeyforchanges000000000003"
KEY_ENV = "PAGERULES_TEST_PAYMENTS_KEY"
ROUTES = f"""routes:
  - match: {{repo: acme/payments}}
    routing_key_env: {KEY_ENV}
  - match: {{repo: acme/web}}
    service_id: PWEB001
"""
REST_ENV = {"PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL, "PAGERDUTY_SERVICE_ID": SERVICE,
            "PAGERDUTY_ESCALATION_POLICY_ID": POLICY}


@pytest.fixture(autouse=True)
def payments_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def setup(fake: FakePagerDuty, tmp_path: Path, yaml: str = ROUTES, rest: bool = True,
          **env: str) -> tuple[Config, Live, Clock]:
    base = {"PAGERDUTY_API_URL": fake.url, "PAGERDUTY_EVENTS_URL": fake.url,  # type: ignore[attr-defined]
            "PAGERULES_RETRIES": "0", **(REST_ENV if rest else {}), **env}
    config = make_config(yaml, env=base)
    clock = Clock()
    return config, Live(config, make_client(config), State(str(tmp_path / "state.db")), clock=clock), clock


def process(events: list[dict[str, Any]], config: Config, backend: Live) -> list[dict[str, Any]]:
    text = "\n".join(json.dumps(e) for e in events)
    return list(run(read_events(io.StringIO(text), "stdin"), shipped_rules(config), Dispatcher(config, backend),
                    Tally()))


def enqueued(fake: FakePagerDuty) -> list[tuple[str, str, str]]:
    """(event_action, dedup_key, routing_key) of every /v2/enqueue call, in order."""
    return [(c["body"]["event_action"], c["body"]["dedup_key"], c["body"]["routing_key"])
            for c in fake.events_calls("/v2/enqueue")]


def test_a_trigger_on_an_events_api_route_goes_to_its_routing_key_with_every_field(fake: FakePagerDuty,
                                                                                    tmp_path: Path) -> None:
    config, backend, _ = setup(fake, tmp_path)
    [line] = process([build(349, repo="acme/payments", eid="p1")], config, backend)
    assert (line["status"], line["route"]) == ("created", 0) and "incident_id" not in line  # no REST id
    [call] = fake.events_calls()
    body = call["body"]
    assert body["routing_key"] == KEY and body["event_action"] == "trigger"
    assert body["dedup_key"] == line["incident_key"]
    assert body["payload"]["summary"] == line["title"]
    assert body["payload"]["source"] == "acme/payments"  # the repo label
    assert body["payload"]["severity"] == "error"  # our high
    assert isinstance(body["payload"]["custom_details"], dict) and body["payload"]["custom_details"]
    assert fake.rejected_events() == [] and fake.calls("POST", "/incidents") == []  # valid, and not sent by REST
    assert fake.open_dedup_keys() == {KEY: [line["incident_key"]]}
    stored = backend.state.get(line["incident_key"])
    assert stored is not None and (stored.incident_id, stored.html_url) == (None, None)
    [audit] = backend.state.recent_audit()
    assert (audit["action"], audit["incident_id"], audit["detail"]["via"]) == ("create", None, "events_api")


def test_a_repeat_in_the_window_makes_no_call_and_one_after_it_is_deduplicated_by_pagerduty(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    config, backend, clock = setup(fake, tmp_path)
    storm = [build(349, repo="acme/payments", eid=f"p{n}") for n in range(5)]
    lines = process(storm, config, backend)
    assert [o["status"] for o in lines] == ["created"] + ["deduplicated"] * 4
    assert len(fake.events_calls()) == 1
    clock.now += config.dedup_window_seconds + 1
    [again] = process([build(349, repo="acme/payments", eid="p9")], config, backend)
    assert again["status"] == "deduplicated" and len(fake.events_calls()) == 2  # PagerDuty asked again
    alert = fake.alert(KEY, lines[0]["incident_key"])
    assert alert is not None and alert["events"] == 2 and alert["status"] == "triggered"


def test_a_recovery_resolves_by_dedup_key_on_the_routing_key_the_labels_pick_again(fake: FakePagerDuty,
                                                                                    tmp_path: Path) -> None:
    config, backend, _ = setup(fake, tmp_path)
    opened, closed = process([build(349, repo="acme/payments", eid="p1"),
                              build(350, "passed", repo="acme/payments", eid="p2")], config, backend)
    assert (closed["action"], closed["status"], closed["route"]) == ("resolve", "resolved", 0)
    assert enqueued(fake) == [("trigger", opened["incident_key"], KEY), ("resolve", opened["incident_key"], KEY)]
    assert fake.open_dedup_keys() == {} and backend.state.get(opened["incident_key"]) is None
    assert fake.calls("GET") == []  # REST was never asked where it is
    assert backend.state.recent_audit()[0]["action"] == "resolved"


def test_rest_and_events_routes_side_by_side_each_go_their_own_way(fake: FakePagerDuty, tmp_path: Path) -> None:
    config, backend, _ = setup(fake, tmp_path)
    lines = process([build(1, repo="acme/payments", eid="p1"), build(2, repo="acme/web", eid="w1"),
                     build(3, eid="d1")], config, backend)
    assert [(o["status"], o["route"]) for o in lines] == [("created", 0), ("created", 1), ("created", "default")]
    assert [c["body"]["incident"]["service"]["id"] for c in fake.calls("POST", "/incidents")] == ["PWEB001", SERVICE]
    assert [k for _, k, _ in enqueued(fake)] == [lines[0]["incident_key"]]


def test_with_a_default_routing_key_incidents_no_route_takes_use_the_events_api_without_rest(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    config, backend, _ = setup(fake, tmp_path, "", rest=False, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    assert config.missing_for_live() == []
    opened, closed = process([build(1, eid="d1"), build(2, "passed", eid="d2")], config, backend)
    assert (opened["status"], closed["status"]) == ("created", "resolved")
    assert enqueued(fake) == [("trigger", opened["incident_key"], DEFAULT_KEY),
                              ("resolve", opened["incident_key"], DEFAULT_KEY)]
    assert [c for c in fake.calls() if not c["path"].startswith("/v2/")] == []


def test_the_source_is_the_repo_label_else_pagerules(fake: FakePagerDuty, tmp_path: Path) -> None:
    assert trigger_source({"repo": "acme/api", "kind": "build"}) == "acme/api"
    assert trigger_source({"kind": "sentry"}) == trigger_source({"repo": ""}) == "pagerules"
    config, backend, _ = setup(fake, tmp_path, "", rest=False, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    line = manual.trigger(config, backend, "checkout down", "critical", "")
    assert line["status"] == "created"
    assert fake.events_calls()[0]["body"]["payload"]["source"] == "pagerules"
    assert fake.events_calls()[0]["body"]["payload"]["severity"] == "critical"


def test_acknowledge_goes_by_dedup_key_and_is_recorded(fake: FakePagerDuty, tmp_path: Path) -> None:
    config, backend, _ = setup(fake, tmp_path)
    [opened] = process([build(349, repo="acme/payments", eid="p1")], config, backend)
    result = backend.acknowledge(opened["incident_key"])
    assert (result.status, result.incident_id) == (Status.ACKNOWLEDGED, None)
    assert enqueued(fake)[-1] == ("acknowledge", opened["incident_key"], KEY)
    alert = fake.alert(KEY, opened["incident_key"])
    assert alert is not None and alert["status"] == "acknowledged"
    stored = backend.state.get(opened["incident_key"])
    assert stored is not None and stored.status == "acknowledged"
    assert fake.calls("GET") == [] and fake.calls("PUT") == []


def test_an_incident_the_state_does_not_know_is_not_resolved_blind_through_the_events_api(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    """Events API only: nothing can say whether the alert is open or where, so nothing is sent."""
    config, backend, _ = setup(fake, tmp_path, "", rest=False, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    assert manual.resolve(config, backend, "acme-payments-ci-main")["status"] == "nothing_open"
    assert manual.acknowledge(config, backend, "acme-payments-ci-main")["status"] == "nothing_open"
    assert fake.calls() == []


def test_with_rest_configured_an_unknown_incident_is_still_looked_up_in_rest(fake: FakePagerDuty,
                                                                             tmp_path: Path) -> None:
    config, backend, _ = setup(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    fake.open_incident("codespar-by-hand")
    assert manual.resolve(config, backend, "codespar-by-hand")["status"] == "resolved"
    assert fake.open_keys() == [] and fake.events_calls() == []


def test_reconcile_never_asks_rest_about_an_events_api_incident(fake: FakePagerDuty, tmp_path: Path) -> None:
    config, backend, _ = setup(fake, tmp_path)
    process([build(1, repo="acme/payments", eid="p1"), build(2, repo="acme/web", eid="w1")], config, backend)
    assert backend.reconcile() == {"checked": 1, "resolved": 0, "acknowledged": 0, "failed": 0}
    assert [c["path"] for c in fake.calls("GET")] == [f"/incidents/{next(iter(fake.incidents))}"]


def test_a_400_is_final_with_pagerduty_s_message_and_a_5xx_is_held_for_a_retry(fake: FakePagerDuty,
                                                                                tmp_path: Path) -> None:
    config, backend, _ = setup(fake, tmp_path)
    fake.faults = {"status": 400, "count": 1, "prefix": "/v2/"}
    [refused] = process([build(1, repo="acme/payments", eid="p1")], config, backend)
    assert (refused["status"], refused["retry"]) == ("failed", False)
    assert refused["error"].startswith("PagerDuty refused the trigger event (400): injected fault")
    fake.faults = {"status": 503, "count": 1, "prefix": "/v2/"}
    [outage] = process([build(2, repo="acme/payments", eid="p2")], config, backend)
    assert (outage["status"], outage["retry"]) == ("failed", True)
    assert "answered 503" in outage["error"] and "will need to be retried" in outage["error"]
    assert backend.state.open_incidents() == []  # neither is believed open
    assert [a["action"] for a in backend.state.recent_audit()] == ["create_failed", "create_failed"]
    fake.faults = {}
    [sent] = process([build(2, repo="acme/payments", eid="p3")], config, backend)
    assert sent["status"] == "created"
    fake.faults = {"status": 502, "count": 1, "prefix": "/v2/"}
    [held] = process([build(2, "passed", repo="acme/payments", eid="p4")], config, backend)
    assert (held["action"], held["status"], held["retry"]) == ("resolve", "failed", True)
    assert backend.state.get(sent["incident_key"]) is not None  # still open until PagerDuty takes the resolve


def test_an_unset_routing_key_env_is_refused_at_start_naming_its_line(fake: FakePagerDuty, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(InvalidFiles) as caught:
        setup(fake, tmp_path)
    assert str(caught.value).endswith(f"pagerduty.yaml:2: routes[0].routing_key_env: {KEY_ENV} is not set; "
                                      "live mode needs the Events API v2 integration key in it")
    assert caught.value.exit_code == 2 and fake.calls() == []


def test_change_events_go_to_the_route_s_key_else_the_change_key_else_say_which_setting(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    config, backend, _ = setup(fake, tmp_path)
    [payments, web] = load_routes(make_config(ROUTES))
    change = ChangeAction("deploy-healthy", "e1", "v2.4.1 is healthy", {"repo": "acme/payments"},
                          {"version": "v2.4.1"}, ({"href": "https://ci.example.com/d/1", "text": "deploy"},),
                          "acme/payments", "2026-12-03T10:00:00Z")
    assert backend.change(change).status == Status.DISABLED
    assert "PAGERDUTY_CHANGE_ROUTING_KEY" in str(backend.change(change, web).error)
    config, backend, _ = setup(fake, tmp_path, ROUTES, PAGERDUTY_CHANGE_ROUTING_KEY=CHANGE_KEY)
    assert backend.change(change, payments).status == Status.SENT
    assert backend.change(change, web).status == Status.SENT  # a REST route: the change routing key
    assert backend.change(change).status == Status.SENT
    assert [c["routing_key"] for c in fake.change_events()] == [KEY, CHANGE_KEY, CHANGE_KEY]
    body = fake.change_events()[0]
    assert body["payload"] == {"summary": "v2.4.1 is healthy", "source": "acme/payments",
                               "timestamp": "2026-12-03T10:00:00Z", "custom_details": {"version": "v2.4.1"}}
    assert body["links"] == [{"href": "https://ci.example.com/d/1", "text": "deploy"}]
    assert fake.rejected_events() == [] and backend.state.recent_audit()[0]["action"] == "change"
    fake.faults = {"status": 503, "count": 1, "prefix": "/v2/"}
    failed = backend.change(change, payments)
    assert (failed.status, failed.retry) == (Status.FAILED, True)


def test_no_routing_key_in_any_line_error_audit_row_state_row_or_log(fake: FakePagerDuty, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    config, backend, _ = setup(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    fake.faults = {"status": 400, "count": 1, "prefix": "/v2/"}
    lines = process([build(1, repo="acme/payments", eid="p1")], config, backend)
    fake.faults = {"status": 503, "count": 1, "prefix": "/v2/"}
    lines += process([build(2, eid="d1")], config, backend)
    fake.faults = {}
    lines += process([build(3, repo="acme/payments", eid="p2"), build(4, eid="d2"),
                      build(5, "passed", repo="acme/payments", eid="p3")], config, backend)
    lines.append(manual.acknowledge(config, backend, lines[-2]["incident_key"]))
    assert [o["status"] for o in lines] == ["failed", "failed", "created", "created", "resolved", "acknowledged"]
    state = backend.state
    rows = [json.dumps(r) for r in state._db.execute("SELECT * FROM audit").fetchall()]
    rows += [json.dumps(r) for r in state._db.execute("SELECT * FROM incidents").fetchall()]
    text = "\n".join([*map(json.dumps, lines), *rows, caplog.text, repr(config)])
    for key in (KEY, DEFAULT_KEY):
        assert key not in text
    assert len(rows) >= 6 and "POST /v2/enqueue trigger 202" in caplog.text


class Recorder:
    """A notifier that keeps what the backend announces to the channels."""

    def __init__(self) -> None:
        self.announced: list[tuple[str, dict[str, Any]]] = []

    def announce(self, kind: str, incident: Any) -> None:
        self.announced.append((kind, dict(incident)))

    def failures(self) -> list[Any]:
        return []

    def flush(self, timeout: float = 10.0) -> None:
        pass


def test_the_channels_hear_of_an_events_api_incident_as_of_a_rest_one(fake: FakePagerDuty, tmp_path: Path) -> None:
    config, backend, _ = setup(fake, tmp_path)
    recorder = Recorder()
    backend.notifier = recorder  # type: ignore[assignment]
    opened, _ = process([build(1, repo="acme/payments", eid="p1"), build(1, repo="acme/payments", eid="p2")],
                        config, backend)
    backend.with_actor("dashboard").acknowledge(opened["incident_key"])
    process([build(2, "passed", repo="acme/payments", eid="p3")], config, backend)
    assert [(kind, i["incident_key"], i["incident_id"], i["actor"]) for kind, i in recorder.announced] == [
        ("triggered", opened["incident_key"], None, "rules"),  # once: the repeat was deduplicated
        ("acknowledged", opened["incident_key"], None, "dashboard"),
        ("resolved", opened["incident_key"], None, "rules")]
    assert KEY not in json.dumps(recorder.announced)


def payments_labels() -> Extras:  # a held trigger's labels, which pick the payments route
    return Extras({"repo": "acme/payments"}, {}, [])


def other_labels() -> Extras:  # labels no route takes: the default routing key
    return Extras({"repo": "acme/other"}, {}, [])


def killed(*args: Any, **kwargs: Any) -> None:
    raise Killed()


class Killed(BaseException):
    """kill -9 at a chosen line: nothing after it runs, no handler sees it."""


def test_a_recovery_resolves_an_events_api_page_a_dying_wake_up_sent_but_never_recorded(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    """Fourth review, item 2: a wake-up sends a held trigger to the Events API, then records it; killed in
    between, the alert is open at PagerDuty and unknown to the state. The recovery found the hold taken,
    asked the state (nothing open: an Events API page has no REST id to look up), answered
    cancelled_pending and sent nothing, so the alert stayed open for good. It now resolves by dedup_key on
    the route the held trigger's labels pick."""
    config, dying, clock = setup(fake, tmp_path)
    wake_up = Dispatcher(config, dying, clock)
    held = TriggerAction("build-failed", "p1", "acme-payments-5xx", "payments 5xx", "high",
                         render_extras=payments_labels, pending_for=60.0)
    assert [o.status for o in wake_up.handle(held)] == [Status.PENDING]
    clock.now += 61
    dying.state.record_open = killed  # type: ignore[method-assign]  # right after PagerDuty took the trigger
    with pytest.raises(Killed):
        wake_up.fire_due()
    assert fake.open_dedup_keys() == {KEY: ["acme-payments-5xx"]}
    _, survivor, _ = setup(fake, tmp_path)
    survivor.clock = clock
    [outcome] = Dispatcher(config, survivor, clock).handle(
        ResolveAction("build-passed", "p2", "acme-payments-5xx", "payments back to normal"))
    assert (outcome.status, outcome.route) == (Status.RESOLVED, 0)
    assert fake.open_dedup_keys() == {}
    assert enqueued(fake)[-1] == ("resolve", "acme-payments-5xx", KEY)
    [audited] = [a for a in survivor.state.recent_audit() if a["action"] == "resolve_sent"]
    assert "resolved by dedup_key on all of 1 Events API integrations in case" in json.dumps(audited)


def test_a_recovery_of_a_hold_no_wake_up_took_sends_nothing_to_the_events_api(fake: FakePagerDuty,
                                                                              tmp_path: Path) -> None:
    config, backend, clock = setup(fake, tmp_path)
    dispatcher = Dispatcher(config, backend, clock)
    dispatcher.handle(TriggerAction("build-failed", "p1", "acme-payments-5xx", "payments 5xx", "high",
                                    render_extras=payments_labels, pending_for=60.0))
    [outcome] = dispatcher.handle(ResolveAction("build-passed", "p2", "acme-payments-5xx", "back"))
    assert outcome.status is Status.CANCELLED_PENDING
    assert fake.calls() == []


def test_an_events_trigger_that_takes_an_over_hold_with_labels_of_its_own_is_resolved_where_it_went(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    """Fifth review, item 1: one incident_key, two repositories (a key that ignores the repo). The hold keeps
    the first trigger's labels (no route: the default key); a later event's trigger finds it over and pages
    with its own (the payments route), then dies before the state records it. The recovery sent its resolve
    to the route of the hold's labels, so the payments alert stayed open. (Keeping the taker's labels in the
    hold was tried and refused in review: a taker that gives the hold back unpaged left them there, and
    recoveries then selected the hold by the wrong repository.) It now goes to every Events API integration."""
    config, dying, clock = setup(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    events = Dispatcher(config, dying, clock)
    first = TriggerAction("r", "e1", "acme-5xx", "5xx", "high", render_extras=other_labels, pending_for=60.0)
    assert [o.status for o in events.handle(first)] == [Status.PENDING]
    clock.now += 61
    dying.state.record_open = killed  # type: ignore[method-assign]  # kill -9 after PagerDuty took it
    dying.state.release_pending = killed  # type: ignore[method-assign]  # and no handler runs
    with pytest.raises(Killed):
        events.handle(TriggerAction("r", "e2", "acme-5xx", "5xx", "high", render_extras=payments_labels,
                                    pending_for=60.0))
    assert fake.open_dedup_keys() == {KEY: ["acme-5xx"]}
    _, survivor, _ = setup(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    [outcome] = Dispatcher(config, survivor, clock).handle(ResolveAction("r", "e3", "acme-5xx", "back"))
    assert outcome.status is Status.RESOLVED
    assert fake.open_dedup_keys() == {}
    assert set(enqueued(fake)[-2:]) == {("resolve", "acme-5xx", DEFAULT_KEY), ("resolve", "acme-5xx", KEY)}


def test_a_recovery_after_a_wake_up_that_died_before_sending_tells_no_channel_it_resolved(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    """Fifth review, item 4: no page may have gone out, so the resolve sent in case it did is audited but
    not announced (a channel would hear "resolved" of a page nobody got)."""
    config, dying, clock = setup(fake, tmp_path)
    wake_up = Dispatcher(config, dying, clock)
    wake_up.handle(TriggerAction("r", "p1", "acme-payments-5xx", "5xx", "high", render_extras=payments_labels,
                                 pending_for=60.0))
    clock.now += 61
    dying.events.enqueue = killed  # type: ignore[method-assign]  # dies before PagerDuty took anything
    with pytest.raises(Killed):
        wake_up.fire_due()
    _, survivor, _ = setup(fake, tmp_path)
    announced: list[str] = []
    survivor.notifier.announce = lambda kind, incident: announced.append(kind)  # type: ignore[method-assign]
    [outcome] = Dispatcher(config, survivor, clock).handle(ResolveAction("r", "p2", "acme-payments-5xx", "back"))
    assert (outcome.status, outcome.route) == (Status.RESOLVED, 0)  # sent by dedup_key, dropped by PagerDuty
    assert enqueued(fake) == [("resolve", "acme-payments-5xx", KEY)] and fake.open_dedup_keys() == {}
    assert announced == []
    [audited] = [a for a in survivor.state.recent_audit() if a["action"] == "resolve_sent"]
    assert "in case" in json.dumps(audited)


def paged_and_recorded_then_killed(fake: FakePagerDuty, tmp_path: Path) -> tuple[Config, Clock]:
    """A wake-up pages a held acme-5xx on the payments route, records it, and is killed before it lets go of
    the hold (a default routing key is set too)."""
    config, dying, clock = setup(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    wake_up = Dispatcher(config, dying, clock)
    wake_up.handle(TriggerAction("r", "e1", "acme-5xx", "5xx", "high", render_extras=payments_labels,
                                 pending_for=60.0))
    clock.now += 61
    dying.state.finish_pending = killed  # type: ignore[method-assign]
    with pytest.raises(Killed):
        wake_up.fire_due()
    return config, clock


def test_a_recovery_after_a_wake_up_that_recorded_its_page_and_died_resolves_it_and_the_rest_in_case(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    """The wake-up recorded its page and died before letting go of the hold: the recovery resolves the
    recorded incident as usual (announced), and sends the resolve once to the other integrations too."""
    config, clock = paged_and_recorded_then_killed(fake, tmp_path)
    assert fake.open_dedup_keys() == {KEY: ["acme-5xx"]}
    _, survivor, _ = setup(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    announced: list[str] = []
    survivor.notifier.announce = lambda kind, incident: announced.append(kind)  # type: ignore[method-assign]
    [outcome] = Dispatcher(config, survivor, clock).handle(ResolveAction("r", "e2", "acme-5xx", "back"))
    assert (outcome.status, outcome.route) == (Status.RESOLVED, 0)
    assert enqueued(fake)[-2:] == [("resolve", "acme-5xx", DEFAULT_KEY), ("resolve", "acme-5xx", KEY)]
    assert fake.open_dedup_keys() == {} and survivor.state.get("acme-5xx") is None
    assert announced == ["resolved"]  # the recorded page's resolve, once


def test_a_refused_extra_resolve_never_keeps_the_recorded_incident_open(fake: FakePagerDuty, tmp_path: Path) -> None:
    """Found on a last read: the resolves sent in case a page went out unrecorded returned their first failure at
    once, so a 400 from one integration (final: never retried) left the incident the state had recorded, and
    could resolve, open for good. A failure there is audited and the usual resolve still goes out."""
    config, clock = paged_and_recorded_then_killed(fake, tmp_path)
    _, survivor, _ = setup(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    fake.faults = {"status": 400, "count": 1, "prefix": "/v2/"}  # the extra resolve (sent first) is refused
    [outcome] = Dispatcher(config, survivor, clock).handle(ResolveAction("r", "e2", "acme-5xx", "back"))
    assert outcome.status is Status.RESOLVED
    assert fake.open_dedup_keys() == {} and survivor.state.get("acme-5xx") is None
    assert [a["action"] for a in survivor.state.recent_audit()][:2] == ["resolved", "resolve_failed"]
    failure = json.dumps(survivor.state.recent_audit()[1])
    assert "failed" in failure and "resolved by dedup_key" not in failure  # never said resolved when it failed
    assert KEY not in json.dumps(survivor.state.recent_audit()) and DEFAULT_KEY not in json.dumps(
        survivor.state.recent_audit())  # the routing keys stay out of the audit trail on this path too


def test_extra_resolves_pagerduty_cannot_take_yet_are_sent_again_with_the_retried_recovery(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    """Seventh review, item 1: the recovery dropped the taken hold before sending, and the mark that a page
    may be out lived in memory only, so after a 503 the retried recovery found no hold and sent nothing:
    the page that went out unrecorded stayed open for good. The hold now goes back, taken and muted, until
    PagerDuty has taken every resolve."""
    config, dying, clock = setup(fake, tmp_path, "", rest=False, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    wake_up = Dispatcher(config, dying, clock)
    wake_up.handle(TriggerAction("r", "e1", "acme-5xx", "5xx", "high", render_extras=other_labels,
                                 pending_for=60.0))
    clock.now += 61
    dying.state.record_open = killed  # type: ignore[method-assign]  # PagerDuty took it; kill -9
    with pytest.raises(Killed):
        wake_up.fire_due()
    assert fake.open_dedup_keys() == {DEFAULT_KEY: ["acme-5xx"]}
    _, survivor, _ = setup(fake, tmp_path, "", rest=False, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    recovery = Dispatcher(config, survivor, clock)
    fake.faults = {"status": 503, "count": 1, "prefix": "/v2/"}
    [first] = recovery.handle(ResolveAction("r", "e2", "acme-5xx", "back"))
    assert (first.status, first.result.retry) == (Status.FAILED, True)  # the event is tried again
    assert fake.open_dedup_keys() == {DEFAULT_KEY: ["acme-5xx"]}
    clock.now += 600
    assert recovery.fire_due() == []  # the hold that went back is muted: no wake-up pages a recovered problem
    [again] = recovery.handle(ResolveAction("r", "e2", "acme-5xx", "back"))
    assert again.status is Status.RESOLVED
    assert fake.open_dedup_keys() == {} and survivor.state.pending("acme-5xx") is None


def test_a_trigger_that_fails_before_sending_gives_its_over_hold_back_so_a_recovery_sends_nothing(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    """Seventh review, F3: a trigger that took its over hold and then failed before sending (the state's
    silence check raised "database is locked") left the hold taken, so the recovery took it for a page that
    may have gone out unrecorded and sent a resolve to every Events API integration in case, though nothing
    was sent: an alert another team keeps open under that dedup_key would be closed. The hold is given back,
    due at once, as a failure of the send itself gives it back."""
    config, backend, clock = setup(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    dispatcher = Dispatcher(config, backend, clock)
    trigger = TriggerAction("build-failed", "p1", "acme-payments-5xx", "payments 5xx", "high",
                            render_extras=payments_labels, pending_for=60.0)
    assert [o.status for o in dispatcher.handle(trigger)] == [Status.PENDING]
    clock.now += 61

    def locked(at: float) -> Any:
        raise OSError("database is locked")
    backend.view.active_silences = locked  # type: ignore[method-assign]
    with pytest.raises(OSError):
        dispatcher.handle(trigger)
    held = backend.state.pending("acme-payments-5xx")
    assert held is not None and held.until <= clock.now  # given back, due at once: the retry pages it
    [outcome] = dispatcher.handle(ResolveAction("build-passed", "p2", "acme-payments-5xx", "back"))
    assert outcome.status is Status.CANCELLED_PENDING
    assert fake.calls() == []  # nothing was paged, so nothing is resolved anywhere


def test_the_audit_row_of_resolves_sent_in_case_counts_those_pagerduty_took(fake: FakePagerDuty,
                                                                            tmp_path: Path) -> None:
    """Seventh review, F5: the row said "on all N integrations" when some of them had refused the resolve."""
    config, dying, clock = setup(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    wake_up = Dispatcher(config, dying, clock)
    wake_up.handle(TriggerAction("r", "e1", "acme-5xx", "5xx", "high", render_extras=other_labels, pending_for=60.0))
    clock.now += 61
    dying.state.record_open = killed  # type: ignore[method-assign]  # PagerDuty took it; kill -9
    with pytest.raises(Killed):
        wake_up.fire_due()
    _, survivor, _ = setup(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY)
    survivor.clock = clock
    fake.faults = {"status": 400, "count": 1, "prefix": "/v2/"}  # the payments integration refuses its resolve
    [outcome] = Dispatcher(config, survivor, clock).handle(ResolveAction("r", "e2", "acme-5xx", "back"))
    assert outcome.status is Status.RESOLVED and fake.open_dedup_keys() == {}  # the default took it
    [sent] = [a for a in survivor.state.recent_audit() if a["action"] == "resolve_sent"]
    assert "resolved by dedup_key on 1 of 2 Events API integrations in case" in json.dumps(sent)
