"""Reconcile: what people changed in PagerDuty by hand, brought into the state.

PagerDuty is the authority on what is open (README "Reconcile"); the state only saves calls.
A round asks PagerDuty about the incidents the state believes open and records the ones
resolved or acknowledged there. ``Refresher`` runs rounds for `serve`, which has no daemon.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from engine.pagerduty.client import Client, ConfigurationError, PagerDutyError
from engine.pagerduty.state import State

log = logging.getLogger("pagerules")
ACTOR = "reconcile"
REFRESH_SECONDS = 30.0  # `serve`: open incidents are asked of PagerDuty at most this often


class Reconciler:
    """Rounds of reconcile for one state and one PagerDuty account."""

    def __init__(self, client: Client, state: State, clock: Callable[[], float]):
        self.client, self.state, self.clock = client, state, clock

    def round(self) -> dict[str, int]:
        """Ask PagerDuty about every incident the state believes open; record what changed by hand.
        One incident PagerDuty cannot answer for (404) is counted and skipped; an error that every
        call would meet (outage, token) ends the round, since the rest would only wait it out too."""
        counts = {"checked": 0, "resolved": 0, "acknowledged": 0, "failed": 0}
        for incident in self.state.open_incidents():
            if not incident.incident_id:  # an Events API incident has no REST id: REST cannot answer for it
                continue
            try:
                status = self.client.get_incident(incident.incident_id).get("status")
            except PagerDutyError as exc:
                if exc.transient or exc.status in (401, 403) or isinstance(exc, ConfigurationError):
                    raise
                counts["failed"] += 1
                log.warning("reconcile: cannot check %s (%s): %s; checking the others",
                            incident.incident_key, incident.incident_id, exc)
                continue
            counts["checked"] += 1
            if status in ("resolved", "acknowledged") and status != incident.status:
                self.state.record_status(incident.incident_key, status, self.clock(), ACTOR,
                                         incident.incident_id, {"seen": "changed in PagerDuty"})
                counts[status] += 1
        return counts


class Reconciles(Protocol):
    def reconcile(self) -> dict[str, int]: ...


class Refresher:
    """`serve` has no daemon loop: it reconciles when the dashboard or the incident list is asked
    for, at most every ``every`` seconds, so a page never offers to act on stale state."""

    def __init__(self, backend: Reconciles, clock: Callable[[], float], every: float = REFRESH_SECONDS):
        self.backend, self.clock, self.every = backend, clock, every
        self.next_at = float("-inf")
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def maybe(self) -> str | None:
        """Refresh if due (another thread refreshing counts as done); the last failure, or None."""
        if self.clock() < self.next_at or not self._lock.acquire(blocking=False):
            return self.last_error
        try:
            self.next_at = self.clock() + self.every
            counts = self.backend.reconcile()
            self.last_error = None
            if counts["resolved"] or counts["acknowledged"]:
                log.info("refreshed from PagerDuty: %s", counts)
        except PagerDutyError as exc:
            self.last_error = str(exc)
            log.warning("could not refresh open incidents from PagerDuty: %s", exc)
        finally:
            self._lock.release()
        return self.last_error
