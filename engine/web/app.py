"""The WSGI app: the blueprints of engine.web on one Flask app; `pagerules serve` runs it on waitress
(README "HTTP API, dashboard and webhook intake").

/api/ is engine.web.api (bearer token), /hooks/ engine.web.hooks (each sender's own credentials),
/ and the sign-in engine.web.dashboard (session cookie and CSRF token), /healthz engine.web.health,
/metrics engine.web.prometheus (no token, as Prometheus scrapes it).
Errors from the API and intake are JSON with a message naming the field, never a traceback.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from engine.config import Config
from engine.errors import PageRulesError
from engine.events.types import load_event_types
from engine.pagerduty.backend import Live, Refresher
from engine.web.api import api
from engine.web.auth import LoginLimiter, SessionInterface
from engine.web.context import WebContext, install, json_error
from engine.web.dashboard import dashboard
from engine.web.health import health
from engine.web.hooks import hooks
from engine.web.intake import Intake
from engine.web.prometheus import prometheus
from engine.web.silences import silences
from engine.web.tokens import Tokens

log = logging.getLogger("pagerules.server")
MAX_BODY = 1024 * 1024  # bytes; webhook payloads are far smaller
JSON_PATHS = ("/api/", "/hooks/")


def create_app(config: Config, backend: Live, events_dir: str | None = None,
               clock: Callable[[], float] = time.monotonic) -> Flask:
    """The WSGI app. ``backend`` holds the PagerDuty client, the state and the channel notifier;
    ``clock`` paces the login limit and the refresh from PagerDuty."""
    tokens = Tokens(config.tokens_file)  # a broken file refuses to start, naming the line
    if not config.server_api_token and not any(e.active for e in tokens.entries()):
        where = f"the tokens file {config.tokens_file} holds no active token" if config.tokens_file \
            else "no tokens_file (PAGERULES_TOKENS_FILE) is set"
        raise PageRulesError(f"PAGERULES_API_TOKEN is not set and {where}: the API and dashboard need one of "
                             "them to sign callers in (pagerules token add NAME)")
    app = Flask(__name__, template_folder=str(Path(__file__).parent / "templates"))
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, SECRET_KEY=secrets.token_hex(32), SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_NAME="pagerules_session")
    app.session_interface = SessionInterface()
    events = Path(events_dir or config.events_dir)
    install(app, WebContext(config, backend, events, Refresher(backend, clock),
                            Intake(config, events, load_event_types()), LoginLimiter(clock), tokens))
    for blueprint in (api, hooks, dashboard, health, prometheus, silences):
        app.register_blueprint(blueprint)
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: Flask) -> None:
    """JSON errors for the API and intake (a message, never a traceback); pages keep Flask's."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(PageRulesError, _refused)
    app.register_error_handler(Exception, _crash)


def _http_error(exc: HTTPException) -> Any:
    if request.path.startswith(JSON_PATHS) or request.is_json:
        return json_error(exc.code or 500, exc.description or exc.name)
    return exc


def _refused(exc: PageRulesError) -> Any:
    return json_error(400, str(exc))


def _crash(exc: Exception) -> Any:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return json_error(500, "internal error; see the server log")


def serve(app: Flask, bind: str) -> None:
    """Run ``app`` on waitress at HOST:PORT until interrupted."""
    import waitress

    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise PageRulesError(f"--bind {bind!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    log.info("serving the API and dashboard on http://%s:%s/", host, port)
    waitress.serve(app, host=host, port=int(port), threads=8, max_request_body_size=MAX_BODY, ident="pagerules")
