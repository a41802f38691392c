"""The live backend's Events API v2 target: trigger, resolve and acknowledge by dedup_key.

An incident whose route is an Events API v2 integration, or that no route takes while
PAGERDUTY_ROUTING_KEY is set, goes to /v2/enqueue with its incident_key as the dedup_key
(README "Routes: page the right team"). It has no REST id (incident_id None), so its resolve
and acknowledge go by dedup_key to the route its labels pick again. engine.pagerduty.backend.Live
takes these methods from ``EventsTarget``; the state, the dedup window, the audit trail and the
channels are the same as for REST.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.config import Config
from engine.dispatch.outcomes import Result, Status
from engine.errors import InvalidFiles
from engine.evaluation.actions import ResolveAction, TriggerAction
from engine.language.routes import Route, missing_routing_keys, pick_route, resolve_routing_key
from engine.pagerduty.channels import Notifier
from engine.pagerduty.client import ConfigurationError, PagerDutyError, RetryPolicy
from engine.pagerduty.events_api import (
    EventsClient,
    build_acknowledge_body,
    build_resolve_body,
    build_trigger_body,
)
from engine.pagerduty.records import StoredIncident
from engine.pagerduty.state import State

DEFAULT_SOURCE = "pagerules"  # payload.source of an Events API trigger whose incident has no repo label
EVENTS_API = "events_api"  # audit detail "via": the incident went through the Events API v2


class EventsTarget:
    """The Events API half of the live backend (a mixin of engine.pagerduty.backend.Live)."""

    config: Config
    state: State
    events: EventsClient
    routes: tuple[Route, ...]
    routing_keys: dict[int, str]
    notifier: Notifier
    actor: str

    def _open(self, action: TriggerAction, incident_id: str | None, url: str | None) -> StoredIncident:
        raise NotImplementedError  # Live's

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
            return failed(exc)
        self.state.record_open(self._open(action, None, None), now, self.actor,
                               "deduplicate" if known else "create", detail)
        if known:
            return Result(Status.DEDUPLICATED)
        self.notifier.announce("triggered", {"incident_key": action.incident_key, "incident_id": None,
                                             "title": action.title, "severity": action.severity, "actor": self.actor})
        return Result(Status.CREATED)

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
            return failed(exc)
        self.state.record_status(key, "resolved", now, self.actor, None, detail)
        self.notifier.announce("resolved", {"incident_key": key, "incident_id": None, "message": action.message,
                                            "actor": self.actor})
        return Result(Status.RESOLVED)

    def _resolve_unsure(self, action: ResolveAction, known_key: str | None, now: float) -> Result | None:
        """A page that may be out unrecorded (ResolveAction.maybe_sent): a resolve by dedup_key to every Events
        API integration but ``known_key`` (the state's own, resolved next), as that page may have gone to any
        of them. Audited, never announced: nobody may have been paged. None when there is none to send to;
        else a failure that a retry can help (the event is tried again, the dispatcher keeping the mark), else
        resolved if any was sent, else the refusal. A failure never stops the others, nor the state's own
        resolve (a 400 for one integration must not leave the recorded incident open)."""
        keys = dict.fromkeys(k for k in (*self.routing_keys.values(), self.config.routing_key) if k and k != known_key)
        if not keys:
            return None
        key = action.incident_key or ""
        why = "a for: hold was taken by a process that may have paged it and died before recording where"
        detail = {"rule": action.rule, "event_id": action.event_id, "message": action.message, "via": EVENTS_API}
        failures: list[Result] = []
        for routing_key in keys:
            try:
                self.events.enqueue(build_resolve_body(routing_key, key))
            except PagerDutyError as exc:
                self.state.audit(now, self.actor, "resolve_failed", key, None, {
                    **detail, "error": str(exc),
                    "note": f"{why}: the resolve by dedup_key sent in case to one of the {len(keys)} Events API "
                            "integrations failed"})
                failures.append(failed(exc))
        retry = next((f for f in failures if f.retry), None)
        if retry is not None or len(failures) == len(keys):
            return retry or failures[-1]
        sent = len(keys) - len(failures)
        self.state.audit(now, self.actor, "resolve_sent", key, None, {
            **detail, "note": f"{why}: resolved by dedup_key on {'all' if sent == len(keys) else sent} of "
                              f"{len(keys)} Events API integrations in case"})
        return Result(Status.RESOLVED)

    def _acknowledge_event(self, known: StoredIncident, routing_key: str, now: float) -> Result:
        """Acknowledge by dedup_key. PagerDuty drops an acknowledge for an alert that is not open, so
        unlike REST it cannot re-open a resolved one."""
        key = known.incident_key
        try:
            self.events.enqueue(build_acknowledge_body(routing_key, key))
        except PagerDutyError as exc:
            self.state.audit(now, self.actor, "acknowledge_failed", key, None, {"error": str(exc), "via": EVENTS_API})
            return failed(exc)
        self.state.record_status(key, "acknowledged", now, self.actor, None, {"via": EVENTS_API})
        self.notifier.announce("acknowledged", {"incident_key": key, "incident_id": None, "title": known.title,
                                                "actor": self.actor})
        return Result(Status.ACKNOWLEDGED)


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


def failed(exc: PagerDutyError) -> Result:
    """A failed outcome; ``retry`` says whether trying again later can help (outage, rate limit,
    or a token, id or setting that an operator can fix) or not (PagerDuty refused this request)."""
    return Result(Status.FAILED, error=str(exc),
                  retry=exc.transient or exc.status in (401, 403, 404) or isinstance(exc, ConfigurationError))


def make_events_client(config: Config) -> EventsClient:
    """An Events API v2 client with the config's URL, timeout and retries."""
    return EventsClient(config.events_url, config.request_timeout_seconds,
                        RetryPolicy(total=config.retries, backoff_factor=config.retry_backoff_seconds))
