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

from flask import Flask, Response, current_app, jsonify, request

from engine.config import Config
from engine.pagerduty.backend import Live, Refresher
from engine.pagerduty.records import StoredIncident
from engine.web.auth import LoginLimiter
from engine.web.intake import Intake

EXTENSION = "pagerules"
BEARER_PROBLEM = "missing or wrong bearer token (Authorization: Bearer <PAGERULES_API_TOKEN>)"


@dataclass(frozen=True)
class WebContext:
    """The app-wide parts: config, the live backend, where hooks write, and the paced helpers."""

    config: Config
    backend: Live
    events: Path
    refresher: Refresher
    intake: Intake
    limiter: LoginLimiter

    def token_ok(self, given: str | None) -> bool:
        """``given`` is PAGERULES_API_TOKEN (constant-time; odd bytes never raise)."""
        expected = str(self.config.server_api_token).encode()
        return bool(given) and hmac.compare_digest(str(given).encode("utf-8", "replace"), expected)

    def acting_as(self, actor: str) -> Live:
        """The same backend acting for ``actor`` (recorded in the audit trail)."""
        return self.backend.with_actor(actor)


def install(app: Flask, context: WebContext) -> None:
    app.extensions[EXTENSION] = context


def web() -> WebContext:
    """The context of the app handling this request."""
    return cast(WebContext, current_app.extensions[EXTENSION])


def bearer_ok() -> bool:
    """The request carries ``Authorization: Bearer <PAGERULES_API_TOKEN>``."""
    header = request.headers.get("Authorization", "")
    return header.startswith("Bearer ") and web().token_ok(header[len("Bearer "):])


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
