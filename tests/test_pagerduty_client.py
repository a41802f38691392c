"""The REST client, with HTTP mocked by `responses`: bodies, headers, retries, errors, no token anywhere."""
from __future__ import annotations

import logging

import pytest
import requests
import responses
from responses import matchers

from engine.pagerduty.client import (
    ACCEPT,
    Client,
    ConfigurationError,
    DuplicateKey,
    PagerDutyError,
    RetryPolicy,
    build_create_body,
    build_note_body,
    build_status_body,
    open_incidents_query,
)

URL = "https://pd.test"
TOKEN = "u+secret_TOKEN-42"
FAST = RetryPolicy(total=3, backoff_factor=0.01)


def client(retry: RetryPolicy = FAST) -> Client:
    return Client(URL, TOKEN, "bot@example.com", timeout=2, retry=retry)


def test_create_body_has_the_fields_pagerduty_needs() -> None:
    body = build_create_body("[CodeSpar] High: x", "high", "codespar-k", "PSVC", "PEP", {"repo": "a/b", "n": "1"})
    assert body == {"incident": {
        "type": "incident", "title": "[CodeSpar] High: x",
        "service": {"id": "PSVC", "type": "service_reference"},
        "escalation_policy": {"id": "PEP", "type": "escalation_policy_reference"},
        "urgency": "high", "incident_key": "codespar-k",
        "body": {"type": "incident_body", "details": "repo: a/b\nn: 1"}}}


def test_status_note_and_query_builders() -> None:
    assert build_status_body("resolved", "fixed") == {"incident": {"type": "incident_reference", "status": "resolved",
                                                                   "resolution": "fixed"}}
    assert build_status_body("acknowledged") == {"incident": {"type": "incident_reference", "status": "acknowledged"}}
    assert build_note_body("hi") == {"note": {"content": "hi"}}
    assert open_incidents_query("k") == [("incident_key", "k"), ("statuses[]", "triggered"),
                                         ("statuses[]", "acknowledged"), ("date_range", "all"), ("limit", "100"),
                                         ("offset", "0")]


@responses.activate
def test_writes_send_token_accept_content_type_and_from() -> None:
    responses.post(f"{URL}/incidents", json={"incident": {"id": "P1"}}, status=201, match=[matchers.header_matcher({
        "Authorization": f"Token token={TOKEN}", "Accept": ACCEPT, "Content-Type": "application/json",
        "From": "bot@example.com"})])
    assert client().create_incident({"incident": {}}) == {"id": "P1"}


@responses.activate
def test_reads_send_no_from_header() -> None:
    responses.get(f"{URL}/users/me", json={"user": {"name": "Ada"}})
    client().me()
    assert "From" not in responses.calls[0].request.headers


@responses.activate
def test_a_5xx_is_retried_then_succeeds() -> None:
    responses.post(f"{URL}/incidents", status=503)
    responses.post(f"{URL}/incidents", status=502)
    responses.post(f"{URL}/incidents", json={"incident": {"id": "P1"}}, status=201)
    assert client().create_incident({"incident": {}})["id"] == "P1"
    assert len(responses.calls) == 3


@responses.activate
def test_a_429_is_retried_and_its_retry_after_is_honoured() -> None:
    # responses replays retries without sleeping; the real wait is measured against the fake
    # PagerDuty in test_pagerduty_backend.py::test_a_429_is_waited_out_end_to_end.
    responses.get(f"{URL}/users/me", status=429, headers={"Retry-After": "1"}, json={"error": {"code": 2020}})
    responses.get(f"{URL}/users/me", json={"user": {"name": "Ada"}})
    assert client().me() == {"name": "Ada"} and len(responses.calls) == 2
    retry = FAST.to_urllib3()
    assert retry.respect_retry_after_header and 429 in retry.status_forcelist
    assert retry.allowed_methods is None  # POST too: creating is safe to retry thanks to incident_key


@responses.activate
def test_retries_run_out_as_a_transient_error() -> None:
    for _ in range(4):
        responses.post(f"{URL}/incidents", status=500, json={"error": {"message": "Internal", "code": 2000}})
    with pytest.raises(PagerDutyError) as caught:
        client().create_incident({"incident": {}})
    assert caught.value.transient and caught.value.status == 500
    assert str(caught.value) == "PagerDuty answered 500 after retries (Internal); will need to be retried"


@responses.activate
def test_an_unreachable_pagerduty_is_a_transient_error_naming_the_url() -> None:
    responses.post(f"{URL}/incidents", body=requests.ConnectionError("refused"))
    with pytest.raises(PagerDutyError) as caught:
        client(RetryPolicy(total=0)).create_incident({"incident": {}})
    assert caught.value.transient
    assert str(caught.value) == "PagerDuty unreachable at https://pd.test (ConnectionError); will need to be retried"


@pytest.mark.parametrize("status, body, message", [
    (401, {"error": {"message": "Authentication failed", "code": 2006}},
     "PagerDuty rejected the API token (401): check PAGERDUTY_API_TOKEN"),
    (403, {"error": {"message": "Access Denied", "code": 2010}},
     "the API token may not POST /incidents (403): it needs write access (a read-only key cannot create or "
     "resolve incidents)"),
    (404, {"error": {"message": "Not Found", "code": 2100}},
     "not found in PagerDuty (404): /incidents; check the id in your configuration"),
    (400, {"error": {"message": "Invalid Input Provided", "code": 2001, "errors": ["Service not found"]}},
     "PagerDuty refused POST /incidents (400): Invalid Input Provided; Service not found"),
])
@responses.activate
def test_errors_say_what_to_do(status: int, body: dict, message: str) -> None:  # type: ignore[type-arg]
    responses.post(f"{URL}/incidents", json=body, status=status)
    with pytest.raises(PagerDutyError) as caught:
        client().create_incident({"incident": {}})
    assert str(caught.value) == message and not caught.value.transient


@responses.activate
def test_an_open_duplicate_key_is_recognised() -> None:
    responses.post(f"{URL}/incidents", status=400, json={"error": {"message": "Invalid Input Provided", "code": 2001,
                   "errors": ["Open incident with matching dedup key already exists on this service"]}})
    with pytest.raises(DuplicateKey):
        client().create_incident({"incident": {}})


@responses.activate
def test_find_open_pages_through_results() -> None:
    responses.get(f"{URL}/incidents", json={"incidents": [{"id": "P1", "status": "triggered"}], "more": True})
    responses.get(f"{URL}/incidents", json={"incidents": [{"id": "P2", "status": "acknowledged"}], "more": False})
    assert [i["id"] for i in client().find_open("k")] == ["P1", "P2"]
    assert "offset=1" in responses.calls[1].request.url and "date_range=all" in responses.calls[1].request.url


@responses.activate
def test_the_token_is_in_no_error_and_no_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for status in (401, 403, 404, 400, 500, 500, 500, 500):
        responses.post(f"{URL}/incidents", status=status, json={"error": {"message": "m"}})
    texts = []
    for _ in range(5):
        try:
            client().create_incident({"incident": {}})
        except PagerDutyError as exc:
            texts.append(str(exc))
    assert len(texts) == 5
    assert all(TOKEN not in t for t in texts + [r.getMessage() for r in caplog.records] + [repr(client())])
    assert any(r.name == "pagerduty" and "POST /incidents 401" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("token, from_email, variable", [
    (TOKEN + "\n", "bot@example.com", "PAGERDUTY_API_TOKEN"),
    ("u+secret_T\u00d6KEN", "bot@example.com", "PAGERDUTY_API_TOKEN"),  # beyond ASCII: http.client cannot send it
    ("u+secret_\u2603", "bot@example.com", "PAGERDUTY_API_TOKEN"),      # beyond Latin-1: was an internal error
    (TOKEN, "bot@example.com\r\n", "PAGERDUTY_FROM_EMAIL"),
])
@responses.activate
def test_a_token_that_cannot_be_a_header_is_a_configuration_error(token: str, from_email: str,
                                                                  variable: str) -> None:
    """Issue 11 item 11: was "PagerDuty unreachable ... (InvalidHeader); will need to be retried"."""
    with pytest.raises(ConfigurationError) as caught:
        Client(URL, token, from_email, timeout=2, retry=FAST).create_incident({"incident": {}})
    assert str(caught.value) == (f"{variable} cannot be sent in an HTTP header: it has a line break, a space at an "
                                 "end or a character that is not printable ASCII; copy it again")
    assert not caught.value.transient and "unreachable" not in str(caught.value)
    assert token.strip() not in str(caught.value)
    assert len(responses.calls) == 0  # refused before anything was sent


@responses.activate
def test_log_entries_are_read_page_by_page_oldest_first() -> None:
    pages = [{"log_entries": [{"id": "L2", "created_at": "2026-12-03T10:00:02Z"},
                              {"id": "L1", "created_at": "2026-12-03T10:00:01Z"}], "more": True},
             {"log_entries": [{"id": "L3", "created_at": "2026-12-03T10:00:03Z"}], "more": False}]
    for offset, page in zip((0, 100), pages, strict=True):
        responses.get(f"{URL}/log_entries", json=page, match=[matchers.query_param_matcher(
            {"since": "2026-12-03T10:00:00Z", "include[]": "incidents", "limit": "100", "offset": str(offset)})])
    found = client().log_entries_since("2026-12-03T10:00:00Z")
    assert [e["id"] for e in found or []] == ["L1", "L2", "L3"]


@responses.activate
def test_more_log_entries_than_pagination_reaches_answer_none() -> None:
    """offset + limit may not pass 10,000 (REFERENCE §3): the caller then checks every incident."""
    responses.get(f"{URL}/log_entries", json={"log_entries": [{"id": "L"}] * 100, "more": True})
    assert client().log_entries_since("2026-12-03T10:00:00Z") is None
    assert len(responses.calls) == 100  # offsets 0 .. 9,900, never past the cap
