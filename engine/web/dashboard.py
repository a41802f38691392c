"""The dashboard: the sign-in form, the on-call page and its Acknowledge buttons (README "HTTP API,
dashboard and webhook intake").

Sign-in takes PAGERULES_API_TOKEN through a form (rate limited per client address, same-origin
only) and then holds a session cookie (HttpOnly, SameSite=Strict, Secure over https); every form
that changes something carries the session's CSRF token.
"""
from __future__ import annotations

import hmac
import logging
import secrets
import time
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from engine.dispatch.outcomes import Status
from engine.errors import PageRulesError
from engine.pagerduty import manual
from engine.web.auth import client_address, cross_origin
from engine.web.context import incident_view, web

log = logging.getLogger("pagerules.server")
NO_REPO = "(no repo)"
UI_NOTICE = {Status.ALREADY_RESOLVED.value: "Not acknowledged: {key} is already resolved in PagerDuty "
                                            "(acknowledging would re-open it). The list is now up to date."}

dashboard = Blueprint("dashboard", __name__)


@dashboard.app_template_filter("utc")
def utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


@dashboard.get("/login")
def login_form() -> Any:
    return render_template("login.html", error=None)


@dashboard.post("/login")
def login() -> Any:
    client = client_address(request)
    refused = _login_refused(client)
    if refused:
        return refused
    if not web().token_ok(request.form.get("token")):
        web().limiter.failed(client)
        log.warning("dashboard sign-in with a wrong token from %s", client)
        return render_template("login.html", error="That token is not right."), 401
    web().limiter.succeeded(client)
    session.clear()
    session["signed_in"], session["csrf"] = True, secrets.token_urlsafe(24)
    return redirect(url_for("dashboard.page"))


def _login_refused(client: str) -> tuple[str, int, dict[str, str]] | None:
    """The sign-in page to answer before the token is even looked at: rate limited (429) or cross-site (403)."""
    wait = web().limiter.retry_after(client)
    if wait is not None:
        page = render_template("login.html", error=f"Too many wrong tokens; try again in {wait} s.")
        return page, 429, {"Retry-After": str(wait)}
    foreign = cross_origin(request)
    if foreign:
        return render_template("login.html", error=f"Sign-in refused: {foreign}. Open this page directly."), 403, {}
    return None


@dashboard.post("/logout")
def logout() -> Any:
    _check_csrf()
    session.clear()
    return redirect(url_for("dashboard.login_form"))


@dashboard.get("/")
def page() -> Any:
    if not session.get("signed_in"):
        return redirect(url_for("dashboard.login_form"))
    oncall, oncall_error = _oncall()
    refresh_error = web().refresher.maybe()
    state = web().backend.state
    return render_template("dashboard.html", oncall=oncall, oncall_error=oncall_error, repos=_by_repo(),
                           audit=state.recent_audit(15), failures=list(web().backend.notifier.failures)[:5],
                           csrf=session["csrf"], now=web().backend.clock(), notice=request.args.get("notice"),
                           refresh_error=refresh_error)


@dashboard.post("/ui/incidents/<path:key>/acknowledge")
def acknowledge(key: str) -> Any:
    if not session.get("signed_in"):
        abort(401)
    _check_csrf()
    line = manual.acknowledge(web().config, web().acting_as("dashboard"), key)
    notice = UI_NOTICE.get(line["status"], "{status}: {key}").format(status=line["status"], key=key)
    if line.get("error") and line["status"] != Status.ALREADY_RESOLVED.value:
        notice += f" ({line['error']})"
    return redirect(url_for("dashboard.page", notice=notice))


def _oncall() -> tuple[list[manual.OnCall], str | None]:
    """Who is on call, or nobody and why PagerDuty could not say: the page shows either."""
    try:
        return manual.oncall(web().backend.client, str(web().config.escalation_policy_id)), None
    except PageRulesError as exc:
        return [], str(exc)


def _by_repo() -> list[tuple[str, list[dict[str, Any]]]]:
    by_repo: dict[str, list[dict[str, Any]]] = {}
    for incident in web().backend.state.open_incidents():
        by_repo.setdefault(incident.labels.get("repo", NO_REPO), []).append(incident_view(incident))
    return sorted(by_repo.items())


def _check_csrf() -> None:
    if not session.get("csrf") or not hmac.compare_digest(str(request.form.get("csrf", "")), session["csrf"]):
        abort(403, "missing or stale form token; reload the page")
