"""The Events API v2 client, with HTTP mocked by `responses`: bodies (checked against PagerDuty's
events-v2 OpenAPI file), 202/400/429/5xx handling, retries, and no routing key anywhere."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import responses
from pd_spec import events_body_errors
from urllib3.response import HTTPResponse

from engine.pagerduty.client import PagerDutyError, RetryPolicy
from engine.pagerduty.events_api import (
    BODY_LIMIT,
    SUMMARY_LIMIT,
    EventRejected,
    EventsClient,
    build_acknowledge_body,
    build_change_body,
    build_resolve_body,
    build_trigger_body,
    events_severity,
)

URL = "https://events.test"
KEY = "R0uting+Key_secret_0123456789abc"  # 32 characters, like a real integration key
FAST = RetryPolicy(total=3, backoff_factor=0.01)
ACCEPTED = {"status": "success", "message": "Event processed", "dedup_key": "codespar-k1"}
LINKS = [{"href": "https://github.com/acme/api/actions/runs/1", "text": "the failed run"},
         {"href": "https://github.com/acme/api/commit/abc"}]


def client(retry: RetryPolicy = FAST) -> EventsClient:
    return EventsClient(URL, timeout=2, retry=retry)


def trigger(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"routing_key": KEY, "dedup_key": "codespar-k1", "title": "Build failed on main",
                            "severity": "high", "source": "acme/api", "details": {"run": 1, "branch": "main"},
                            "links": LINKS}
    return build_trigger_body(**{**args, **changes})


def sent(call: int = 0) -> dict[str, Any]:
    return json.loads(responses.calls[call].request.body or "")  # type: ignore[no-any-return]


# ---- builders ----------------------------------------------------------------

def test_trigger_body_has_every_field_pagerduty_needs_and_passes_the_spec() -> None:
    body = trigger()
    assert body == {
        "routing_key": KEY, "event_action": "trigger", "dedup_key": "codespar-k1",
        "payload": {"summary": "Build failed on main", "source": "acme/api", "severity": "error",
                    "custom_details": {"run": 1, "branch": "main"}},
        "links": [{"href": "https://github.com/acme/api/actions/runs/1", "text": "the failed run"},
                  {"href": "https://github.com/acme/api/commit/abc"}],
    }
    assert events_body_errors("/v2/enqueue", body) == []


def test_custom_details_are_a_json_object_not_text() -> None:
    details = {"commit": {"sha": "abc", "files": ["a.py"]}, "attempt": 2}
    assert trigger(details=details)["payload"]["custom_details"] == details


def test_no_links_means_no_links_field() -> None:
    assert "links" not in trigger(links=None) and "links" not in trigger(links=[])


@pytest.mark.parametrize("ours, theirs", [("critical", "critical"), ("high", "error"),
                                          ("medium", "warning"), ("low", "info")])
def test_severity_mapping(ours: str, theirs: str) -> None:
    assert trigger(severity=ours)["payload"]["severity"] == theirs


def test_an_unknown_severity_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown severity 'urgent' \\(known: critical, high, medium, low\\)"):
        events_severity("urgent")


def test_a_long_title_is_cut_to_pagerdutys_summary_limit() -> None:
    summary = trigger(title="x" * 5000)["payload"]["summary"]
    assert len(summary) == SUMMARY_LIMIT == 1024 and summary.endswith("…")
    assert trigger(title="y" * 1024)["payload"]["summary"] == "y" * 1024  # at the limit: untouched
    assert events_body_errors("/v2/enqueue", trigger(title="x" * 5000)) == []


def test_acknowledge_and_resolve_bodies_name_the_dedup_key() -> None:
    for build, action in ((build_acknowledge_body, "acknowledge"), (build_resolve_body, "resolve")):
        body = build(KEY, "codespar-k1")
        assert body == {"routing_key": KEY, "event_action": action, "dedup_key": "codespar-k1"}
        assert events_body_errors("/v2/enqueue", body) == []


def test_change_body_passes_the_spec_with_a_timestamp_pagerduty_accepts() -> None:
    moment = datetime(2026, 12, 3, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    body = build_change_body(KEY, "Deployed acme/api v1.4.2 to production", "acme/api",
                             {"version": "v1.4.2"}, LINKS[:1], moment)
    assert body == {"routing_key": KEY, "links": [LINKS[0]], "payload": {
        "summary": "Deployed acme/api v1.4.2 to production", "source": "acme/api",
        "custom_details": {"version": "v1.4.2"}, "timestamp": "2026-12-03T08:30:00Z"}}
    assert events_body_errors("/v2/change/enqueue", body) == []
    minimal = build_change_body(KEY, "s" * 2000)
    assert minimal == {"routing_key": KEY, "payload": {"summary": "s" * 1023 + "…", "custom_details": {}}}
    assert events_body_errors("/v2/change/enqueue", minimal) == []


def test_the_spec_check_catches_what_pagerduty_would_refuse() -> None:
    """The checker the fake relies on is not vacuous."""
    assert events_body_errors("/v2/enqueue", {**trigger(), "event_action": "open"})
    assert events_body_errors("/v2/enqueue", {"routing_key": KEY, "event_action": "resolve"})
    bad_time = build_change_body(KEY, "s", timestamp="2015-07-17T08:42:58.315+0000")
    assert events_body_errors("/v2/change/enqueue", bad_time)


# ---- sending -----------------------------------------------------------------

@responses.activate
def test_a_202_is_success_and_returns_pagerdutys_dedup_key() -> None:
    responses.post(f"{URL}/v2/enqueue", json=ACCEPTED, status=202)
    assert client().enqueue(trigger()) == "codespar-k1"
    request = responses.calls[0].request
    assert sent() == trigger() and request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in request.headers and KEY not in str(request.url)


@responses.activate
def test_change_events_go_to_the_change_endpoint() -> None:
    responses.post(f"{URL}/v2/change/enqueue", json={"status": "success", "message": "Change event processed"},
                   status=202)
    assert client().change(build_change_body(KEY, "deployed")) is None
    assert responses.calls[0].request.url == f"{URL}/v2/change/enqueue"


@responses.activate
def test_a_400_is_final_and_carries_pagerdutys_message_and_errors() -> None:
    responses.post(f"{URL}/v2/enqueue", status=400, json={
        "status": "invalid event", "message": "Event object is invalid",
        "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]})
    with pytest.raises(EventRejected) as caught:
        client().enqueue(trigger())
    assert str(caught.value) == ("PagerDuty refused the trigger event (400): Event object is invalid; "
                                 "Length of 'routing_key' is incorrect (should be 32 characters)")
    assert caught.value.status == 400 and not caught.value.transient
    assert caught.value.errors == ("Length of 'routing_key' is incorrect (should be 32 characters)",)
    assert len(responses.calls) == 1  # never retried


@responses.activate
def test_a_5xx_is_retried_then_succeeds() -> None:
    responses.post(f"{URL}/v2/enqueue", status=503)
    responses.post(f"{URL}/v2/enqueue", status=502)
    responses.post(f"{URL}/v2/enqueue", json=ACCEPTED, status=202)
    assert client().enqueue(build_resolve_body(KEY, "codespar-k1")) == "codespar-k1"
    assert len(responses.calls) == 3


@responses.activate
def test_a_429_is_retried() -> None:
    responses.post(f"{URL}/v2/enqueue", status=429, headers={"Retry-After": "7"},
                   json={"status": "throttle event", "message": "Requests for this service are arriving too quickly"})
    responses.post(f"{URL}/v2/enqueue", json=ACCEPTED, status=202)
    assert client().enqueue(trigger()) == "codespar-k1" and len(responses.calls) == 2


@pytest.mark.parametrize("header, wait", [("7", 7.0), ("3600", 60.0)])
def test_the_retry_waits_what_pagerduty_asks_up_to_a_cap(header: str, wait: float) -> None:
    """`responses` skips urllib3's waits; the wait itself is urllib3's Retry reading the header
    (tests/test_fake_events_api.py sees it on a real socket)."""
    answer = HTTPResponse(status=429, headers={"Retry-After": header})
    retry = client().session.get_adapter(URL).max_retries  # type: ignore[attr-defined]
    assert retry.respect_retry_after_header and 429 in retry.status_forcelist and retry.allowed_methods is None
    assert retry.get_retry_after(answer) == wait


@responses.activate
@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_running_out_is_a_transient_error(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("urllib3.util.retry.time.sleep", lambda seconds: None)
    for _ in range(4):
        responses.post(f"{URL}/v2/enqueue", status=status,
                       json={"status": "Unrecognized object", "message": "Event object format is unrecognized"})
    with pytest.raises(PagerDutyError) as caught:
        client().enqueue(trigger())
    assert caught.value.transient and caught.value.status == status
    assert str(caught.value) == (f"PagerDuty Events API answered {status} to the trigger event after retries "
                                 "(Event object format is unrecognized); will need to be retried")
    assert len(responses.calls) == 4  # the first try and three retries


@responses.activate
def test_an_unreachable_events_api_is_a_transient_error_naming_the_url() -> None:
    responses.post(f"{URL}/v2/enqueue", body=requests.ConnectionError("refused"))
    with pytest.raises(PagerDutyError) as caught:
        client(RetryPolicy(total=0)).enqueue(trigger())
    assert caught.value.transient
    assert str(caught.value) == ("PagerDuty Events API unreachable at https://events.test (ConnectionError); "
                                 "will need to be retried")


@responses.activate
def test_a_wrong_events_url_says_which_setting_to_check() -> None:
    responses.post(f"{URL}/v2/enqueue", status=404, body="not here")
    with pytest.raises(PagerDutyError, match="no Events API at /v2/enqueue \\(404\\): check PAGERDUTY_EVENTS_URL"):
        client().enqueue(trigger())


@responses.activate
def test_limits_pagerduty_would_refuse_are_refused_before_sending() -> None:
    with pytest.raises(EventRejected, match="dedup_key is 300 characters; PagerDuty allows 255"):
        client().enqueue(trigger(dedup_key="k" * 300))
    with pytest.raises(EventRejected, match=f"the trigger event is [0-9]+ bytes; PagerDuty allows {BODY_LIMIT}"):
        client().enqueue(trigger(details={"log": "x" * BODY_LIMIT}))
    assert len(responses.calls) == 0


@responses.activate
def test_the_routing_key_is_in_no_error_no_log_line_and_no_repr(caplog: pytest.LogCaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr("urllib3.util.retry.time.sleep", lambda seconds: None)
    echo = {"status": "invalid event", "message": f"bad key {KEY}", "errors": [f"routing_key {KEY} unknown"]}
    for status, body in ((400, echo), (404, {}), (413, echo), *[(500, echo)] * 4):
        responses.post(f"{URL}/v2/enqueue", status=status, json=body)
    responses.post(f"{URL}/v2/change/enqueue", body=requests.ConnectionError(f"refused {KEY}"))
    texts: list[str] = []
    sends: list[Callable[[], object]] = [lambda: client().enqueue(trigger())] * 4
    for send in sends + [lambda: client().change(build_change_body(KEY, "x"))]:
        try:
            send()
        except EventRejected as exc:
            texts += [str(exc), *exc.errors]
        except PagerDutyError as exc:
            texts.append(str(exc))
    assert len(texts) == 6  # the 400 and its one error, the 404, the 413, the 500s, the unreachable change
    assert "[routing key]" in texts[0]
    logged = [r.getMessage() for r in caplog.records]
    assert all(KEY not in text for text in texts + logged + [repr(client())])
    assert any(r.name == "pagerduty" and "POST /v2/enqueue trigger 400" in r.getMessage() for r in caplog.records)
