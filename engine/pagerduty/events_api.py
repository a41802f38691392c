"""PagerDuty Events API v2 client: pure body builders, then a sender (README: Events API v2).

Every field and limit is as in tests/fixtures/pagerduty-api/REFERENCE.md (section 10,
"Events API v2", and section 11, "Field limits") and PagerDuty's events-v2 OpenAPI file
kept next to it (tests/fixtures/pagerduty-api/events-v2/openapiv3.json). The routing key
is the only credential: it travels in the body, never in a URL, a header, a log line,
an error or a repr. Retries (connection errors, 429, 5xx, honouring Retry-After) are
the REST client's RetryPolicy; sending an event twice is harmless because PagerDuty
applies events with the same dedup_key to the same alert.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from engine.pagerduty.client import PagerDutyError, RetryPolicy

log = logging.getLogger("pagerduty")

EVENTS_URL = "https://events.pagerduty.com"
ENQUEUE_PATH = "/v2/enqueue"
CHANGE_PATH = "/v2/change/enqueue"
# REFERENCE.md section 11: limits from PagerDuty's docs that the OpenAPI file does not state.
SUMMARY_LIMIT = 1024  # payload.summary, characters
DEDUP_KEY_LIMIT = 255  # dedup_key, characters
BODY_LIMIT = 512 * 1024  # the whole request body, bytes
# Our severities -> the Events API's payload.severity enum (critical, error, warning, info).
SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
REDACTED = "[routing key]"


class EventRejected(PagerDutyError):
    """PagerDuty answered 400: the event is invalid and sending it again will not help."""

    def __init__(self, message: str, errors: tuple[str, ...] = (), status: int | None = 400):
        super().__init__(message, status)
        self.errors = errors


# ---- pure body builders ----------------------------------------------------

def events_severity(severity: str) -> str:
    """Our severity as the Events API's ``payload.severity``. Raises ValueError for an unknown one."""
    try:
        return SEVERITY[severity]
    except KeyError:
        raise ValueError(f"unknown severity {severity!r} (known: {', '.join(SEVERITY)})") from None


def summary_text(text: str) -> str:
    """``text`` cut to PagerDuty's summary limit (an ellipsis marks the cut)."""
    return text if len(text) <= SUMMARY_LIMIT else text[:SUMMARY_LIMIT - 1] + "…"


def links_list(links: Iterable[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    """``[{href, text}]``; ``text`` only where given (the spec requires ``href`` alone)."""
    out = []
    for link in links or ():
        item = {"href": str(link["href"])}
        if link.get("text"):
            item["text"] = str(link["text"])
        out.append(item)
    return out


def build_trigger_body(routing_key: str, dedup_key: str, title: str, severity: str, source: str,
                       details: Mapping[str, Any] | None = None,
                       links: Iterable[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """POST /v2/enqueue body that opens (or, with an open alert's dedup_key, updates) an alert."""
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {"summary": summary_text(title), "source": source, "severity": events_severity(severity),
                    "custom_details": dict(details or {})},
    }
    if links:
        body["links"] = links_list(links)
    return body


def build_acknowledge_body(routing_key: str, dedup_key: str) -> dict[str, Any]:
    """POST /v2/enqueue body that acknowledges the open alert with this dedup_key."""
    return {"routing_key": routing_key, "event_action": "acknowledge", "dedup_key": dedup_key}


def build_resolve_body(routing_key: str, dedup_key: str) -> dict[str, Any]:
    """POST /v2/enqueue body that resolves the open alert with this dedup_key."""
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}


def build_change_body(routing_key: str, summary: str, source: str | None = None,
                      details: Mapping[str, Any] | None = None,
                      links: Iterable[Mapping[str, Any]] | None = None,
                      timestamp: datetime | str | None = None) -> dict[str, Any]:
    """POST /v2/change/enqueue body: a change (a deploy, a rollback) shown next to incidents, never paging."""
    payload: dict[str, Any] = {"summary": summary_text(summary), "custom_details": dict(details or {})}
    if source:
        payload["source"] = source
    if timestamp is not None:
        payload["timestamp"] = rfc3339(timestamp)
    body: dict[str, Any] = {"routing_key": routing_key, "payload": payload}
    if links:
        body["links"] = links_list(links)
    return body


def rfc3339(moment: datetime | str) -> str:
    """A timestamp PagerDuty's ``format: date-time`` accepts: ``+00:00``-style offsets or ``Z``
    (REFERENCE.md section 9 item 5: ``+0000`` fails)."""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def redact(text: str, routing_key: str | None) -> str:
    """``text`` with the routing key replaced, for anything a person or a log may see."""
    return text.replace(routing_key, REDACTED) if routing_key else text


# ---- sending ---------------------------------------------------------------

class EventsClient:
    """Sends Events API v2 bodies. Raises PagerDutyError: ``transient`` for 429, 5xx and network
    errors after the retries (hold the event and try later), EventRejected for a 400."""

    def __init__(self, events_url: str = EVENTS_URL, timeout: float = 10.0, retry: RetryPolicy | None = None,
                 session: requests.Session | None = None):
        self.events_url = events_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=(retry or RetryPolicy()).to_urllib3())
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"EventsClient({self.events_url!r})"

    def enqueue(self, body: Mapping[str, Any]) -> str | None:
        """Send a trigger, acknowledge or resolve; returns PagerDuty's dedup_key."""
        return self._post(ENQUEUE_PATH, body, str(body.get("event_action", "event")))

    def change(self, body: Mapping[str, Any]) -> str | None:
        """Send a change event."""
        return self._post(CHANGE_PATH, body, "change")

    def _post(self, path: str, body: Mapping[str, Any], what: str) -> str | None:
        key = str(body.get("routing_key") or "")
        data = _checked(body, what)
        started = time.monotonic()
        try:
            response = self.session.post(self.events_url + path, data=data, timeout=self.timeout,
                                         headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:
            log.warning("POST %s %s failed after retries: %s", path, what, type(exc).__name__)
            raise PagerDutyError(f"PagerDuty Events API unreachable at {self.events_url} ({type(exc).__name__}); "
                                 "will need to be retried", transient=True) from None
        log.info("POST %s %s %s %.0fms", path, what, response.status_code, (time.monotonic() - started) * 1000)
        if response.status_code >= 300:
            raise _error(path, what, response, key)
        answer = _json(response)
        dedup_key = answer.get("dedup_key") if isinstance(answer, dict) else None
        return str(dedup_key) if dedup_key is not None else None


def _checked(body: Mapping[str, Any], what: str) -> bytes:
    """The body as JSON, refused before sending when it breaks a limit PagerDuty would answer 400 for."""
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and len(str(dedup_key)) > DEDUP_KEY_LIMIT:
        raise EventRejected(f"the {what} event's dedup_key is {len(str(dedup_key))} characters; PagerDuty "
                            f"allows {DEDUP_KEY_LIMIT} (use a shorter dedup key prefix)", status=None)
    data = json.dumps(body, ensure_ascii=False).encode()
    if len(data) > BODY_LIMIT:
        raise EventRejected(f"the {what} event is {len(data)} bytes; PagerDuty allows {BODY_LIMIT} "
                            "(shorten the rule's details)", status=None)
    return data


def _error(path: str, what: str, response: requests.Response, routing_key: str) -> PagerDutyError:
    """A message for a refused event that says what to do, with PagerDuty's own words, never the key."""
    status = response.status_code
    answer = _json(response)
    message = str(answer.get("message") or answer.get("status") or "") if isinstance(answer, dict) else ""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    errors = tuple(redact(str(e), routing_key) for e in errors) if isinstance(errors, list) else ()
    detail = redact("; ".join(p for p in (message, *errors) if p) or response.reason or "no detail", routing_key)
    if status == 429 or status >= 500:
        return PagerDutyError(f"PagerDuty Events API answered {status} to the {what} event after retries "
                              f"({detail}); will need to be retried", status, transient=True)
    if status == 400:
        return EventRejected(f"PagerDuty refused the {what} event (400): {detail}", errors)
    if status == 404:
        return PagerDutyError(f"no Events API at {path} (404): check PAGERDUTY_EVENTS_URL", status)
    return PagerDutyError(f"PagerDuty refused the {what} event ({status}): {detail}", status)


def _json(response: requests.Response) -> Any:
    try:
        return response.json() if response.content else {}
    except ValueError:
        return {"message": response.text[:200]}
