"""The live backend: gated actions -> PagerDuty calls, recorded in the state and the audit trail.

PagerDuty is the authority on what is open. The state only saves calls: a
repeat trigger within the dedup window of PagerDuty's last word on that key
makes no call; after the window PagerDuty is asked again. "REFERENCE §N" is
tests/fixtures/pagerduty-api/REFERENCE.md.

Two ways in (README "Routes: page the right team"): an incident whose route is an
Events API v2 integration, or that no route takes while PAGERDUTY_ROUTING_KEY is set,
goes to /v2/enqueue with its incident_key as the dedup_key; every other one to the
REST API. Either way the state, the dedup window, the audit trail and the channels
are the same; an Events API incident has no REST id (incident_id None), so its
resolve and acknowledge go by dedup_key to the route its labels pick again.
"""
from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from engine import severity as sev
from engine.config import Config
from engine.dispatch.outcomes import NOTHING_OPEN, Result, Status
from engine.errors import InvalidFiles
from engine.evaluation.actions import ChangeAction, ResolveAction, TriggerAction
from engine.language.routes import Route, load_routes, missing_routing_keys, pick_route, resolve_routing_key
from engine.pagerduty.channels import Notifier
from engine.pagerduty.client import (
    Client,
    ConfigurationError,
    DuplicateKey,
    PagerDutyError,
    RetryPolicy,
    build_create_body,
)
from engine.pagerduty.events_api import (
    EventsClient,
    build_acknowledge_body,
    build_change_body,
    build_resolve_body,
    build_trigger_body,
)
from engine.pagerduty.records import StoredIncident
from engine.pagerduty.state import State, StateView
from engine.pagerduty.store import open_state

log = logging.getLogger("pagerules")
RULES_ACTOR = "rules"
ALREADY_RESOLVED = "already resolved"  # PagerDuty error 1001 "Incident Already Resolved" (REFERENCE §4)
REFRESH_SECONDS = 30.0  # `serve`: open incidents are asked of PagerDuty at most this often
DEFAULT_SOURCE = "pagerules"  # payload.source of an Events API trigger whose incident has no repo label
EVENTS_API = "events_api"  # audit detail "via": the incident went through the Events API v2


class Live:
    """Backend that talks to PagerDuty (see engine.dispatch.dispatcher.Backend)."""

    def __init__(self, config: Config, client: Client, state: State, clock: Callable[[], float] = time.time,
                 actor: str = RULES_ACTOR, notifier: Notifier | None = None, events: EventsClient | None = None):
        self.config, self.client, self.state, self.clock, self.actor = config, client, state, clock, actor
        self.events = events or make_events_client(config)
        self.routes = load_routes(config)
        self.routing_keys = route_routing_keys(self.routes, os.environ)
        self.rest_ready = not config.missing_for_live(rest=True)
        self.view = StateView(state)
        self.notifier = notifier or Notifier(config.channels)

    def with_actor(self, actor: str) -> Live:
        """The same PagerDuty, state and channels, recording its actions as ``actor`` (``api``, ``dashboard``)."""
        twin = copy.copy(self)
        twin.actor = actor
        return twin

    def events_key(self, route: Route | None) -> str | None:
        """The routing key an incident on ``route`` goes to (None: the default), or None for the REST API."""
        if route is None:
            return self.config.routing_key
        return self.routing_keys.get(route.index) if route.events_api else None

    def _known_events_key(self, known: StoredIncident | None) -> str | None:
        """The routing key of a stored incident opened through the Events API, picked again from its labels;
        None when it went through REST (it has a REST id) or the state does not know it."""
        if known is None or known.incident_id:
            return None
        return self.events_key(pick_route(self.routes, known.labels) if self.routes else None)

    def create(self, action: TriggerAction, route: Route | None = None) -> Result:
        """Create on the route's service (its escalation policy, else the global one); no route: the
        global service and policy."""
        now = self.clock()
        known = self.state.get(action.incident_key)
        detail = {"rule": action.rule, "event_id": action.event_id, "title": action.title}
        if known is not None and now - known.confirmed_at < self.config.dedup_window_seconds:
            self.state.audit(now, self.actor, "deduplicate", action.incident_key, known.incident_id, detail)
            return Result(Status.DEDUPLICATED, known.incident_id, incident_url=known.html_url)
        routing_key = self.events_key(route)
        if routing_key is not None:
            return self._trigger_event(action, routing_key, known is not None, now, detail)
        service_id, policy_id = self.config.service_id, self.config.escalation_policy_id
        if route is not None:
            service_id, policy_id = route.service_id, route.escalation_policy_id or policy_id
        body = build_create_body(action.title, sev.urgency(action.severity), action.incident_key,
                                 str(service_id), str(policy_id), action.details)
        try:
            incident = self.client.create_incident(body)
        except DuplicateKey:
            return self._opened_elsewhere(action, now, detail)
        except PagerDutyError as exc:
            self.state.audit(now, self.actor, "create_failed", action.incident_key, None, {**detail, "error": str(exc)})
            return _failed(exc)
        incident_id, url = incident.get("id"), page_url(incident)
        self.state.record_open(self._open(action, incident_id, url), now, self.actor, "create", detail)
        self.notifier.announce("triggered", {"incident_key": action.incident_key, "incident_id": incident_id,
                                             "title": action.title, "severity": action.severity, "actor": self.actor})
        return Result(Status.CREATED, incident_id, incident_url=url)

    def _trigger_event(self, action: TriggerAction, routing_key: str, known: bool, now: float,
                       detail: dict[str, Any]) -> Result:
        """Send a trigger to the Events API. PagerDuty folds it into the open alert with this dedup_key
        if there is one and does not say which it did: one the state holds open is ``deduplicated``."""
        body = build_trigger_body(routing_key, action.incident_key, action.title, action.severity,
                                  trigger_source(action.labels), action.details, action.links)
        detail = {**detail, "via": EVENTS_API}
        try:
            self.events.enqueue(body)
        except PagerDutyError as exc:
            self.state.audit(now, self.actor, "create_failed", action.incident_key, None, {**detail, "error": str(exc)})
            return _failed(exc)
        self.state.record_open(self._open(action, None, None), now, self.actor,
                               "deduplicate" if known else "create", detail)
        if known:
            return Result(Status.DEDUPLICATED)
        self.notifier.announce("triggered", {"incident_key": action.incident_key, "incident_id": None,
                                             "title": action.title, "severity": action.severity, "actor": self.actor})
        return Result(Status.CREATED)

    def _opened_elsewhere(self, action: TriggerAction, now: float, detail: dict[str, Any]) -> Result:
        """PagerDuty already has it open (opened by another process, or before our state knew)."""
        try:
            found = self.client.find_open(action.incident_key)
        except PagerDutyError as exc:
            log.warning("deduplicated %s but could not look up its id: %s", action.incident_key, exc)
            found = []
        incident_id = found[0].get("id") if found else None
        url = page_url(found[0]) if found else None
        self.state.record_open(self._open(action, incident_id, url), now, self.actor, "deduplicate", detail)
        return Result(Status.DEDUPLICATED, incident_id, incident_url=url)

    def _open(self, action: TriggerAction, incident_id: str | None, url: str | None) -> StoredIncident:
        return StoredIncident(action.incident_key, dict(action.labels), action.rule, action.severity, action.title,
                              incident_id, html_url=url)

    def resolve(self, action: ResolveAction) -> Result:
        if action.incident_key is None:
            return NOTHING_OPEN
        now = self.clock()
        known = self.state.get(action.incident_key)
        routing_key = self._known_events_key(known)
        if routing_key is not None:
            return self._resolve_event(action, routing_key, now)
        if not (known and known.incident_id) and not self.rest_ready:
            return NOTHING_OPEN  # Events API only, and the state does not know it: see _resolve_event
        try:
            targets = [known.incident_id] if known and known.incident_id else \
                [i["id"] for i in self.client.find_open(action.incident_key)]
            if not targets:
                if known:  # open in our state, gone in PagerDuty: forget it
                    self.state.record_status(action.incident_key, "resolved", now, self.actor, None,
                                             {"rule": action.rule, "note": "already closed in PagerDuty"})
                return NOTHING_OPEN
            return self._resolve_ids(action, targets, now)
        except PagerDutyError as exc:
            self.state.audit(now, self.actor, "resolve_failed", action.incident_key, None,
                             {"rule": action.rule, "error": str(exc)})
            return _failed(exc)

    def _resolve_event(self, action: ResolveAction, routing_key: str, now: float) -> Result:
        """Resolve by dedup_key. Only an incident the state holds open is resolved this way: the Events
        API cannot say whether an alert is open, and Alertmanager too sends a resolve only for an alert
        it sent firing; PagerDuty drops a resolve for a dedup_key it holds no open alert for."""
        key = action.incident_key or ""
        detail = {"rule": action.rule, "event_id": action.event_id, "message": action.message, "via": EVENTS_API}
        try:
            self.events.enqueue(build_resolve_body(routing_key, key))
        except PagerDutyError as exc:
            self.state.audit(now, self.actor, "resolve_failed", key, None, {**detail, "error": str(exc)})
            return _failed(exc)
        self.state.record_status(key, "resolved", now, self.actor, None, detail)
        self.notifier.announce("resolved", {"incident_key": key, "incident_id": None, "message": action.message,
                                            "actor": self.actor})
        return Result(Status.RESOLVED)

    def _resolve_ids(self, action: ResolveAction, incident_ids: list[str], now: float) -> Result:
        note_error = None
        done = []
        for incident_id in incident_ids:
            try:
                self.client.set_status(incident_id, "resolved", action.message)
            except PagerDutyError as exc:
                if exc.status == 400 and ALREADY_RESOLVED in str(exc).lower():
                    continue  # resolved by hand in the meantime: nothing left for us to close
                raise
            done.append(incident_id)
            try:
                self.client.add_note(incident_id, action.message)
            except PagerDutyError as exc:  # resolved already; the resolution carries the message too
                log.warning("resolved %s but its note failed: %s", incident_id, exc)
                note_error = str(exc)
        detail = {"rule": action.rule, "event_id": action.event_id, "message": action.message}
        if not done:
            detail["note"] = "already resolved in PagerDuty"
        self.state.record_status(action.incident_key or "", "resolved", now, self.actor, incident_ids[0], detail)
        if not done:
            return NOTHING_OPEN
        self.notifier.announce("resolved", {"incident_key": action.incident_key, "incident_id": incident_ids[0],
                                            "message": action.message, "actor": self.actor})
        return Result(Status.RESOLVED, incident_ids[0], note_error=note_error)

    def change(self, action: ChangeAction, route: Route | None = None) -> Result:
        """Send a change event to the route's routing key; no route, or a REST one: the change routing key
        (PAGERDUTY_CHANGE_ROUTING_KEY). No key for it: ``disabled``, saying which setting to give."""
        key = self.routing_keys.get(route.index) if route is not None and route.events_api else None
        key = key or self.config.change_routing_key
        if not key:
            return Result(Status.DISABLED, error="no routing key for change events: set "
                          "PAGERDUTY_CHANGE_ROUTING_KEY or route them to an Events API v2 route")
        body = build_change_body(key, action.summary, action.source, action.details, action.links,
                                 action.timestamp)
        try:
            self.events.change(body)
        except PagerDutyError as exc:
            return _failed(exc)
        self.state.audit(self.clock(), self.actor, "change", None, None,
                         {"rule": action.rule, "event_id": action.event_id, "summary": action.summary})
        return Result(Status.SENT)

    def acknowledge(self, incident_key: str) -> Result:
        """Acknowledge every open incident with the key; the state and the audit trail record it.
        PagerDuty re-opens a resolved incident that is set to acknowledged (REFERENCE §4), so an
        incident it says is resolved is recorded as such and not touched: ``already_resolved``."""
        now = self.clock()
        known = self.state.get(incident_key)
        routing_key = self._known_events_key(known)
        if known is not None and routing_key is not None:
            return self._acknowledge_event(known, routing_key, now)
        if not (known and known.incident_id) and not self.rest_ready:
            return NOTHING_OPEN  # Events API only, and the state does not know it (as for a resolve)
        try:
            if known and known.incident_id:
                if self.client.get_incident(known.incident_id).get("status") == "resolved":
                    return self._resolved_elsewhere(incident_key, known.incident_id, now)
                targets = [known.incident_id]
            else:  # find_open lists only triggered and acknowledged incidents
                targets = [i["id"] for i in self.client.find_open(incident_key)]
            if not targets:
                return NOTHING_OPEN
            for incident_id in targets:
                self.client.set_status(incident_id, "acknowledged")
        except PagerDutyError as exc:
            self.state.audit(now, self.actor, "acknowledge_failed", incident_key, None, {"error": str(exc)})
            return _failed(exc)
        if known:
            self.state.record_status(incident_key, "acknowledged", now, self.actor, targets[0])
        else:
            self.state.audit(now, self.actor, "acknowledged", incident_key, targets[0])
        self.notifier.announce("acknowledged", {"incident_key": incident_key, "incident_id": targets[0],
                                                "title": known.title if known else None, "actor": self.actor})
        return Result(Status.ACKNOWLEDGED, targets[0])

    def _acknowledge_event(self, known: StoredIncident, routing_key: str, now: float) -> Result:
        """Acknowledge by dedup_key. PagerDuty drops an acknowledge for an alert that is not open, so
        unlike REST it cannot re-open a resolved one."""
        key = known.incident_key
        try:
            self.events.enqueue(build_acknowledge_body(routing_key, key))
        except PagerDutyError as exc:
            self.state.audit(now, self.actor, "acknowledge_failed", key, None, {"error": str(exc), "via": EVENTS_API})
            return _failed(exc)
        self.state.record_status(key, "acknowledged", now, self.actor, None, {"via": EVENTS_API})
        self.notifier.announce("acknowledged", {"incident_key": key, "incident_id": None, "title": known.title,
                                                "actor": self.actor})
        return Result(Status.ACKNOWLEDGED)

    def _resolved_elsewhere(self, incident_key: str, incident_id: str, now: float) -> Result:
        self.state.record_status(incident_key, "resolved", now, self.actor, incident_id,
                                 {"note": "already resolved in PagerDuty; not acknowledged"})
        return Result(Status.ALREADY_RESOLVED, incident_id,
                      "PagerDuty says this incident is already resolved; nothing was acknowledged "
                      "(acknowledging would re-open it)")

    def reconcile(self) -> dict[str, int]:
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
                self.state.record_status(incident.incident_key, status, self.clock(), "reconcile",
                                         incident.incident_id, {"seen": "changed in PagerDuty"})
                counts[status] += 1
        return counts


class Refresher:
    """`serve` has no daemon loop: it reconciles when the dashboard or the incident list is asked
    for, at most every ``every`` seconds, so a page never offers to act on stale state."""

    def __init__(self, backend: Live, clock: Callable[[], float], every: float = REFRESH_SECONDS):
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


def route_routing_keys(routes: tuple[Route, ...], env: Mapping[str, str]) -> dict[int, str]:
    """Each Events API route's routing key by route index, read once at start. A routing_key_env
    naming an unset variable is refused then, at its line, never sent to the default instead."""
    problems = missing_routing_keys(routes, env)
    if problems:
        raise InvalidFiles(problems)
    return {route.index: str(resolve_routing_key(route, env)) for route in routes if route.events_api}


def trigger_source(labels: Mapping[str, Any]) -> str:
    """An Events API trigger's ``payload.source``: the incident's repo label, else ``pagerules``."""
    repo = labels.get("repo")
    return str(repo) if repo else DEFAULT_SOURCE


def page_url(incident: dict[str, Any]) -> str | None:
    """The incident's ``html_url`` (its page in PagerDuty) when it is an http(s) URL; anything else is
    not kept, so no output line or dashboard link carries a ``javascript:`` or empty URL."""
    url = incident.get("html_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or not urlsplit(url).netloc:
        return None
    return url


def _failed(exc: PagerDutyError) -> Result:
    """A failed outcome; ``retry`` says whether trying again later can help (outage, rate limit,
    or a token, id or setting that an operator can fix) or not (PagerDuty refused this request)."""
    return Result(Status.FAILED, error=str(exc),
                  retry=exc.transient or exc.status in (401, 403, 404) or isinstance(exc, ConfigurationError))


def make_client(config: Config) -> Client:
    """A PagerDuty client with the config's URL, token, timeout and retries."""
    return Client(config.api_url, str(config.api_token), config.from_email, config.request_timeout_seconds,
                  RetryPolicy(total=config.retries, backoff_factor=config.retry_backoff_seconds))


def make_events_client(config: Config) -> EventsClient:
    """An Events API v2 client with the config's URL, timeout and retries."""
    return EventsClient(config.events_url, config.request_timeout_seconds,
                        RetryPolicy(total=config.retries, backoff_factor=config.retry_backoff_seconds))


def live_backend(config: Config, state_path: str | None = None, actor: str = RULES_ACTOR) -> Live:
    """A Live backend from config (call ``config.require_live()`` first)."""
    return Live(config, make_client(config), open_state(config, state_path), actor=actor)
