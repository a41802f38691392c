"""Webhook intake: which senders, how each proves who it is, what gets stored (README "HTTP API,
dashboard and webhook intake").

Only the three senders pagerules has rule packs for are accepted. A stored
payload's type comes from the source and its header alone: the ``type`` key is
set from them in the stored file (the daemon reads the body's ``type`` first),
so nothing in a body can pick what it pages as. Bodies are parsed strictly
(engine.web.strict_json) so no file the daemon cannot handle is ever spooled.
The HTTP route itself is engine.web.hooks; ``POST /api/events`` (engine.web.api) comes here too.

Where a delivery goes: the events directory (a file, fsynced before the 202), or, when the server
runs with ``--queue``, the shared queue in PostgreSQL (engine/pagerduty/queue.py), committed before
the 202. A queue that cannot be reached answers 503 with Retry-After and writes nothing, so the
sender tries again (GitHub, Sentry and Alertmanager retry on 5xx).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.config import Config
from engine.pagerduty.queue import Entry, QueueUnavailable, ordering_key
from engine.web.strict_json import BadJson, parse_json

if TYPE_CHECKING:  # the driver is imported only by a server that runs with a queue
    from engine.pagerduty.pgqueue import EventQueue

log = logging.getLogger("pagerules.server")
HEADER_VALUE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PING = "github.ping"  # GitHub's "hello" when a hook is created: answered, never stored
# pagerules' own normalised type (README "Events"): a body posted as Sentry-Hook-Resource "errors" is not a Sentry
# payload (Sentry's resources are installation, event_alert, issue, metric_alert, error, comment).
NOT_RAW = frozenset({"sentry.errors"})
RETRY_AFTER_SECONDS = 10  # what a 503 asks the sender to wait
MAX_EVENTS = 1000  # events in one POST /api/events


class Headers(Protocol):
    """What intake reads of request headers (werkzeug's Headers, or a dict in tests)."""

    def get(self, key: str, default: str) -> str: ...


@dataclass(frozen=True)
class Source:
    name: str
    header: str | None  # the header naming the event (None: the source has one type)
    prefix: str


SOURCES = {s.name: s for s in (Source("alertmanager", None, "alertmanager"),
                               Source("github", "X-GitHub-Event", "github."),
                               Source("sentry", "Sentry-Hook-Resource", "sentry."))}


# ---- senders ---------------------------------------------------------------

def known_sources() -> list[str]:
    return sorted(SOURCES)


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that never raises on odd input (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _hmac_hex(secret: str, raw: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()


def authenticate(source: str, config: Config, headers: Headers, raw: bytes) -> str | None:
    """None when the sender proved itself (or the source has no credential set); else why not."""
    github, sentry, alertmanager = config.github_webhook_secret, config.sentry_client_secret, config.alertmanager_token
    if source == "github" and github and not _same(headers.get("X-Hub-Signature-256", ""),
                                                   "sha256=" + _hmac_hex(github, raw)):
        return "missing or wrong X-Hub-Signature-256 (HMAC-SHA256 of the body with the webhook secret)"
    if source == "sentry" and sentry and not _same(headers.get("Sentry-Hook-Signature", ""), _hmac_hex(sentry, raw)):
        return "missing or wrong Sentry-Hook-Signature (HMAC-SHA256 of the body with the client secret)"
    if source == "alertmanager" and alertmanager and not _alertmanager_ok(headers.get("Authorization", ""),
                                                                          alertmanager):
        return ("missing or wrong credentials: send Authorization: Bearer <PAGERULES_ALERTMANAGER_TOKEN> "
                "or basic auth with it as the password")
    return None


CREDENTIALS = {"alertmanager": ("alertmanager_token", "PAGERULES_ALERTMANAGER_TOKEN"),
               "github": ("github_webhook_secret", "PAGERULES_GITHUB_WEBHOOK_SECRET"),
               "sentry": ("sentry_client_secret", "PAGERULES_SENTRY_CLIENT_SECRET")}


def unauthenticated(config: Config) -> list[tuple[str, str]]:
    """(source, variable) for each source whose credential is not set: said at start-up, never the values."""
    return [(source, variable) for source, (setting, variable) in sorted(CREDENTIALS.items())
            if not getattr(config, setting)]


def _alertmanager_ok(header: str, token: str) -> bool:
    """Alertmanager's http_config sends ``authorization`` (Bearer) or ``basic_auth``: accept either."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return _same(value.strip(), token)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return _same(decoded.partition(":")[2], token)
    return False


def hook_type(source: str, headers: Headers) -> str:
    """github + X-GitHub-Event: workflow_run -> github.workflow_run; alertmanager -> alertmanager.
    Raises BadJson (400) when the naming header is missing or malformed."""
    spec = SOURCES[source]
    if spec.header is None:
        return spec.prefix
    value = headers.get(spec.header, "")
    if not HEADER_VALUE.match(value):
        raise BadJson(f"header {spec.header}: {'missing' if not value else 'not an event name'}; "
                      f"{source} names the event there, and the type comes from it")
    return spec.prefix + value


def stored_types(source: str, known: Iterable[str]) -> list[str]:
    """The types a source's payloads may be stored as: those with an event schema."""
    prefix = SOURCES[source].prefix
    if not prefix.endswith("."):  # alertmanager: one type (alertmanager.alert is what it expands into)
        return [prefix] if prefix in known else []
    return sorted(t for t in known if t.startswith(prefix) and t not in NOT_RAW)


def stored_body(payload: dict[str, Any], raw: bytes, kind: str) -> bytes:
    """What to write: the bytes as received when the body has no ``type`` (the daemon then types it
    from the file name); otherwise the payload with ``type`` set from the header, because the daemon
    reads a body's own ``type`` first and a sender must not choose what it pages as."""
    if "type" not in payload:
        return raw
    return json.dumps({"type": kind, **{k: v for k, v in payload.items() if k != "type"}},
                      ensure_ascii=False).encode("utf-8")


class Intake:
    """One POST /hooks/{source}: (HTTP status, JSON body). Nothing is written unless the answer is
    202 with a file name. Unknown GitHub/Sentry event names are answered 202 "ignored", logged once
    per type, counted (``ignored``, shown by /healthz), and not stored: failed/ is kept for files an
    operator must look at."""

    def __init__(self, config: Config, events: Path, event_types: Iterable[str], queue: EventQueue | None = None):
        self.config, self.events, self.event_types = config, events, frozenset(event_types)
        self.queue = queue  # None: deliveries go to the events directory
        self.ignored: Counter[str] = Counter()  # deliveries answered "ignored", per type, since start
        self._lock = threading.Lock()
        for source, variable in unauthenticated(config):
            log.warning("/hooks/%s accepts deliveries from anyone: set %s to require the sender's credentials",
                        source, variable)

    def receive(self, source: str, headers: Headers, raw: bytes, client: str) -> tuple[int, dict[str, Any]]:
        refused = self._refusal(source, headers, raw, client)
        if refused:
            return refused
        try:
            payload, kind = _delivery(source, headers, raw)
        except BadJson as exc:
            return 400, {"error": str(exc)}
        if kind == PING:
            return 200, {"status": "pong", "stored": False}
        try:
            return 202, self._store(source, kind, payload, raw)
        except QueueUnavailable as exc:
            return unavailable(exc, to_the_sender=False)  # a hook may be open to anyone: no database names

    def use_queue(self, queue: EventQueue) -> None:
        """From now on, deliveries go into ``queue`` (``serve --queue``) instead of the events directory."""
        self.queue = queue

    def accept_events(self, body: Any) -> tuple[int, dict[str, Any]]:
        """POST /api/events: one event (an object) or a list of them, stored as they are (each names its
        own ``type``); 202 with the queue ids (or the file) once stored, 400 naming the first bad item."""
        items = body if isinstance(body, list) else [body]
        if not items or len(items) > MAX_EVENTS:
            return 400, {"error": f"expected one event or a list of 1 to {MAX_EVENTS} events, got {len(items)}"}
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                where = f"[{index}]: " if isinstance(body, list) else ""
                return 400, {"error": f"{where}expected an event (a JSON object), got {type(item).__name__}"}
        texts = [json.dumps(item, ensure_ascii=False) for item in items]
        try:
            if self.queue is not None:
                entries = [Entry(text, None, "api", ordering_key(item, None))
                           for text, item in zip(texts, items, strict=True)]
                ids = self.queue.enqueue(entries)
                log.info("api: queued %d events (ids %d-%d)", len(ids), ids[0], ids[-1])
                return 202, {"queued": len(ids), "ids": ids}
        except QueueUnavailable as exc:
            return unavailable(exc)
        name = write_event(self.events, "api", None, ("\n".join(texts) + "\n").encode("utf-8"), "ndjson")
        log.info("api: wrote %s (%d events)", name, len(items))
        return 202, {"queued": len(items), "file": name}

    def _refusal(self, source: str, headers: Headers, raw: bytes, client: str) -> tuple[int, dict[str, Any]] | None:
        """404 for a sender pagerules does not know, 401 for one that did not prove itself, else None."""
        if source not in SOURCES:
            return 404, {"error": f"unknown hook source; the known ones are {', '.join(known_sources())}",
                         "known": known_sources()}
        refused = authenticate(source, self.config, headers, raw)
        if refused:
            log.warning("hook %s refused from %s: %s", source, client, refused)
            return 401, {"error": refused}
        return None

    def _store(self, source: str, kind: str, payload: dict[str, Any], raw: bytes) -> dict[str, Any]:
        stored = stored_types(source, self.event_types)
        if kind not in stored:
            return self._ignore(source, kind, stored)
        data = stored_body(payload, raw, kind)
        if self.queue is not None:
            entry = Entry(data.decode("utf-8", "replace"), kind, f"hooks/{source}", ordering_key(payload, kind))
            queued = self.queue.enqueue([entry])[0]
            log.info("hook %s: queued %s as row %d", source, kind, queued)
            return {"id": queued, "type": kind}
        name = write_event(self.events, source, kind, data)
        log.info("hook %s: wrote %s", source, name)
        return {"file": name, "type": kind}

    def _ignore(self, source: str, kind: str, stored: list[str]) -> dict[str, Any]:
        reason = (f"{kind} has no event schema, so no rule can act on it; "
                  f"{source} types that are stored: {', '.join(stored) or 'none'}")
        with self._lock:
            first = kind not in self.ignored
            self.ignored[kind] += 1
        if first:
            log.info("hook %s: ignoring %s deliveries (answered 202, not stored): %s", source, kind, reason)
        return {"status": "ignored", "type": kind, "stored": False, "reason": reason}


def _delivery(source: str, headers: Headers, raw: bytes) -> tuple[dict[str, Any], str]:
    """The body (a JSON object) and the type its header gives it; BadJson (400) otherwise."""
    payload = parse_json(raw)
    if not isinstance(payload, dict):
        raise BadJson(f"body must be a JSON object ({source} sends one per delivery)")
    return payload, hook_type(source, headers)


def unavailable(exc: QueueUnavailable, to_the_sender: bool = True) -> tuple[int, dict[str, Any]]:
    """503: the queue cannot be reached and nothing was stored; the body says when to try again (the
    route sets Retry-After from it). The log names the server, never its password, for the one on call;
    the body says why only ``to_the_sender`` who holds a token: a webhook sender is told what to do,
    not where the database is (a hook may be open to the internet)."""
    log.error("intake refused (503): %s", exc)
    why = f": {exc}" if to_the_sender else ""
    return 503, {"error": f"the event queue is unavailable, nothing was stored; try again{why}",
                 "retry_after": RETRY_AFTER_SECONDS}


def write_event(events: Path, source: str, kind: str | None, data: bytes, ext: str = "json") -> str:
    """Write then rename, fsyncing the file and the folder, so the daemon never sees half a payload
    and a 202 means the payload survives a crash. The type travels in the name too (NAME.TYPE.json)."""
    events.mkdir(parents=True, exist_ok=True)
    typed = f".{kind}" if kind else ""
    name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{source}-{uuid.uuid4().hex[:12]}{typed}.{ext}"
    temp = events / f".{name}.part"
    with open(temp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.rename(temp, events / name)
    folder = os.open(events, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return name
