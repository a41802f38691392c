"""Reconcile: what people changed in PagerDuty by hand, brought into the state.

PagerDuty is the authority on what is open; the state only saves calls. A round records the
incidents the state believes open that PagerDuty says are resolved or acknowledged.

An incident found resolved was resolved by a person (a rule's recovery resolves through pagerules and
leaves the state): the state remembers it for its rule's ``renotify:`` (README "Repeat control"), in the
transaction that removes its row, and only if that row was still there for the same incident id: a
recovery that resolved it during the round (another worker, another process) removed it first, and one
still under way forgets the record in its own transaction (State.record_status).

A round costs calls in proportion to what changed, not to what is open: it reads the account's
log entries since the last round (GET /log_entries, tests/fixtures/pagerduty-api/REFERENCE.md;
each entry names its incident, included whole with its incident_key and current status) and looks
only at those incidents. The first round of a process, a round after a gap longer than
LOG_WINDOW_SECONDS, or one with more entries than pagination reaches, checks every open
incident by id instead (one GET /incidents/{id} each). ``Refresher`` runs rounds for `serve`.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from engine.pagerduty.client import Client, ConfigurationError, PagerDutyError
from engine.pagerduty.state import State

log = logging.getLogger("pagerules")
ACTOR = "reconcile"
REFRESH_SECONDS = 30.0  # `serve`: open incidents are asked of PagerDuty at most this often
# PagerDuty documents no retention or maximum range for /log_entries; a longer gap than this (an
# outage, a suspended process) is not trusted to it and the round checks every open incident.
LOG_WINDOW_SECONDS = 24 * 3600.0
OVERLAP_SECONDS = 120.0  # each read starts this much before the last round began: clock skew, late entries
ENTRY_STATUS = {"resolve_log_entry": "resolved", "acknowledge_log_entry": "acknowledged",
                "unacknowledge_log_entry": "triggered", "trigger_log_entry": "triggered"}


class Reconciler:
    """Rounds of reconcile for one state and one PagerDuty account."""

    def __init__(self, client: Client, state: State, clock: Callable[[], float]):
        self.client, self.state, self.clock = client, state, clock
        self.since: float | None = None  # when the last complete round began; None: none yet
        self.last_mode = ""  # "full" or "changes": how the last round asked

    def round(self) -> dict[str, int]:
        """One round: the changes since the last one, or every open incident when those cannot be
        trusted (see the module docstring). A round that raises leaves ``since`` where it was."""
        started = self.clock()
        entries = None
        if self.since is not None and started - self.since <= LOG_WINDOW_SECONDS:
            entries = self.client.log_entries_since(iso(self.since - OVERLAP_SECONDS))
        if entries is None:
            counts, self.last_mode = self.full(), "full"
        else:
            counts, self.last_mode = self.changes(entries), "changes"
        self.since = started
        return counts

    def changes(self, entries: list[dict[str, Any]]) -> dict[str, int]:
        """Look at each incident the entries name (oldest first) that the state holds open under the
        same REST id: the included incident's current status, else the latest entry's."""
        counts = {"checked": 0, "resolved": 0, "acknowledged": 0, "failed": 0}
        latest: dict[str, tuple[dict[str, Any], str | None]] = {}
        for entry in entries:
            incident = entry.get("incident") or {}
            if incident.get("id"):
                previous = latest.get(incident["id"], ({}, None))[1]
                latest[incident["id"]] = (incident, ENTRY_STATUS.get(str(entry.get("type")), previous))
        for incident_id, (incident, by_entry) in latest.items():
            key, status = incident.get("incident_key"), incident.get("status") or by_entry
            if not key:  # a bare reference: ask for the incident itself (one call, for a changed one)
                try:
                    incident = self.client.get_incident(incident_id)
                except PagerDutyError as exc:
                    if exc.transient or exc.status in (401, 403) or isinstance(exc, ConfigurationError):
                        raise
                    counts["failed"] += 1
                    continue
                key, status = incident.get("incident_key"), incident.get("status")
            known = self.state.get(str(key)) if key else None
            if known is None or known.incident_id != incident_id:
                continue  # not ours, closed already, or an older incident that once had the key
            counts["checked"] += 1
            # resolved: by a person (its rule's renotify: waits from its page), unless pagerules resolved
            # it during this round: then the row is gone or going, and nothing is recorded
            if status in ("resolved", "acknowledged") and status != known.status and self.state.record_status(
                    known.incident_key, str(status), self.clock(), ACTOR, incident_id,
                    {"seen": "changed in PagerDuty"}, by_hand=known if status == "resolved" else None):
                counts[str(status)] += 1
        return counts

    def full(self) -> dict[str, int]:
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
            if status in ("resolved", "acknowledged") and status != incident.status and self.state.record_status(
                    incident.incident_key, status, self.clock(), ACTOR, incident.incident_id,
                    {"seen": "changed in PagerDuty"}, by_hand=incident if status == "resolved" else None):
                counts[status] += 1
        return counts


def iso(at: float) -> str:
    """Seconds since the epoch as PagerDuty's ISO 8601 UTC (``2026-12-03T14:55:00Z``)."""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
