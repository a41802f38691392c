"""Connected channels: announce incidents to Slack-compatible or generic JSON webhooks.

Delivery runs on a background thread with its own retries, so it never blocks
or fails the PagerDuty action that caused it. Failures are logged (by channel
name: a webhook URL is a credential and is never printed) and kept for the
dashboard.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from engine import metrics

log = logging.getLogger("pagerules.channels")
MAX_MESSAGE = 500  # characters of a resolution message quoted in a chat line (the JSON kind carries it whole)
EMOJI = {"triggered": ":rotating_light:", "acknowledged": ":eyes:", "resolved": ":white_check_mark:"}


def payload(kind: str, channel_kind: str, incident: Mapping[str, Any]) -> dict[str, Any]:
    """The body for one announcement: Slack's ``{"text": ...}``, or the plain facts as JSON; both name the
    actor (the person who signed in with a named token, ``api``/``dashboard`` for the shared one, ``rules``)."""
    facts = {"event": kind, **{k: incident.get(k) for k in ("incident_key", "incident_id", "title", "severity",
                                                            "actor", "message") if incident.get(k) is not None}}
    if channel_kind == "json":
        return facts
    title = incident.get("title") or incident.get("incident_key")
    who = f" by {incident['actor']}" if incident.get("actor") else ""  # the person, with a named token
    said = f" ({str(incident['message'])[:MAX_MESSAGE]})" if incident.get("message") else ""
    return {"text": f"{EMOJI.get(kind, '')} {kind.capitalize()}{who}: {title}{said}".strip()}


class Notifier:
    """Queues announcements and delivers them in the background (``synchronous`` for tests)."""

    def __init__(self, channels: Sequence[Mapping[str, Any]], timeout: float = 5.0, retries: int = 3,
                 backoff: float = 0.5, synchronous: bool = False):
        self.channels = list(channels)
        self.timeout = timeout
        self.failures: deque[dict[str, Any]] = deque(maxlen=20)
        self.session = requests.Session()
        retry = Retry(total=retries, backoff_factor=backoff, status_forcelist=(429, 500, 502, 503, 504),
                      allowed_methods=None, raise_on_status=False)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.synchronous = synchronous
        self._queue: queue.Queue[tuple[Mapping[str, Any], dict[str, Any]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    def announce(self, kind: str, incident: Mapping[str, Any]) -> None:
        """Queue ``kind`` (triggered, acknowledged, resolved) to every channel that wants it. Never raises."""
        for channel in self.channels:
            if kind in channel["announce"]:
                job = (channel, payload(kind, channel["kind"], incident))
                if self.synchronous:
                    self._deliver(*job)
                else:
                    self._start()
                    self._queue.put(job)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout``) for queued announcements, e.g. before a short-lived command exits."""
        deadline = time.monotonic() + timeout
        # unfinished_tasks counts queued and in-flight deliveries (task_done comes after each one)
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)

    def _start(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="channels", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is not None:
                    self._deliver(*job)
            finally:
                self._queue.task_done()

    def _deliver(self, channel: Mapping[str, Any], body: dict[str, Any]) -> None:
        try:
            response = self.session.post(channel["url"], json=body, timeout=self.timeout)
            if response.status_code >= 400:
                raise RuntimeError(f"answered {response.status_code}")
        except Exception as exc:  # delivery must never break paging: record and go on
            reason = str(exc) if isinstance(exc, RuntimeError) else type(exc).__name__
            log.warning("channel %s: announcement not delivered after retries: %s", channel["name"], reason)
            metrics.CHANNEL_FAILURES.labels(channel["name"]).inc()  # the name only: the URL is a credential
            self.failures.appendleft({"at": time.time(), "channel": channel["name"], "error": reason,
                                      "event": body.get("event") or body.get("text", "")[:80]})
