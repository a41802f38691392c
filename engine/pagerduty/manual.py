"""Manual actions (trigger, resolve, acknowledge) and the read-only checks (oncall, check).

Manual triggers go through the same Dispatcher as events, so the prefix, the
severity threshold and dedup apply alike. A manual resolve is not a recovery:
PAGERDUTY_AUTO_RESOLVE does not gate it, PAGERDUTY_ENABLED does.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine import severity as sev
from engine.config import Config
from engine.dispatch.dispatcher import Backend, Dispatcher, resolve_route
from engine.dispatch.outcomes import Result, Status, acknowledged, resolved
from engine.errors import ConfigError
from engine.evaluation.actions import Extras, ResolveAction, TriggerAction, full_key, full_title
from engine.language.routes import load_routes, route_name
from engine.language.templates import slug
from engine.pagerduty.client import Client, PagerDutyError

MANUAL_RULE = "manual"
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
    labels = {"kind": MANUAL_RULE, "repo": repo}
    text_details = {str(k): str(v) for k, v in (details or {}).items()}
    action = TriggerAction(MANUAL_RULE, None, manual_key(config, repo, title, key),
                           full_title(config.title_format, severity, title), severity,
                           lambda: Extras(labels, {"repo": repo, **text_details}, []))
    return Dispatcher(config, backend).handle(action)[-1].to_line()


def resolve(config: Config, backend: Backend, key: str, message: str | None = None) -> dict[str, Any]:
    """Resolve by key (with or without the prefix); asks PagerDuty when the state does not know it."""
    text = message or "Resolved by hand with pagerules"
    action = ResolveAction(MANUAL_RULE, None, manual_key(config, "", "", key), text)
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


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


def check(config: Config, client: Client | None) -> list[Check]:
    """Token, From user, service and escalation policy: each ok, or what is wrong and how to fix it."""
    missing = config.missing_for_live()
    if missing or client is None:
        return [Check("settings", False, f"{', '.join(missing)} not set: export them or put them in {config.source}")]
    results = [_check_token(client)]
    results.append(_probe("from email", lambda: client.users_by_email(str(config.from_email)),
                          lambda users: (bool(users), f"{config.from_email} is {users[0].get('name')}" if users else
                                         f"no PagerDuty user has the email {config.from_email}: set "
                                         "PAGERDUTY_FROM_EMAIL to a user's login email")))
    results.append(_probe("service", lambda: client.service(str(config.service_id)),
                          lambda s: (True, f"{config.service_id} is {s.get('name') or s.get('summary')}"),
                          f"PAGERDUTY_SERVICE_ID={config.service_id}"))
    results.append(_probe("escalation policy", lambda: client.escalation_policy(str(config.escalation_policy_id)),
                          lambda p: (True, f"{config.escalation_policy_id} is {p.get('name') or p.get('summary')}"),
                          f"PAGERDUTY_ESCALATION_POLICY_ID={config.escalation_policy_id}"))
    return results


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
