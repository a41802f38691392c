"""A fake PagerDuty (REST API and Events API v2) on loopback, for end-to-end tests and benchmarks.

It implements the calls pagerules makes with PagerDuty's behaviour where it
matters (tests/fixtures/pagerduty-api/REFERENCE.md): a second open incident with
the same incident_key is refused with 400 and the "Open incident with
matching dedup key" text; writes need a From header; a bad token gets 401.
Faults are injected through POST /_fake/faults: ``{"status": 503, "count": 2}``
answers the next two API calls with 503, ``"until": EPOCH`` answers every call
with the status until then (an outage), ``"retry_after": 1`` adds the header,
``"latency_ms": 100`` delays every call. GET /_fake/requests lists what was
received (the token is replaced by whether it was right). A fault with ``"prefix": "/v2/"``
hits only the calls whose path starts with it (here: the Events API).

Incidents are indexed by incident_key, so the dedup check on create and
``GET /incidents?incident_key=`` cost the same with 100,000 open as with 100.
GET /log_entries answers what happened (trigger, acknowledge, resolve, annotate), with
``include[]=incidents`` and pagination; its query is checked against the spec's parameters
(``query_errors``). ``resolve_by_hand`` / ``acknowledge_by_hand`` act as a person in PagerDuty would.
``seed_open`` (or POST /_fake/seed ``{"incidents": [{"incident_key": ..., "title": ...}]}``)
opens many at once for a benchmark and answers their ids.

The Events API v2 answers on the same server: POST /v2/enqueue and /v2/change/enqueue
(point PAGERDUTY_EVENTS_URL at the base URL). Every body is checked against PagerDuty's
events-v2 OpenAPI file and the documented limits (tests/pd_spec.py); a bad one gets 400
``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``,
a good one 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}``.
Alerts are kept per (routing_key, dedup_key) as PagerDuty does (REFERENCE.md §10): a
trigger opens one or, while it is open, is deduplicated into it; acknowledge and resolve
act on the open one and are dropped when there is none. GET /_fake/alerts and
/_fake/changes list them for a test driving the CLI in a subprocess.

    python tests/fake_pagerduty.py --port 8765 --token T   # run it on its own
"""
from __future__ import annotations

import argparse
import bisect
import itertools
import json
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pd_spec import _is_date_time, _resolve, events_body_errors, operation

TOKEN = "fake-token-0123456789"
SERVICE = "PSVC001"
POLICY = "PEP0001"
FROM_EMAIL = "oncall-bot@example.com"
ONCALL = [
    {"escalation_level": 2, "user": {"id": "PU2", "type": "user", "name": "Bo Backup", "email": "bo@example.com"},
     "schedule": {"id": "PS2", "type": "schedule_reference", "summary": "Backup"},
     "escalation_policy": {"id": POLICY, "type": "escalation_policy_reference"},
     "start": "2026-11-28T00:00:00Z", "end": "2026-11-29T00:00:00Z"},
    {"escalation_level": 1, "user": {"id": "PU1", "type": "user", "name": "Ada Oncall", "email": "ada@example.com"},
     "schedule": {"id": "PS1", "type": "schedule_reference", "summary": "Primary"},
     "escalation_policy": {"id": POLICY, "type": "escalation_policy_reference"},
     "start": "2026-11-28T00:00:00Z", "end": "2026-11-28T18:00:00Z"},
]
PAYMENTS_POLICY = "PEPPAY1"  # a second escalation policy, with another person on call
ONCALL_PAYMENTS = [
    {"escalation_level": 1, "user": {"id": "PU3", "type": "user", "name": "Cy Payments", "email": "cy@example.com"},
     "schedule": {"id": "PS3", "type": "schedule_reference", "summary": "Payments primary"},
     "escalation_policy": {"id": PAYMENTS_POLICY, "type": "escalation_policy_reference"},
     "start": "2026-11-28T00:00:00Z", "end": "2026-11-28T12:00:00Z"},
]
POLICIES = {POLICY: "Backend", PAYMENTS_POLICY: "Payments"}
USERS = [{"id": "PU0", "type": "user", "name": "Oncall Bot", "email": FROM_EMAIL}]
ROUTING_KEY = "fakeroutingkey000000000000000001"  # 32 characters, like an Events API v2 integration key
EVENTS_PATHS = ("/v2/enqueue", "/v2/change/enqueue")
ROUTING_KEY_LENGTH = 32  # REFERENCE.md §10
INVALID_EVENT = {"status": "invalid event", "message": "Event object is invalid"}


class FakePagerDuty:
    """The fake's state; ``start()`` serves it on 127.0.0.1 and returns the base URL."""

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.lock = threading.Lock()
        self.incidents: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, list[str]] = {}  # incident_key -> ids of incidents with it, oldest first
        self.requests: list[dict[str, Any]] = []
        self.faults: dict[str, Any] = {}
        self.alerts: list[dict[str, Any]] = []  # Events API v2 alerts, oldest first, resolved ones kept
        self.changes: list[dict[str, Any]] = []  # change events received
        self.rejected: list[dict[str, Any]] = []  # Events API bodies answered 400, with why
        self.log_entries: list[dict[str, Any]] = []  # GET /log_entries: what happened to incidents, oldest first
        self._ids = itertools.count(1)
        self.server: ThreadingHTTPServer | None = None

    # test helpers
    def start(self, port: int = 0) -> str:
        fake = self

        class Handler(_Handler):
            pd = fake
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        # A short poll: shutdown() waits up to one interval, and every test stops a fake.
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def open_incident(self, key: str, title: str = "opened elsewhere") -> dict[str, Any]:
        with self.lock:
            return self._create({"title": title, "incident_key": key, "urgency": "high"})

    def seed_open(self, incidents: list[dict[str, Any]]) -> list[str]:
        """Open many incidents at once (``{"incident_key", "title"}`` each, keys not open yet); their ids.
        They were opened a day ago: their trigger log entries say so, as a benchmark's backlog would."""
        with self.lock:
            ids = [self._create({"urgency": "high", **i})["id"] for i in incidents]
            day_ago = time.time() - 86400
            for entry in self.log_entries[len(self.log_entries) - len(ids):]:
                entry["at"], entry["created_at"] = day_ago, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day_ago))
            self.log_entries.sort(key=lambda e: e["at"])
            return ids

    def resolve_by_hand(self, key: str) -> None:
        with self.lock:
            for incident in self._with_key(key):
                if incident["status"] != "resolved":
                    incident["status"] = "resolved"
                    self._log("resolve_log_entry", incident)

    def acknowledge_by_hand(self, key: str) -> None:
        with self.lock:
            for incident in self._with_key(key):
                if incident["status"] == "triggered":
                    incident["status"] = "acknowledged"
                    self._log("acknowledge_log_entry", incident)

    def calls(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if (method is None or r["method"] == method)
                    and (path is None or r["path"] == path) and not r["path"].startswith("/_fake")]

    def open_keys(self) -> list[str]:
        with self.lock:
            return sorted(i["incident_key"] for i in self.incidents.values() if i["status"] != "resolved")

    # Events API v2 test helpers
    def events_calls(self, path: str | None = None) -> list[dict[str, Any]]:
        """Requests received on /v2/enqueue and /v2/change/enqueue (or only ``path``), bodies as sent."""
        return [r for r in self.calls("POST") if r["path"] in EVENTS_PATHS and (path is None or r["path"] == path)]

    def open_dedup_keys(self, routing_key: str | None = None) -> dict[str, list[str]]:
        """The dedup keys of open (triggered or acknowledged) alerts, by routing key."""
        with self.lock:
            out: dict[str, list[str]] = {}
            for alert in self.alerts:
                if alert["status"] != "resolved" and routing_key in (None, alert["routing_key"]):
                    out.setdefault(alert["routing_key"], []).append(alert["dedup_key"])
            return {key: sorted(keys) for key, keys in out.items()}

    def alert(self, routing_key: str, dedup_key: str) -> dict[str, Any] | None:
        """The latest alert with this key on this routing key, open or resolved."""
        with self.lock:
            found = [a for a in self.alerts if (a["routing_key"], a["dedup_key"]) == (routing_key, dedup_key)]
            return dict(found[-1]) if found else None

    def change_events(self, routing_key: str | None = None) -> list[dict[str, Any]]:
        """Change event bodies received (and accepted), oldest first."""
        with self.lock:
            return [c for c in self.changes if routing_key in (None, c["routing_key"])]

    def rejected_events(self) -> list[dict[str, Any]]:
        """Events API bodies the fake answered 400: ``{"path", "body", "errors"}``."""
        with self.lock:
            return list(self.rejected)

    # behaviour
    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        number = next(self._ids)
        incident = {"id": f"PINC{number:04d}", "type": "incident", "incident_number": number,
                    "title": body.get("title"), "incident_key": body.get("incident_key"),
                    "status": "triggered", "urgency": body.get("urgency", "high"),
                    "service": {"id": (body.get("service") or {}).get("id") or SERVICE, "type": "service_reference"},
                    "body": body.get("body"), "notes": [], "resolution": None,
                    "html_url": f"https://fake.pagerduty.local/incidents/PINC{number:04d}"}
        self.incidents[incident["id"]] = incident
        self._log("trigger_log_entry", incident)
        if incident["incident_key"]:
            self.by_key.setdefault(incident["incident_key"], []).append(incident["id"])
        return incident

    def _log(self, kind: str, incident: dict[str, Any]) -> None:
        """A log entry as PagerDuty writes one (the spec's LogEntry: id, type, created_at, incident ref)."""
        number = len(self.log_entries) + 1
        self.log_entries.append({
            "id": f"PLOG{number:05d}", "type": kind, "summary": kind.removesuffix("_log_entry"),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "at": time.time(),
            "incident": {"id": incident["id"], "type": "incident_reference"}})

    def _log_entries(self, query: list[tuple[str, str]]) -> tuple[int, dict[str, str], Any]:
        """GET /log_entries: since/until, include[]=incidents, limit/offset with PagerDuty's 10,000 cap."""
        errors = query_errors("GET", "/log_entries", query)
        q = dict(query)
        limit, offset = int(q.get("limit", 25)), int(q.get("offset", 0))
        if offset + limit > 10_000:
            errors.append("Offset must be less than 10000")
        if errors:
            return 400, {}, {"error": {"message": "Invalid Input Provided", "code": 2001, "errors": errors}}
        since = _epoch(q["since"]) if "since" in q else time.time() - 30 * 86400
        until = _epoch(q["until"]) if "until" in q else float("inf")
        start = bisect.bisect_left(self.log_entries, since, key=lambda e: e["at"])  # no scan of old entries
        found = [e for e in itertools.islice(self.log_entries, start, None) if e["at"] < until]
        page = []
        for entry in found[offset:offset + limit]:
            shown = {k: v for k, v in entry.items() if k != "at"}
            if q.get("include[]") == "incidents":
                shown["incident"] = self.incidents.get(entry["incident"]["id"], entry["incident"])
            page.append(shown)
        return 200, {}, {"log_entries": page, "limit": limit, "offset": offset,
                         "more": offset + limit < len(found), "total": None}

    def _with_key(self, key: str) -> list[dict[str, Any]]:
        return [self.incidents[i] for i in self.by_key.get(key, ())]

    def handle(self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str],
               body: Any) -> tuple[int, dict[str, str], Any]:
        """The answer to one API call: (status, extra headers, JSON body)."""
        if path in EVENTS_PATHS and method == "POST":  # the routing key in the body authenticates, no header
            with self.lock:
                return self._event(path, body)
        if headers.get("authorization") != f"Token token={self.token}":
            return 401, {}, {"error": {"message": "Authentication failed", "code": 2006}}
        write = method in ("POST", "PUT")
        if write and "@" not in headers.get("from", ""):
            return 400, {}, {"error": {"message": "Invalid Input Provided", "code": 2001, "errors": [
                'You must specify a user\'s email address in the "From" header to perform this action']}}
        if write and not isinstance(body, dict):  # none, cut short (a client killed mid-request), or not JSON
            return 400, {}, {"error": {"message": "Invalid Input Provided", "code": 2001,
                                       "errors": ["The request body is not a JSON object"]}}
        parts = [p for p in path.split("/") if p]
        with self.lock:
            return self._route(method, parts, dict(query), query, body)

    def _route(self, method: str, parts: list[str], q: dict[str, str], query: list[tuple[str, str]],
               body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST" and parts == ["incidents"]:
            return self._post_incident(body)
        if method == "GET" and parts == ["incidents"]:
            statuses = [v for k, v in query if k == "statuses[]"]
            candidates = self._with_key(q["incident_key"]) if q.get("incident_key") else self.incidents.values()
            found = [i for i in candidates if not statuses or i["status"] in statuses]
            return 200, {}, {"incidents": found, "limit": 100, "offset": 0, "more": False, "total": None}
        if len(parts) >= 2 and parts[0] == "incidents" and parts[1] not in self.incidents:
            return 404, {}, {"error": {"message": "Incident Not Found", "code": 5001}}
        if method == "GET" and len(parts) == 2 and parts[0] == "incidents":
            return 200, {}, {"incident": self.incidents[parts[1]]}
        if method == "PUT" and len(parts) == 2 and parts[0] == "incidents":
            return self._put_incident(self.incidents[parts[1]], body)
        if method == "POST" and len(parts) == 3 and parts[2] == "notes":
            self.incidents[parts[1]]["notes"].append(body["note"]["content"])
            self._log("annotate_log_entry", self.incidents[parts[1]])
            return 201, {}, {"note": {"id": "PNOTE", "content": body["note"]["content"]}}
        if method == "GET" and parts == ["log_entries"]:
            return self._log_entries(query)
        if method == "GET" and parts == ["oncalls"]:  # filtered by escalation_policy_ids[] as PagerDuty does
            errors = query_errors("GET", "/oncalls", query)
            if errors:
                return 400, {}, {"error": {"message": "Invalid Input Provided", "code": 2001, "errors": errors}}
            asked = {v for k, v in query if k == "escalation_policy_ids[]"}
            rows = [o for o in ONCALL + ONCALL_PAYMENTS if not asked or o["escalation_policy"]["id"] in asked]
            return 200, {}, {"oncalls": rows, "limit": 25, "offset": 0, "more": False, "total": None}
        if method == "GET" and parts == ["users", "me"]:
            return 200, {}, {"user": USERS[0]}
        if method == "GET" and parts == ["users"]:
            return 200, {}, {"users": [u for u in USERS if q.get("query", "") in u["email"]]}
        if method == "GET" and parts == ["services", SERVICE]:
            return 200, {}, {"service": {"id": SERVICE, "type": "service", "name": "Backend API"}}
        if method == "GET" and len(parts) == 2 and parts[0] == "escalation_policies" and parts[1] in POLICIES:
            return 200, {}, {"escalation_policy": {"id": parts[1], "type": "escalation_policy",
                                                   "name": POLICIES[parts[1]]}}
        return 404, {}, {"error": {"message": "Not Found", "code": 2100}}

    def _post_incident(self, body: Any) -> tuple[int, dict[str, str], Any]:
        incident = body["incident"]
        key = incident.get("incident_key")
        if key and any(i["status"] != "resolved" for i in self._with_key(key)):
            return 400, {}, {"error": {"message": "Invalid Input Provided", "code": 2001, "errors": [
                "Open incident with matching dedup key already exists on this service"]}}
        return 201, {}, {"incident": self._create(incident)}

    def _event(self, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
        errors = ["JSON parse error"] if body is _BAD_JSON else events_body_errors(path, body)
        if not errors and len(str(body.get("routing_key"))) != ROUTING_KEY_LENGTH:
            errors = [f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)"]
        if errors:
            self.rejected.append({"path": path, "body": None if body is _BAD_JSON else body, "errors": errors})
            return 400, {}, {**INVALID_EVENT, "errors": errors}
        if path == "/v2/change/enqueue":
            self.changes.append(body)
            return 202, {}, {"status": "success", "message": "Change event processed"}
        return 202, {}, {"status": "success", "message": "Event processed", "dedup_key": self._apply(body)}

    def _apply(self, body: dict[str, Any]) -> str:
        """PagerDuty's dedup rules (REFERENCE.md §10): an event applies to the open alert with its
        dedup_key on its routing key; a trigger with none opens one; acknowledge/resolve with none are dropped."""
        key, action = body.get("dedup_key") or uuid.uuid4().hex, body["event_action"]
        open_alert = next((a for a in self.alerts if (a["routing_key"], a["dedup_key"]) == (body["routing_key"], key)
                           and a["status"] != "resolved"), None)
        if open_alert is not None:
            open_alert["events"] += 1
            open_alert["status"] = {"acknowledge": "acknowledged", "resolve": "resolved"}.get(action,
                                                                                              open_alert["status"])
        elif action == "trigger":
            self.alerts.append({"routing_key": body["routing_key"], "dedup_key": key, "status": "triggered",
                                "events": 1, "payload": body["payload"], "links": body.get("links", [])})
        return key  # type: ignore[no-any-return]

    def _put_incident(self, incident: dict[str, Any], body: Any) -> tuple[int, dict[str, str], Any]:
        status = body["incident"]["status"]
        if incident["status"] == "resolved" and status == "resolved":
            return 400, {}, {"error": {"message": "Incident Already Resolved", "code": 1001}}
        if status != incident["status"]:
            self._log({"resolved": "resolve_log_entry", "acknowledged": "acknowledge_log_entry"}.get(
                status, "trigger_log_entry"), incident)
        incident["status"] = status
        if body["incident"].get("resolution"):
            incident["resolution"] = body["incident"]["resolution"]
        return 200, {}, {"incident": incident}


_BAD_JSON = object()  # a body that is not JSON


def query_errors(method: str, path: str, query: list[tuple[str, str]]) -> list[str]:
    """Query parameters the spec's operation does not name, or whose value its schema's enum or type
    refuses (integers, booleans, date-time)."""
    _, op = operation(method, path)
    params = {}
    for param in op.get("parameters", []):
        param = _resolve(param["$ref"]) if "$ref" in param else param
        if param.get("in") == "query":
            params[param["name"]] = param.get("schema") or {}
    errors = []
    for name, value in query:
        schema = params.get(name)
        if schema is None:
            errors.append(f"{method} {path}: unknown query parameter {name!r}")
            continue
        schema = schema.get("items", schema) if schema.get("type") == "array" else schema
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{method} {path}: {name}={value!r} is not one of {schema['enum']}")
        elif schema.get("type") == "integer" and not value.isdigit():
            errors.append(f"{method} {path}: {name}={value!r} is not an integer")
        elif schema.get("type") == "boolean" and value not in ("true", "false"):
            errors.append(f"{method} {path}: {name}={value!r} is not a boolean")
        elif schema.get("format") == "date-time" and not _is_date_time(value):
            errors.append(f"{method} {path}: {name}={value!r} is not an RFC 3339 date-time")
    return errors


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00")).timestamp()


class _Handler(BaseHTTPRequestHandler):
    pd: FakePagerDuty
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:  # answered 400, as PagerDuty answers it
            body = _BAD_JSON
        headers = {k.lower(): v for k, v in self.headers.items()}
        if url.path.startswith("/_fake/"):
            return self._control(method, url.path, body)
        with self.pd.lock:
            self.pd.requests.append({"method": method, "path": url.path, "query": parse_qsl(url.query),
                                     "headers": {k: v for k, v in headers.items() if k != "authorization"},
                                     "token_ok": headers.get("authorization") == f"Token token={self.pd.token}",
                                     "body": raw.decode("utf-8", "replace") if body is _BAD_JSON else body,
                                     "at": time.time()})
            faults = dict(self.pd.faults) if url.path.startswith(self.pd.faults.get("prefix", "/")) else {}
            if faults.get("until", 0) > time.time():  # an outage: every call fails until then
                faults["count"] = 1
            elif faults.get("count", 0) > 0:
                self.pd.faults["count"] -= 1
        if faults.get("latency_ms"):
            time.sleep(faults["latency_ms"] / 1000)
        if faults.get("count", 0) > 0:
            extra = {"Retry-After": str(faults["retry_after"])} if "retry_after" in faults else {}
            answer = ({"status": "injected fault", "message": "injected fault", "errors": ["injected fault"]}
                      if url.path in EVENTS_PATHS else {"error": {"message": "injected fault"}})
            return self._send(faults.get("status", 503), extra, answer)
        self._send(*self.pd.handle(method, url.path, parse_qsl(url.query), headers, body))

    def _control(self, method: str, path: str, body: Any) -> None:
        if path == "/_fake/faults" and method == "POST":
            with self.pd.lock:
                self.pd.faults = dict(body or {})
            return self._send(200, {}, {"faults": self.pd.faults})
        if path == "/_fake/requests":
            return self._send(200, {}, {"requests": self.pd.calls()})
        if path == "/_fake/seed" and method == "POST":
            return self._send(200, {}, {"ids": self.pd.seed_open(list((body or {}).get("incidents", [])))})
        if path == "/_fake/incidents":
            return self._send(200, {}, {"incidents": list(self.pd.incidents.values())})
        if path == "/_fake/alerts":
            with self.pd.lock:
                return self._send(200, {}, {"alerts": list(self.pd.alerts), "rejected": list(self.pd.rejected)})
        if path == "/_fake/changes":
            return self._send(200, {}, {"changes": self.pd.change_events()})
        self._send(404, {}, {"error": "unknown control path"})

    def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")


def main() -> None:
    parser = argparse.ArgumentParser(description="fake PagerDuty REST API and Events API v2 on loopback")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=TOKEN)
    args = parser.parse_args()
    fake = FakePagerDuty(args.token)
    print(fake.start(args.port), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
