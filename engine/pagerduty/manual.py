"""Manual actions (trigger, resolve, acknowledge) and the read-only checks (oncall, check).

Manual triggers go through the same Dispatcher as events, so the prefix, the
severity threshold and dedup apply alike. A manual resolve is not a recovery:
PAGERDUTY_AUTO_RESOLVE does not gate it, PAGERDUTY_ENABLED does.

On-call per project (README "Routes: page the right team"): a repo's incidents take the first
route that matches the labels ``{"repo": R}`` alone; an earlier route that also needs another
label (kind, severity) and whose repo condition holds for R takes some of them, and is named.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine import severity as sev
from engine.config import Config
from engine.dispatch.dispatcher import Backend, Dispatcher, resolve_route
from engine.dispatch.outcomes import Result, Status, acknowledged, resolved
from engine.errors import ConfigError
from engine.evaluation.actions import Extras, ResolveAction, TriggerAction, full_key, full_title
from engine.language.matchers import ConditionError
from engine.language.routes import ROUTING_KEY_LENGTH, Route, load_routes, pick_route, resolve_routing_key, route_name
from engine.language.templates import slug
from engine.pagerduty.client import Client, PagerDutyError

MANUAL_RULE = "manual"
MANUAL_LABELS = ("kind", "repo")  # the labels of a page by hand
_DISABLED = Result(Status.DISABLED)


def manual_key(config: Config, repo: str, title: str, key: str | None) -> str:
    """The key given (prefixed unless it already is), else ``PREFIX-REPO-manual-HASH`` of repo and title,
    so the same manual page sent twice is one incident."""
    if key:
        return key if key.startswith(config.dedup_key_prefix + "-") else full_key(config.dedup_key_prefix, key)
    digest = hashlib.sha256(f"{repo}\0{title}".encode()).hexdigest()[:10]
    return full_key(config.dedup_key_prefix, f"{slug(repo)}-manual-{digest}")


def trigger(config: Config, backend: Backend, title: str, severity: str, repo: str, key: str | None = None,
            details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Page by hand; the outcome line, as `process` prints it."""
    if not sev.is_severity(severity):
        raise ConfigError(f"severity: {sev.unknown_severity(severity)}")
    labels = {"kind": MANUAL_RULE, "repo": repo}  # MANUAL_LABELS
    text_details = {str(k): str(v) for k, v in (details or {}).items()}
    action = TriggerAction(MANUAL_RULE, None, manual_key(config, repo, title, key),
                           full_title(config.title_format, severity, title), severity,
                           lambda: Extras(labels, {"repo": repo, **text_details}, []))
    return Dispatcher(config, backend, honour_silences=False).handle(action)[-1].to_line()


def resolve(config: Config, backend: Backend, key: str, message: str | None = None) -> dict[str, Any]:
    """Resolve by key (with or without the prefix); asks PagerDuty when the state does not know it."""
    text = message or "Resolved by hand with pagerules"
    action = ResolveAction(MANUAL_RULE, None, manual_key(config, "", "", key), text, by_hand=True)
    route = route_name(resolve_route(load_routes(config), backend.view, action.incident_key))  # before it closes
    return resolved(action, backend.resolve(action) if config.enabled else _DISABLED, route).to_line()


def acknowledge(config: Config, backend: Backend, key: str) -> dict[str, Any]:
    """Acknowledge in PagerDuty, record it in the state and the audit trail."""
    incident_key = manual_key(config, "", "", key)
    return acknowledged(incident_key, backend.acknowledge(incident_key) if config.enabled else _DISABLED).to_line()


@dataclass(frozen=True)
class OnCall:
    name: str
    email: str
    escalation_level: int
    schedule: str | None
    until: str | None


def oncall(client: Client, escalation_policy_id: str) -> list[OnCall]:
    """Who is on call now for the policy, lowest escalation level first."""
    rows = sorted(client.oncalls(escalation_policy_id), key=lambda o: o.get("escalation_level") or 0)
    return [OnCall(name=str(o.get("user", {}).get("name") or o.get("user", {}).get("summary") or "?"),
                   email=str(o.get("user", {}).get("email") or ""),
                   escalation_level=int(o.get("escalation_level") or 0),
                   schedule=(o.get("schedule") or {}).get("summary"), until=o.get("end")) for o in rows]


REPO_LABEL = "repo"


@dataclass(frozen=True)
class ProjectTarget:
    """Whose on-call a repo's incidents reach. ``escalation_policy_id`` is None only for an Events API
    route that names none; ``unknown`` then says why and what to add. Holds no routing key."""

    repo: str
    route: int | str  # the route's index, or "default"
    why: str  # which route, and why that one
    escalation_policy_id: str | None
    unknown: str | None = None
    also_routes: tuple[int, ...] = ()  # earlier routes that take those of its incidents with other labels
    also: str | None = None  # the same, said for a person


@dataclass(frozen=True)
class ProjectOnCall:
    target: ProjectTarget
    people: list[OnCall]


def project_target(config: Config, repo: str, routes: Sequence[Route] | None = None) -> ProjectTarget:
    """The route an incident of ``repo`` takes and its escalation policy; pure (``routes``: the config's,
    compiled once by the caller, else here; a bad route config raises InvalidFiles naming FILE:LINE)."""
    routes = load_routes(config) if routes is None else routes
    route = pick_route(routes, {REPO_LABEL: repo})
    earlier = [r for r in routes if (route is None or r.index < route.index) and _may_take(r, repo)]
    also = "; ".join(f"{r.where} takes those of its incidents that match on {', '.join(_other_labels(r))}"
                     for r in earlier) or None
    also_routes = tuple(r.index for r in earlier)
    if route is None:
        why = (f"no route matches repo={repo}: the global settings" if routes else
               "no routes are configured: the global settings")
        unknown = None if config.escalation_policy_id else \
            "PAGERDUTY_ESCALATION_POLICY_ID is not set: set it to name whose on-call to show"
        return ProjectTarget(repo, "default", why + " (PAGERDUTY_ESCALATION_POLICY_ID)",
                             config.escalation_policy_id, unknown, also_routes, also)
    why = f"{route.where} is the first route that matches repo={repo}"
    policy, unknown = route.escalation_policy_id, None
    if policy is None and not route.events_api:
        policy = config.escalation_policy_id
        why += "; it names no escalation_policy_id: the global one (PAGERDUTY_ESCALATION_POLICY_ID)"
        unknown = None if policy else (f"{route.where} names no escalation_policy_id and "
                                       "PAGERDUTY_ESCALATION_POLICY_ID is not set: add one to name whose on-call "
                                       "to show")
    elif policy is None:
        unknown = (f"{route.where} sends to an Events API v2 integration ({_key_place(config, route)}); "
                   "the service behind a routing key, and so its on-call, is unknown to pagerules: add "
                   f"escalation_policy_id to routes[{route.index}] to name whose on-call to show")
    return ProjectTarget(repo, route.index, why, policy, unknown, also_routes, also)


def project_oncall(config: Config, client: Client, repo: str, routes: Sequence[Route] | None = None
                   ) -> ProjectOnCall:
    """Who is on call for ``repo``: its route's escalation policy asked (nobody asked when it is unknown)."""
    target = project_target(config, repo, routes)
    people = oncall(client, target.escalation_policy_id) if target.escalation_policy_id else []
    return ProjectOnCall(target, people)


def project_view(target: ProjectTarget, people: list[OnCall]) -> dict[str, Any]:
    """The JSON answer for a repo, as `oncall --repo R --json` and GET /api/oncall?repo=R give it."""
    return {"repo": target.repo, "route": target.route, "escalation_policy_id": target.escalation_policy_id,
            "why": target.why, "also_routes": list(target.also_routes), "also": target.also,
            "unknown": target.unknown, "levels": [p.__dict__ for p in people]}


def _may_take(route: Route, repo: str) -> bool:
    """Whether the route (which does not match repo=R alone) can take an incident of R that carries
    other labels: every condition on repo holds for R and some condition is on another label."""
    if not _other_labels(route):
        return False
    for condition in route.conditions:
        if condition.path[:1] == (REPO_LABEL,):
            try:
                holds = condition.check({REPO_LABEL: repo})[0]
            except ConditionError:
                holds = False
            if not holds:
                return False
    return True


def _other_labels(route: Route) -> list[str]:
    return sorted({c.field for c in route.conditions if c.path[:1] != (REPO_LABEL,)})


def _key_place(config: Config, route: Route) -> str:
    """Where the route's routing key comes from, never the key."""
    if route.routing_key_env is not None:
        return f"routing key in ${route.routing_key_env}"
    filename, line = config.written_routes.where((route.index, "routing_key"))
    return f"the routing key written at {filename}:{line}"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


def check(config: Config, client: Client | None, env: Mapping[str, str] | None = None) -> list[Check]:
    """Token, From user, service and escalation policy, then every route's target: each ok, or what is
    wrong and how to fix it. ``env`` holds the variables routes name in routing_key_env.
    A bad route config raises InvalidFiles naming FILE:LINE."""
    routes = load_routes(config)
    env = env or {}
    missing = config.missing_for_live(rest=True)  # check calls the REST API itself
    if missing or client is None:
        return [Check("settings", False, f"{', '.join(missing)} not set: export them or put them in {config.source}"),
                *_key_checks(config, routes, env)]
    # one call per id, however many routes name it (a refusal is not kept: each route naming it asks again)
    service, policy = functools.cache(client.service), functools.cache(client.escalation_policy)
    results = [_check_token(client)]
    results.append(_probe("from email", lambda: client.users_by_email(str(config.from_email)),
                          lambda users: (bool(users), f"{config.from_email} is {users[0].get('name')}" if users else
                                         f"no PagerDuty user has the email {config.from_email}: set "
                                         "PAGERDUTY_FROM_EMAIL to a user's login email")))
    results.append(_probe("service", lambda: service(str(config.service_id)),
                          lambda s: (True, f"{config.service_id} is {_named(s)}"),
                          f"PAGERDUTY_SERVICE_ID={config.service_id}"))
    results.append(_probe("escalation policy", lambda: policy(str(config.escalation_policy_id)),
                          lambda p: (True, f"{config.escalation_policy_id} is {_named(p)}"),
                          f"PAGERDUTY_ESCALATION_POLICY_ID={config.escalation_policy_id}"))
    for route in routes:
        if route.service_id is not None:
            results.append(_route_probe(config, route, "service_id", service))
        else:
            results.append(_route_key_check(config, route, env))
        if route.escalation_policy_id is not None:
            results.append(_route_probe(config, route, "escalation_policy_id", policy))
    return results + _key_checks(config, (), env)


# What `check` can say of a routing key: PagerDuty has no API that verifies one without sending an event.
UNVERIFIABLE = "PagerDuty has no API to verify a routing key without sending an event, so check sends none"
KEY_FIX = "copy the Integration Key of the service's Events API v2 integration"


def _key_checks(config: Config, routes: Sequence[Route], env: Mapping[str, str]) -> list[Check]:
    """The routing keys of Events API routes and the global ones: present and 32 characters."""
    checks = [_route_key_check(config, route, env) for route in routes if route.events_api]
    for name, key in (("PAGERDUTY_ROUTING_KEY", config.routing_key),
                      ("PAGERDUTY_CHANGE_ROUTING_KEY", config.change_routing_key)):
        if key is not None:
            checks.append(_key_length(f"default routing key {name}", key, f"{name}: "))
    return checks


def _route_key_check(config: Config, route: Route, env: Mapping[str, str]) -> Check:
    if route.routing_key_env is not None:
        name = f"routes[{route.index}] routing key ${route.routing_key_env}"
        filename, line = config.written_routes.where((route.index, "routing_key_env"))
        where = f"{filename}:{line}: routes[{route.index}].routing_key_env: "
        key = resolve_routing_key(route, env)
        if key is None:
            return Check(name, False, f"{where}{route.routing_key_env} is not set: export it with the "
                                      f"Events API v2 integration key ({KEY_FIX})")
        return _key_length(name, key, where)
    filename, line = config.written_routes.where((route.index, "routing_key"))
    return _key_length(f"routes[{route.index}] routing key written at {filename}:{line}", str(route.routing_key),
                       f"{filename}:{line}: routes[{route.index}].routing_key: ")


def _key_length(name: str, key: str, where: str) -> Check:
    """Never the key itself: only its length is said."""
    if len(key) != ROUTING_KEY_LENGTH:
        return Check(name, False, f"{where}is {len(key)} characters; an Events API v2 integration key has "
                                  f"{ROUTING_KEY_LENGTH}: {KEY_FIX}")
    return Check(name, True, f"set, {ROUTING_KEY_LENGTH} characters ({UNVERIFIABLE})")


def _route_probe(config: Config, route: Route, key: str, call: Any) -> Check:
    target = str(getattr(route, key))
    kind = "service" if key == "service_id" else "escalation policy"
    name = f"routes[{route.index}] {kind} {target}"
    try:
        return Check(name, True, _named(call(target)))
    except PagerDutyError as exc:
        filename, line = config.written_routes.where((route.index, key))
        problem = f"no {kind} {target} in this account, or the token cannot see it" if exc.status == 404 \
            else str(exc)
        return Check(name, False, f"{filename}:{line}: routes[{route.index}].{key}: {problem}: fix {key} in "
                                  f"routes[{route.index}]")


def _named(thing: Mapping[str, Any]) -> str:
    return str(thing.get("name") or thing.get("summary") or "?")


def _check_token(client: Client) -> Check:
    try:
        user = client.me()
        return Check("token", True, f"user token of {user.get('name')} <{user.get('email')}>")
    except PagerDutyError as exc:
        if exc.status == 400 and "account-level" in str(exc):
            return Check("token", True, "account-level token (writes use PAGERDUTY_FROM_EMAIL)")
        return Check("token", False, str(exc))


def _probe(name: str, call: Any, judge: Any, setting: str | None = None) -> Check:
    try:
        ok, message = judge(call())
        return Check(name, ok, message)
    except PagerDutyError as exc:
        hint = f"{setting}: no such id in this account, or the token cannot see it" if exc.status == 404 and setting \
            else str(exc)
        return Check(name, False, hint)
