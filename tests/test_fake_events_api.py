"""The fake PagerDuty's Events API v2: it validates like PagerDuty, answers like PagerDuty and keeps alerts
per (routing_key, dedup_key), so end-to-end tests of the Events API backend mean something."""
from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests
from fake_pagerduty import ROUTING_KEY, FakePagerDuty

from engine.pagerduty.client import PagerDutyError, RetryPolicy
from engine.pagerduty.events_api import (
    EventRejected,
    EventsClient,
    build_acknowledge_body,
    build_change_body,
    build_resolve_body,
    build_trigger_body,
)

OTHER_KEY = "fakeroutingkey000000000000000002"
FAST = RetryPolicy(total=3, backoff_factor=0.01)


def url(fake: FakePagerDuty) -> str:
    return fake.url  # type: ignore[attr-defined,no-any-return]


def post(fake: FakePagerDuty, body: Any, path: str = "/v2/enqueue") -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url(fake) + path, data=data, headers={"Content-Type": "application/json"}, timeout=5)


def trigger(key: str = ROUTING_KEY, dedup_key: str = "codespar-k1", **changes: Any) -> dict[str, Any]:
    body = build_trigger_body(key, dedup_key, "Build failed on main", "high", "acme/api", {"run": 1},
                              [{"href": "https://ci.example.com/1", "text": "run"}])
    return {**body, **changes}


def test_a_trigger_opens_an_alert_and_is_answered_like_pagerduty(fake: FakePagerDuty) -> None:
    answer = post(fake, trigger())
    assert answer.status_code == 202
    assert answer.json() == {"status": "success", "message": "Event processed", "dedup_key": "codespar-k1"}
    assert fake.open_dedup_keys() == {ROUTING_KEY: ["codespar-k1"]}
    alert = fake.alert(ROUTING_KEY, "codespar-k1")
    assert alert is not None and alert["status"] == "triggered"
    assert alert["payload"]["custom_details"] == {"run": 1} and alert["payload"]["severity"] == "error"


def test_a_repeat_trigger_dedups_and_acknowledge_then_resolve_close_it(fake: FakePagerDuty) -> None:
    for body in (trigger(), trigger()):
        assert post(fake, body).status_code == 202
    assert fake.open_dedup_keys(ROUTING_KEY) == {ROUTING_KEY: ["codespar-k1"]}
    assert fake.alert(ROUTING_KEY, "codespar-k1")["events"] == 2  # type: ignore[index]
    post(fake, build_acknowledge_body(ROUTING_KEY, "codespar-k1"))
    assert fake.alert(ROUTING_KEY, "codespar-k1")["status"] == "acknowledged"  # type: ignore[index]
    post(fake, build_resolve_body(ROUTING_KEY, "codespar-k1"))
    assert fake.open_dedup_keys() == {}
    assert post(fake, trigger()).status_code == 202  # after the resolve: a new alert, as PagerDuty does
    assert fake.open_dedup_keys() == {ROUTING_KEY: ["codespar-k1"]}
    assert len([a for a in fake.alerts if a["dedup_key"] == "codespar-k1"]) == 2


def test_dedup_keys_apply_per_routing_key(fake: FakePagerDuty) -> None:
    post(fake, trigger(ROUTING_KEY))
    post(fake, trigger(OTHER_KEY))
    post(fake, build_resolve_body(OTHER_KEY, "codespar-k1"))
    assert fake.open_dedup_keys() == {ROUTING_KEY: ["codespar-k1"]}


def test_acknowledge_or_resolve_with_no_open_alert_is_accepted_and_dropped(fake: FakePagerDuty) -> None:
    assert post(fake, build_resolve_body(ROUTING_KEY, "never-opened")).status_code == 202
    assert post(fake, build_acknowledge_body(ROUTING_KEY, "never-opened")).status_code == 202
    assert fake.alerts == [] and fake.alert(ROUTING_KEY, "never-opened") is None


def test_a_trigger_without_dedup_key_gets_one_from_pagerduty(fake: FakePagerDuty) -> None:
    body = trigger()
    del body["dedup_key"]
    key = post(fake, body).json()["dedup_key"]
    assert len(key) == 32 and fake.open_dedup_keys() == {ROUTING_KEY: [key]}


@pytest.mark.parametrize("body, errors", [
    (trigger(event_action="open"), ["event_action: 'open' is not one of ['trigger', 'acknowledge', 'resolve']"]),
    (trigger(payload={"summary": "s", "severity": "high", "source": "h"}),
     ["payload/severity: 'high' is not one of ['critical', 'warning', 'error', 'info']"]),
    (trigger(payload={"summary": "s", "severity": "error"}), ["payload: 'source' is a required property"]),
    (trigger(payload={"summary": "x" * 1025, "severity": "error", "source": "h"}),
     ["'summary' is too long (maximum is 1024 characters)"]),
    (trigger(payload={"summary": "s", "severity": "error", "source": "h",
                      "timestamp": "2015-07-17T08:42:58.315+0000"}),
     ["payload/timestamp: '2015-07-17T08:42:58.315+0000' is not a 'date-time'"]),
    (trigger(payload={"summary": "s", "severity": "error", "source": "h", "custom_details": "text"}),
     ["payload/custom_details: 'text' is not of type 'object'"]),
    ({"routing_key": ROUTING_KEY, "event_action": "resolve"}, ["'dedup_key' is required for a resolve event"]),
    ({"routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "k"},
     ["'payload' is required for a trigger event"]),
    (trigger(key="short"), ["Length of 'routing_key' is incorrect (should be 32 characters)"]),
    (b"{not json", ["JSON parse error"]),
])
def test_an_invalid_event_gets_400_with_errors_as_pagerduty_sends(fake: FakePagerDuty, body: Any,
                                                                   errors: list[str]) -> None:
    answer = post(fake, body)
    assert answer.status_code == 400
    assert answer.json() == {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    assert fake.alerts == [] and [r["errors"] for r in fake.rejected_events()] == [errors]


def test_change_events_are_validated_kept_and_open_nothing(fake: FakePagerDuty) -> None:
    body = build_change_body(ROUTING_KEY, "Deployed acme/api v1.4.2", "acme/api", {"version": "v1.4.2"})
    answer = post(fake, body, "/v2/change/enqueue")
    assert answer.status_code == 202 and answer.json()["status"] == "success"
    assert fake.change_events() == [body] and fake.change_events(OTHER_KEY) == []
    assert fake.alerts == []
    assert post(fake, {"routing_key": ROUTING_KEY}, "/v2/change/enqueue").status_code == 400  # no payload
    assert len(fake.events_calls("/v2/change/enqueue")) == 2 and fake.events_calls("/v2/enqueue") == []


def test_the_events_client_round_trips_through_the_fake(fake: FakePagerDuty) -> None:
    client = EventsClient(url(fake), timeout=5, retry=FAST)
    assert client.enqueue(trigger()) == "codespar-k1"
    assert client.change(build_change_body(ROUTING_KEY, "Rolled back acme/api")) is None
    assert client.enqueue(build_resolve_body(ROUTING_KEY, "codespar-k1")) == "codespar-k1"
    assert fake.rejected_events() == [] and fake.open_dedup_keys() == {}
    with pytest.raises(EventRejected, match="Length of 'routing_key' is incorrect"):
        client.enqueue(trigger(key="short"))


def test_a_429_is_retried_after_the_wait_the_fake_asks_for(fake: FakePagerDuty,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("urllib3.util.retry.time.sleep", waits.append)  # record the wait instead of waiting
    requests.post(url(fake) + "/_fake/faults", json={"status": 429, "count": 1, "retry_after": 2}, timeout=5)
    assert EventsClient(url(fake), timeout=5, retry=FAST).enqueue(trigger()) == "codespar-k1"
    assert waits == [2.0] and len(fake.events_calls()) == 2
    assert fake.open_dedup_keys() == {ROUTING_KEY: ["codespar-k1"]}


def test_an_events_api_outage_ends_in_a_transient_error(fake: FakePagerDuty,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("urllib3.util.retry.time.sleep", lambda seconds: None)
    requests.post(url(fake) + "/_fake/faults", json={"status": 503, "count": 10}, timeout=5)
    with pytest.raises(PagerDutyError) as caught:
        EventsClient(url(fake), timeout=5, retry=FAST).enqueue(trigger())
    assert caught.value.transient and caught.value.status == 503
    assert "injected fault" in str(caught.value) and ROUTING_KEY not in str(caught.value)
    assert fake.alerts == []


def test_a_fault_with_a_prefix_hits_only_the_events_api(fake: FakePagerDuty) -> None:
    requests.post(url(fake) + "/_fake/faults", json={"status": 429, "count": 1, "prefix": "/v2/"}, timeout=5)
    rest = requests.get(url(fake) + "/users/me", headers={"Authorization": f"Token token={fake.token}"}, timeout=5)
    assert rest.status_code == 200
    answer = post(fake, trigger())
    assert answer.status_code == 429 and answer.json()["status"] == "injected fault"
    assert post(fake, trigger()).status_code == 202


def test_the_control_paths_list_alerts_and_changes_for_a_subprocess_test(fake: FakePagerDuty) -> None:
    post(fake, trigger())
    post(fake, build_change_body(ROUTING_KEY, "deployed"), "/v2/change/enqueue")
    post(fake, b"{not json")
    alerts = requests.get(url(fake) + "/_fake/alerts", timeout=5).json()
    assert [a["dedup_key"] for a in alerts["alerts"]] == ["codespar-k1"]
    assert alerts["rejected"][0]["errors"] == ["JSON parse error"]
    changes = requests.get(url(fake) + "/_fake/changes", timeout=5).json()["changes"]
    assert [c["payload"]["summary"] for c in changes] == ["deployed"]
    assert requests.get(url(fake) + "/_fake/requests", timeout=5).status_code == 200  # a bad body is still listed


def test_the_rest_fake_still_needs_its_token(fake: FakePagerDuty) -> None:
    assert requests.get(url(fake) + "/users/me", timeout=5).status_code == 401
    assert requests.post(url(fake) + "/v2/enqueue", json=trigger(), timeout=5).status_code == 202  # no token needed


def test_no_routing_key_in_any_log_line_on_a_real_socket(fake: FakePagerDuty, caplog: pytest.LogCaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib3 and requests log at DEBUG what they send and retry; the key is in the body, which they never log."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr("urllib3.util.retry.time.sleep", lambda seconds: None)
    requests.post(url(fake) + "/_fake/faults", json={"status": 500, "count": 2}, timeout=5)
    client = EventsClient(url(fake), timeout=5, retry=FAST)
    client.enqueue(trigger())
    with pytest.raises(EventRejected) as caught:
        client.enqueue(trigger(key=ROUTING_KEY[:-1]))
    logged = [r.getMessage() for r in caplog.records]
    assert any("Retry" in line for line in logged)  # urllib3's retries were logged
    assert all(ROUTING_KEY[:-1] not in line for line in logged + [str(caught.value), repr(client)])
