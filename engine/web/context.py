"""What every blueprint shares: the app's settings and services, the bearer-token check, JSON errors.

create_app builds one frozen WebContext and keeps it in ``app.extensions["pagerules"]``; a view
reads it with ``web()``. Nothing here lives in a closure or a module global, so two apps in one
process (the tests make many) never share state.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from flask import Flask, Response, current_app, g, jsonify, request

from engine.config import Config
from engine.pagerduty.backend import Live, Refresher
from engine.pagerduty.records import StoredIncident
from engine.web.auth import LoginLimiter
from engine.web.intake import Intake
from engine.web.tokens import Entry, Tokens

EXTENSION = "pagerules"
BEARER_PROBLEM = "missing or wrong bearer token (Authorization: Bearer <PAGERULES_API_TOKEN>)"
PERSON = "pagerules_person"  # flask.g: the named person this request signed in as


@dataclass(frozen=True)
class WebContext:
    """The app-wide parts: config, the live backend, where hooks write, and the paced helpers."""

    config: Config
    backend: Live
    events: Path
    refresher: Refresher
    intake: Intake
    limiter: LoginLimiter
    tokens: Tokens

    def token_ok(self, given: str | None) -> bool:
        """``given`` is PAGERULES_API_TOKEN (constant-time; odd bytes never raise); False when it is unset."""
        expected = self.config.server_api_token
        return bool(given) and bool(expected) and hmac.compare_digest(
            str(given).encode("utf-8", "replace"), str(expected).encode("utf-8", "replace"))

    def sign_in(self, given: str | None) -> Entry | bool:
        """Whose token ``given`` is: a person's active named token (their entry), PAGERULES_API_TOKEN
        (True), or neither (False)."""
        return self.tokens.person(given) or self.token_ok(given)

    def acting_as(self, actor: str) -> Live:
        """The same backend acting for the person this request signed in as (a named token's name),
        else for ``actor`` (``api`` or ``dashboard`` for PAGERULES_API_TOKEN); the audit trail and the
        channels' messages name it."""
        return self.backend.with_actor(str(g.get(PERSON) or actor))


def act_for(person: str) -> None:
    """Record that this request acts for ``person`` (``WebContext.acting_as`` then names them)."""
    setattr(g, PERSON, person)


def install(app: Flask, context: WebContext) -> None:
    app.extensions[EXTENSION] = context


def web() -> WebContext:
    """The context of the app handling this request."""
    return cast(WebContext, current_app.extensions[EXTENSION])


def bearer_ok() -> bool:
    """The request carries ``Authorization: Bearer <token>``: a person's active named token (then the
    request acts for them) or PAGERULES_API_TOKEN."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return False
    who = web().sign_in(header[len("Bearer "):])
    if isinstance(who, Entry):
        act_for(who.name)
    return bool(who)


def json_error(status: int, message: str, **extra: Any) -> Response:
    """``{"error": message, ...}`` with ``status``: every API and intake error has this shape."""
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def incident_view(incident: StoredIncident) -> dict[str, Any]:
    """An open incident as the API lists it and the dashboard shows it."""
    return {"incident_key": incident.incident_key, "incident_id": incident.incident_id, "title": incident.title,
            "severity": incident.severity, "status": incident.status, "rule": incident.rule,
            "repo": incident.labels.get("repo"), "opened_at": incident.opened_at, "incident_url": incident.html_url}
