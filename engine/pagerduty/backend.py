"""The live backend: gated actions -> PagerDuty calls, recorded in the state and the audit trail.

PagerDuty is the authority on what is open. The state only saves calls: a
repeat trigger within the dedup window of PagerDuty's last word on that key
makes no call; after the window PagerDuty is asked again (for a rule with
``renotify:``, one GET first: a person may have resolved it, README "Repeat
control"). "REFERENCE §N" is tests/fixtures/pagerduty-api/REFERENCE.md.

Two ways in (README "Routes: page the right team"): the REST API here, the Events API v2 in
engine.pagerduty.events_target (``EventsTarget``, a mixin of ``Live``); reconcile in
engine.pagerduty.reconcile.
"""
from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from engine import severity as sev
from engine.config import Config
from engine.dispatch.outcomes import NOTHING_OPEN, Result, Status
from engine.evaluation.actions import ChangeAction, ResolveAction, TriggerAction
from engine.language.routes import Route, load_routes
from engine.language.silences import iso
from engine.names import SYSTEM_ACTORS
from engine.pagerduty.channels import Notifier
from engine.pagerduty.client import (
    Client,
    DuplicateKey,
    PagerDutyError,
    RetryPolicy,
    build_create_body,
)
from engine.pagerduty.events_api import (
    EventsClient,
    build_change_body,
)
from engine.pagerduty.events_target import (
    EVENTS_API,
    EventsTarget,
    failed,
    make_events_client,
    route_routing_keys,
    trigger_source,
)
from engine.pagerduty.reconcile import Reconciler, Refresher
from engine.pagerduty.records import StoredIncident
from engine.pagerduty.state import State, StateView
from engine.pagerduty.store import open_state

log = logging.getLogger("pagerules")
RULES_ACTOR = "rules"
ALREADY_RESOLVED = "already resolved"  # PagerDuty error 1001 "Incident Already Resolved" (REFERENCE §4)
# re-exported where engine.web and the tests have always found them
__all__ = ["EVENTS_API", "Live", "Refresher", "live_backend", "make_client", "make_events_client", "trigger_source"]


class Live(EventsTarget):
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
        self.reconciler = Reconciler(client, state, clock)  # shared by with_actor's twins

    def with_actor(self, actor: str) -> Live:
        """The same PagerDuty, state and channels, recording its actions as ``actor`` (``api``, ``dashboard``)."""
        twin = copy.copy(self)
        twin.actor = actor
        return twin

    def create(self, action: TriggerAction, route: Route | None = None) -> Result:
        """Create on the route's service (its escalation policy, else the global one); no route: the
        global service and policy."""
        now = self.clock()
        known = self.state.get(action.incident_key)
        detail = {"rule": action.rule, "event_id": action.event_id, "title": action.title}
        if known is not None and now - known.confirmed_at < self.config.dedup_window_seconds:
            self.state.audit(now, self.actor, "deduplicate", action.incident_key, known.incident_id, detail)
            return Result(Status.DEDUPLICATED, known.incident_id, incident_url=known.html_url)
        if known is not None and known.incident_id and action.renotify is not None:
            asked = self._still_open(action, known, now, detail)
            if asked is not None:
                return asked
            known = None  # resolved in PagerDuty, and its renotify has passed: page anew
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
            return failed(exc)
        incident_id, url = incident.get("id"), page_url(incident)
        self.state.record_open(self._open(action, incident_id, url), now, self.actor, "create", detail)
        self.notifier.announce("triggered", {"incident_key": action.incident_key, "incident_id": incident_id,
                                             "title": action.title, "severity": action.severity, "actor": self.actor})
        return Result(Status.CREATED, incident_id, incident_url=url)

    def _still_open(self, action: TriggerAction, known: StoredIncident, now: float,
                    detail: dict[str, Any]) -> Result | None:
        """A rule with ``renotify:`` whose incident is past the dedup window: one GET asks PagerDuty whether
        a person resolved it, so the wait holds before reconcile has run (README "Repeat control").
        Still open: ``deduplicated`` (confirmed, no create). Resolved: remembered, and ``renotify_wait``
        until renotify has passed since its page; None once it has (page). A failed GET asks nothing more
        of it: the create goes ahead, since a missed page is worse than a second one."""
        assert known.incident_id is not None and action.renotify is not None
        try:
            status = self.client.get_incident(known.incident_id).get("status")
        except PagerDutyError as exc:
            log.warning("could not ask PagerDuty whether %s is still open (%s); paging as usual",
                        action.incident_key, exc)
            return None
        if status == "acknowledged":  # confirmed open, as a person left it
            self.state.record_status(action.incident_key, "acknowledged", now, self.actor, known.incident_id,
                                     {**detail, "seen": "still open in PagerDuty"})
            return Result(Status.DEDUPLICATED, known.incident_id, incident_url=known.html_url)
        if status != "resolved":
            self.state.record_open(self._open(action, known.incident_id, known.html_url), now, self.actor,
                                   "deduplicate", {**detail, "seen": "still open in PagerDuty"})
            return Result(Status.DEDUPLICATED, known.incident_id, incident_url=known.html_url)
        # one renotify for the record and the wait: the rule's, as it stands now (the incident may have been
        # stored before its rule said renotify:, or with another value)
        self.state.record_status(action.incident_key, "resolved", now, self.actor, known.incident_id,
                                 {"rule": action.rule, "seen": "resolved in PagerDuty"},
                                 by_hand=replace(known, renotify=action.renotify))
        until = known.opened_at + action.renotify
        if now >= until or now < known.opened_at:  # waited enough, or the clock went back: page
            return None
        self.state.audit(now, self.actor, "renotify_wait", action.incident_key, known.incident_id,
                         {**detail, "renotify_at": iso(until)})
        return Result(Status.RENOTIFY_WAIT, known.incident_id, renotify_at=iso(until), wait_until=until)

    def add_note(self, incident_key: str, text: str) -> str | None:
        """A note on the key's open REST incident (README "Flap control"), audited; why it failed, or None.
        An Events API incident has no REST id and takes no notes: nothing is sent."""
        known = self.state.get(incident_key)
        if known is None or not known.incident_id:
            return None
        now = self.clock()
        try:
            self.client.add_note(known.incident_id, text)
        except PagerDutyError as exc:
            log.error("could not add a note to %s (%s): %s", incident_key, known.incident_id, exc)
            self.state.audit(now, self.actor, "note_failed", incident_key, known.incident_id,
                             {"note": text, "error": str(exc)})
            return str(exc)
        self.state.audit(now, self.actor, "note", incident_key, known.incident_id, {"note": text})
        return None

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
                              incident_id, html_url=url, renotify=action.renotify)

    def resolve(self, action: ResolveAction) -> Result:
        """Resolve the key's incidents. A person's resolve (``by_hand``) is remembered for its rule's
        ``renotify:`` (README "Repeat control"); a rule's recovery is not."""
        known = self.state.get(action.incident_key) if action.by_hand and action.incident_key else None
        result = self._resolve(action)
        if known is not None and result.status in (Status.RESOLVED, Status.NOTHING_OPEN):
            self.state.remember_hand_resolved(known, self.clock(), self.actor)
        return result

    def _resolve(self, action: ResolveAction) -> Result:
        if action.incident_key is None:
            return NOTHING_OPEN
        now = self.clock()
        known = self.state.get(action.incident_key)
        routing_key = self._known_events_key(known)
        if not action.maybe_sent:
            return self._resolve_one(action, known, routing_key, now, NOTHING_OPEN)
        unsure = self._resolve_unsure(action, routing_key, now)  # see ResolveAction
        result = self._resolve_one(action, known, routing_key, now, NOTHING_OPEN if unsure is None else unsure)
        if unsure is not None and unsure.status is Status.FAILED and unsure.retry \
                and result.status is not Status.FAILED:
            return unsure  # the recorded one is resolved; the extra ones are sent again with the event
        return result

    def _resolve_one(self, action: ResolveAction, known: StoredIncident | None, routing_key: str | None, now: float,
                     nothing: Result) -> Result:
        """Resolve the incident the state knows (or, by REST, any open for the key); ``nothing`` otherwise."""
        assert action.incident_key is not None
        if routing_key is not None:
            return self._resolve_event(action, routing_key, now)
        if not (known and known.incident_id) and not self.rest_ready:
            return nothing  # Events API only, and the state does not know it: see _resolve_event
        try:
            targets = [known.incident_id] if known and known.incident_id else \
                [i["id"] for i in self.client.find_open(action.incident_key)]
            if not targets:
                if known:  # open in our state, gone in PagerDuty: forget it
                    self.state.record_status(action.incident_key, "resolved", now, self.actor, None,
                                             {"rule": action.rule, "note": "already closed in PagerDuty"})
                return nothing
            return self._resolve_ids(action, targets, now)
        except PagerDutyError as exc:
            self.state.audit(now, self.actor, "resolve_failed", action.incident_key, None,
                             {"rule": action.rule, "error": str(exc)})
            return failed(exc)

    def person_note(self, done: str, message: str | None = None) -> str | None:
        """The note naming the person who acted (``Resolved by alice via pagerules: MESSAGE``), or
        None for pagerules' own actors (a rule's resolve keeps its message as it is). PagerDuty's
        ``From`` stays the configured user: the person has no PagerDuty identity pagerules knows."""
        if self.actor.lower() in SYSTEM_ACTORS:
            return None
        return f"{done} by {self.actor} via pagerules" + (f": {message}" if message else "")

    def _resolve_ids(self, action: ResolveAction, incident_ids: list[str], now: float) -> Result:
        note_error = None
        done = []
        text = self.person_note("Resolved", action.message) or action.message
        for incident_id in incident_ids:
            try:
                self.client.set_status(incident_id, "resolved", text)
            except PagerDutyError as exc:
                if exc.status == 400 and ALREADY_RESOLVED in str(exc).lower():
                    continue  # resolved by hand in the meantime: nothing left for us to close
                raise
            done.append(incident_id)
            try:
                self.client.add_note(incident_id, text)
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
            return failed(exc)
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
                    return self._resolved_elsewhere(known, known.incident_id, now)
                targets = [known.incident_id]
            else:  # find_open lists only triggered and acknowledged incidents
                targets = [i["id"] for i in self.client.find_open(incident_key)]
            if not targets:
                return NOTHING_OPEN
            for incident_id in targets:
                self.client.set_status(incident_id, "acknowledged")
            self._note_acknowledged(targets)
        except PagerDutyError as exc:
            self.state.audit(now, self.actor, "acknowledge_failed", incident_key, None, {"error": str(exc)})
            return failed(exc)
        if known:
            self.state.record_status(incident_key, "acknowledged", now, self.actor, targets[0])
        else:
            self.state.audit(now, self.actor, "acknowledged", incident_key, targets[0])
        self.notifier.announce("acknowledged", {"incident_key": incident_key, "incident_id": targets[0],
                                                "title": known.title if known else None, "actor": self.actor})
        return Result(Status.ACKNOWLEDGED, targets[0])

    def _note_acknowledged(self, incident_ids: list[str]) -> None:
        """A person's acknowledge is named in a note; acknowledged is done even if the note fails."""
        text = self.person_note("Acknowledged")
        for incident_id in incident_ids if text else []:
            try:
                self.client.add_note(incident_id, str(text))
            except PagerDutyError as exc:
                log.warning("acknowledged %s but its note failed: %s", incident_id, exc)

    def _resolved_elsewhere(self, known: StoredIncident, incident_id: str, now: float) -> Result:
        incident_key = known.incident_key
        self.state.record_status(incident_key, "resolved", now, self.actor, incident_id,  # a person, in PagerDuty
                                 {"note": "already resolved in PagerDuty; not acknowledged"}, by_hand=known)
        return Result(Status.ALREADY_RESOLVED, incident_id,
                      "PagerDuty says this incident is already resolved; nothing was acknowledged "
                      "(acknowledging would re-open it)")

    def reconcile(self) -> dict[str, int]:
        """One round of reconcile (engine.pagerduty.reconcile): what people changed in PagerDuty by hand."""
        return self.reconciler.round()


def page_url(incident: dict[str, Any]) -> str | None:
    """The incident's ``html_url`` (its page in PagerDuty) when it is an http(s) URL; anything else is
    not kept, so no output line or dashboard link carries a ``javascript:`` or empty URL."""
    url = incident.get("html_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or not urlsplit(url).netloc:
        return None
    return url


def make_client(config: Config) -> Client:
    """A PagerDuty client with the config's URL, token, timeout and retries."""
    return Client(config.api_url, str(config.api_token), config.from_email, config.request_timeout_seconds,
                  RetryPolicy(total=config.retries, backoff_factor=config.retry_backoff_seconds))


def live_backend(config: Config, state_path: str | None = None, actor: str = RULES_ACTOR) -> Live:
    """A Live backend from config (call ``config.require_live()`` first)."""
    return Live(config, make_client(config), open_state(config, state_path), actor=actor)
