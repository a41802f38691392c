"""PagerDuty REST API v2 client: pure request builders, then a session that sends them.

Every endpoint and field is as in tests/fixtures/pagerduty-api/REFERENCE.md
(the section numbers below). Retries (connection errors, 5xx, 429 with Retry-After) are
urllib3's Retry on the session's adapter; every call has a timeout. Creating an
incident is safe to retry: PagerDuty refuses a second open incident with the
same incident_key. The token is only ever put in the Authorization header.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from engine import logs, metrics
from engine.errors import PageRulesError

log = logging.getLogger("pagerduty")

ACCEPT = "application/vnd.pagerduty+json;version=2"  # REFERENCE §1: picks API version 2
# The body PagerDuty sends when an open incident already has the key (REFERENCE §2.1).
DUPLICATE_KEY_TEXT = "Open incident with matching dedup key already exists"
OPEN_STATUSES = ("triggered", "acknowledged")
PAGE_LIMIT = 100  # GET /incidents maximum page size (REFERENCE §3)
OFFSET_CAP = 10_000  # offset + limit may not exceed it (REFERENCE §3, docs 09-Pagination)
RETRY_AFTER_CAP = 60  # seconds: a longer Retry-After is not waited out inside one call


class PagerDutyError(PageRulesError):
    """PagerDuty said no; ``transient`` when trying again later may succeed."""

    def __init__(self, message: str, status: int | None = None, transient: bool = False):
        super().__init__(message)
        self.status = status
        self.transient = transient


class DuplicateKey(PagerDutyError):
    """POST /incidents refused: an open incident already has this incident_key."""


class ConfigurationError(PagerDutyError):
    """A setting makes every call impossible before it leaves (not PagerDuty's answer, not an outage)."""


def header_problem(token: str, from_email: str | None) -> ConfigurationError | None:
    """A token or From address that cannot go in an HTTP header: requests raises InvalidHeader for a
    line break and http.client UnicodeEncodeError beyond Latin-1. Names the variable, never the value."""
    for variable, value in (("PAGERDUTY_API_TOKEN", token), ("PAGERDUTY_FROM_EMAIL", from_email)):
        if value is not None and (value != value.strip() or not value.isascii() or not value.isprintable()):
            return ConfigurationError(f"{variable} cannot be sent in an HTTP header: it has a line break, a space "
                                      "at an end or a character that is not printable ASCII; copy it again")
    return None


# ---- pure request builders -------------------------------------------------

def headers(token: str, from_email: str | None = None) -> dict[str, str]:
    """Headers of every call; ``From`` on writes (REFERENCE §1: required on POST/PUT incidents and notes)."""
    out = {"Authorization": f"Token token={token}", "Accept": ACCEPT, "Content-Type": "application/json"}
    if from_email:
        out["From"] = from_email
    return out


def build_create_body(title: str, severity_urgency: str, incident_key: str, service_id: str,
                      escalation_policy_id: str, details: Mapping[str, str]) -> dict[str, Any]:
    """POST /incidents body (REFERENCE §2). ``details`` is sent as text: PagerDuty's docs say incident
    creation only supports string bodies, though the spec types it as an object (§2, §9 item 4)."""
    return {"incident": {
        "type": "incident",
        "title": title,
        "service": {"id": service_id, "type": "service_reference"},
        "escalation_policy": {"id": escalation_policy_id, "type": "escalation_policy_reference"},
        "urgency": severity_urgency,
        "incident_key": incident_key,
        "body": {"type": "incident_body", "details": details_text(details)},
    }}


def details_text(details: Mapping[str, str]) -> str:
    """``key: value`` lines, in the rule's order, for the incident body."""
    return "\n".join(f"{key}: {value}" for key, value in details.items())


def build_status_body(status: str, resolution: str | None = None) -> dict[str, Any]:
    """PUT /incidents/{id} body to acknowledge or resolve (REFERENCE §4)."""
    incident: dict[str, Any] = {"type": "incident_reference", "status": status}
    if resolution:
        incident["resolution"] = resolution
    return {"incident": incident}


def build_note_body(content: str) -> dict[str, Any]:
    """POST /incidents/{id}/notes body (REFERENCE §5)."""
    return {"note": {"content": content}}


def open_incidents_query(incident_key: str, offset: int = 0) -> list[tuple[str, str]]:
    """GET /incidents query for open incidents with a key; date_range=all, or only a month is searched (§3)."""
    return [("incident_key", incident_key), *[("statuses[]", s) for s in OPEN_STATUSES],
            ("date_range", "all"), ("limit", str(PAGE_LIMIT)), ("offset", str(offset))]


def log_entries_query(since: str, offset: int = 0) -> list[tuple[str, str]]:
    """GET /log_entries query: every entry since ``since`` (ISO 8601 UTC), each with its full incident
    (``include[]=incidents``: its incident_key and current status), a page of PAGE_LIMIT."""
    return [("since", since), ("include[]", "incidents"), ("limit", str(PAGE_LIMIT)), ("offset", str(offset))]


# ---- sending ---------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries before PagerDuty counts as unreachable."""

    total: int = 4
    backoff_factor: float = 0.5
    backoff_max: float = 8.0

    def to_urllib3(self) -> Retry:
        return Retry(total=self.total, connect=self.total, read=self.total, status=self.total,
                     backoff_factor=self.backoff_factor, backoff_max=self.backoff_max,
                     status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                     respect_retry_after_header=True, retry_after_max=RETRY_AFTER_CAP, raise_on_status=False)


class Client:
    """The calls pagerules makes. Raises PagerDutyError with a message a person can act on."""

    def __init__(self, api_url: str, token: str, from_email: str | None, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, session: requests.Session | None = None):
        self.api_url = api_url.rstrip("/")
        self.from_email = from_email
        self.timeout = timeout
        self._token = token
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=(retry or RetryPolicy()).to_urllib3())
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"Client({self.api_url!r})"  # never the token

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
             params: list[tuple[str, str]] | None = None, write: bool = False) -> dict[str, Any]:
        """One API call; returns the JSON body. Raises PagerDutyError."""
        problem = header_problem(self._token, self.from_email)
        if problem is not None:
            raise problem
        started = time.monotonic()
        try:
            response = self.session.request(method, self.api_url + path, json=body, params=params,
                                            headers=headers(self._token, self.from_email if write else None),
                                            timeout=self.timeout)
        except (requests.exceptions.InvalidHeader, UnicodeEncodeError):  # before anything was sent
            raise ConfigurationError("PAGERDUTY_API_TOKEN or PAGERDUTY_FROM_EMAIL cannot be sent in an HTTP "
                                     "header (a line break or a character outside Latin-1); copy it again") from None
        except requests.RequestException as exc:
            elapsed = time.monotonic() - started
            metrics.observe_pagerduty(method, path, None, elapsed)
            log.warning("%s %s failed after retries: %s", method, path, type(exc).__name__,
                        extra=_call_fields(method, path, None, elapsed, type(exc).__name__))
            raise PagerDutyError(f"PagerDuty unreachable at {self.api_url} ({type(exc).__name__}); "
                                 "will need to be retried", transient=True) from None
        elapsed = time.monotonic() - started
        metrics.observe_pagerduty(method, path, response.status_code, elapsed)
        log.info("%s %s %s %.0fms", method, path, response.status_code, elapsed * 1000,
                 extra=_call_fields(method, path, response.status_code, elapsed))
        if response.status_code >= 400:
            raise _error(method, path, response)
        return response.json() if response.content else {}

    # incidents
    def create_incident(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/incidents", body, write=True)["incident"]  # type: ignore[no-any-return]

    def find_open(self, incident_key: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self.call("GET", "/incidents", params=open_incidents_query(incident_key, len(found)))
            found += [i for i in page.get("incidents", []) if i.get("status") in OPEN_STATUSES]
            if not page.get("more") or not page.get("incidents"):
                return found

    def log_entries_since(self, since: str) -> list[dict[str, Any]] | None:
        """Every log entry since ``since``, oldest first; None when there are more than pagination can
        reach (offset + limit <= OFFSET_CAP): the caller then checks another way."""
        found: list[dict[str, Any]] = []
        for offset in range(0, OFFSET_CAP, PAGE_LIMIT):  # raising offset by limit (REFERENCE §3)
            page = self.call("GET", "/log_entries", params=log_entries_query(since, offset))
            entries = page.get("log_entries") or []
            found += entries
            if not page.get("more") or not entries:
                return sorted(found, key=lambda e: str(e.get("created_at") or ""))
        return None

    def get_incident(self, incident_id: str) -> dict[str, Any]:
        return self.call("GET", f"/incidents/{incident_id}").get("incident", {})  # type: ignore[no-any-return]

    def set_status(self, incident_id: str, status: str, resolution: str | None = None) -> dict[str, Any]:
        return self.call("PUT", f"/incidents/{incident_id}", build_status_body(status, resolution),  # type: ignore[no-any-return]
                         write=True).get("incident", {})

    def add_note(self, incident_id: str, content: str) -> None:
        self.call("POST", f"/incidents/{incident_id}/notes", build_note_body(content), write=True)

    # who and what
    def oncalls(self, escalation_policy_id: str) -> list[dict[str, Any]]:
        params = [("escalation_policy_ids[]", escalation_policy_id), ("include[]", "users"), ("earliest", "true")]
        return self.call("GET", "/oncalls", params=params).get("oncalls", [])  # type: ignore[no-any-return]

    def me(self) -> dict[str, Any]:
        return self.call("GET", "/users/me").get("user", {})  # type: ignore[no-any-return]

    def users_by_email(self, email: str) -> list[dict[str, Any]]:
        users = self.call("GET", "/users", params=[("query", email)]).get("users", [])
        return [u for u in users if str(u.get("email", "")).lower() == email.lower()]

    def service(self, service_id: str) -> dict[str, Any]:
        return self.call("GET", f"/services/{service_id}").get("service", {})  # type: ignore[no-any-return]

    def escalation_policy(self, policy_id: str) -> dict[str, Any]:
        return self.call("GET", f"/escalation_policies/{policy_id}").get("escalation_policy", {})  # type: ignore[no-any-return]


def _call_fields(method: str, path: str, status: int | None, seconds: float, error: str | None = None
                 ) -> dict[str, Any]:
    """The structured fields of one call's log line (README "Logs"); the path, never a header."""
    return logs.fields(event="pagerduty_call", method=method, path=path.split("?", 1)[0],
                       endpoint=metrics.endpoint(method, path), status=status,
                       duration_ms=round(seconds * 1000, 1), **({"error": error} if error else {}))


def _error(method: str, path: str, response: requests.Response) -> PagerDutyError:
    """A message for a 4xx/5xx that says what to do, never the token (REFERENCE §8)."""
    status = response.status_code
    detail = _pd_message(response)
    if status == 401:
        return PagerDutyError("PagerDuty rejected the API token (401): check PAGERDUTY_API_TOKEN", status)
    if status == 403:
        return PagerDutyError(f"the API token may not {method} {path} (403): it needs write access "
                              "(a read-only key cannot create or resolve incidents)", status)
    if status == 404:
        return PagerDutyError(f"not found in PagerDuty (404): {path}; check the id in your configuration", status)
    if status == 400 and DUPLICATE_KEY_TEXT.lower() in detail.lower():
        return DuplicateKey(f"PagerDuty already has an open incident with this key: {detail}", status)
    if status == 429 or status >= 500:
        return PagerDutyError(f"PagerDuty answered {status} after retries ({detail}); will need to be retried",
                              status, transient=True)
    return PagerDutyError(f"PagerDuty refused {method} {path} ({status}): {detail}", status)


def _pd_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason or "no detail"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        parts = [str(error.get("message", ""))] + [str(e) for e in error.get("errors", []) or []]
        return "; ".join(p for p in parts if p) or "no detail"
    return str(body)[:200]
