"""HTTP API, dashboard and webhook intake, on Flask; `pagerules serve` runs it on waitress (README
"HTTP API, dashboard and webhook intake").

Every /api/ call needs ``Authorization: Bearer <PAGERULES_API_TOKEN>``. The
dashboard signs in with the same token through a form (rate limited, same-origin
only) and then holds a session cookie (HttpOnly, SameSite=Strict, Secure over
https); its buttons carry a CSRF token. Errors are JSON with a message naming
the field, never a traceback. /hooks/{source} is engine.web.hooks: it writes the
payload into the events directory (write, fsync, rename) and answers 202 only then.
"""
from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from engine.config import Config
from engine.daemon.status import read_status, status_path
from engine.errors import PageRulesError
from engine.events.types import load_event_types
from engine.pagerduty import manual
from engine.pagerduty.backend import Live, Refresher
from engine.web import hooks
from engine.web.auth import LoginLimiter, SessionInterface, client_address, cross_origin

log = logging.getLogger("pagerules.server")
MAX_BODY = 1024 * 1024  # bytes; webhook payloads are far smaller
MAX_AUDIT = 1000
PUBLIC_STATUS = ("state", "running", "files_processed", "files_failed", "files_pending")


def create_app(config: Config, backend: Live, events_dir: str | None = None,
               clock: Callable[[], float] = time.monotonic) -> Flask:
    """The WSGI app. ``backend`` holds the PagerDuty client, the state and the channel notifier;
    ``clock`` paces the login limit and the refresh from PagerDuty."""
    if not config.server_api_token:
        raise PageRulesError("PAGERULES_API_TOKEN is not set: the API and dashboard need it to sign callers in")
    app = Flask(__name__, template_folder=str(Path(__file__).parent / "templates"))
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, SECRET_KEY=secrets.token_hex(32), SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_NAME="pagerules_session")
    app.session_interface = SessionInterface()
    app.add_template_filter(lambda at: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)), "utc")
    events = Path(events_dir or config.events_dir)
    token = str(config.server_api_token)
    refresher = Refresher(backend, clock)
    intake = hooks.Intake(config, events, load_event_types())

    def allowed(given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode("utf-8", "replace"), token.encode())

    def bearer_ok() -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and allowed(header[len("Bearer "):])

    @app.before_request
    def _api_auth() -> Any:
        if request.path.startswith("/api/") and not bearer_ok():
            return _error(401, "missing or wrong bearer token (Authorization: Bearer <PAGERULES_API_TOKEN>)")
        return None

    _add_error_handlers(app)

    # ---- JSON API -----------------------------------------------------------
    @app.get("/api/oncall")
    def api_oncall() -> Any:
        people = manual.oncall(backend.client, str(config.escalation_policy_id))
        if not people:
            return _error(404, "nobody is on call for this escalation policy")
        return jsonify({**people[0].__dict__, "levels": [p.__dict__ for p in people]})

    @app.post("/api/incidents")
    def api_trigger() -> Any:
        body = _json_body()
        problem = _trigger_problem(body)
        if problem:
            return _error(400, problem)
        line = manual.trigger(config, _as(backend, "api"), body["title"], body["severity"].lower(), body["repo"],
                              body.get("incident_key"), body.get("details"))
        return jsonify(line), {"created": 201, "failed": 502}.get(line["status"], 200)

    @app.post("/api/incidents/<path:key>/acknowledge")
    def api_ack(key: str) -> Any:
        line = manual.acknowledge(config, _as(backend, "api"), key)
        return jsonify(line), _status_code(line)

    @app.post("/api/incidents/<path:key>/resolve")
    def api_resolve(key: str) -> Any:
        body = _json_body(optional=True)
        message = body.get("message")
        if message is not None and not isinstance(message, str):
            return _error(400, "message: expected text")
        line = manual.resolve(config, _as(backend, "api"), key, message)
        return jsonify(line), _status_code(line)

    @app.get("/api/incidents")
    def api_incidents() -> Any:
        repo = request.args.get("repo")
        refresh_error = refresher.maybe()
        body: dict[str, Any] = {"incidents": [_incident(i) for i in backend.state.open_incidents(repo)]}
        if refresh_error:
            body["refresh_error"] = refresh_error
        return jsonify(body)

    @app.get("/api/audit")
    def api_audit() -> Any:
        limit = request.args.get("limit", "50")
        if not re.fullmatch(r"[0-9]{1,7}", limit) or not 1 <= int(limit) <= MAX_AUDIT:
            return _error(400, f"limit: expected a whole number from 1 to {MAX_AUDIT}")
        return jsonify({"entries": backend.state.recent_audit(int(limit))})

    @app.get("/healthz")
    def healthz() -> Any:
        """Up/down and counts for anyone; the details (paths, ids, errors, URL, pid) need the bearer token."""
        daemon = read_status(status_path(events))
        failures = list(backend.notifier.failures)
        ignored = dict(intake.ignored)
        if not bearer_ok():
            public = {k: daemon.get(k) for k in PUBLIC_STATUS} if daemon else None
            return jsonify({"ok": True, "daemon": public, "channel_failures": len(failures),
                            "hooks_ignored": sum(ignored.values())})
        return jsonify({"ok": True, "daemon": daemon, "channel_failures": failures[:5], "pid": os.getpid(),
                        "pagerduty_url": config.api_url, "hooks_ignored": ignored})

    # ---- webhook intake -----------------------------------------------------
    @app.post("/hooks/<source>")
    def hook(source: str) -> Any:
        status, body = intake.receive(source, request.headers, request.get_data(cache=False), client_address(request))
        return jsonify(body), status

    _add_dashboard(app, config, backend, LoginLimiter(clock), refresher, allowed)
    return app


_UI_NOTICE = {"already_resolved": "Not acknowledged: {key} is already resolved in PagerDuty "
                                  "(acknowledging would re-open it). The list is now up to date."}


def _add_error_handlers(app: Flask) -> None:
    """JSON errors for the API and intake (a message, never a traceback); pages keep Flask's."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if request.path.startswith(("/api/", "/hooks/")) or request.is_json:
            return _error(exc.code or 500, exc.description or exc.name)
        return exc

    @app.errorhandler(PageRulesError)
    def _refused(exc: PageRulesError) -> Any:
        return _error(400, str(exc))

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Any:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(500, "internal error; see the server log")


def _add_dashboard(app: Flask, config: Config, backend: Live, limiter: LoginLimiter, refresher: Refresher,
                   allowed: Callable[[str | None], bool]) -> None:
    """The sign-in form, the on-call page and its Acknowledge buttons (session cookie and CSRF token)."""

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "GET":
            return render_template("login.html", error=None)
        client = client_address(request)
        wait = limiter.retry_after(client)
        if wait is not None:
            page = render_template("login.html", error=f"Too many wrong tokens; try again in {wait} s.")
            return page, 429, {"Retry-After": str(wait)}
        foreign = cross_origin(request)
        if foreign:
            return render_template("login.html", error=f"Sign-in refused: {foreign}. Open this page directly."), 403
        if allowed(request.form.get("token")):
            limiter.succeeded(client)
            session.clear()
            session["signed_in"], session["csrf"] = True, secrets.token_urlsafe(24)
            return redirect(url_for("dashboard"))
        limiter.failed(client)
        log.warning("dashboard sign-in with a wrong token from %s", client)
        return render_template("login.html", error="That token is not right."), 401

    @app.post("/logout")
    def logout() -> Any:
        _check_csrf()
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    def dashboard() -> Any:
        if not session.get("signed_in"):
            return redirect(url_for("login"))
        try:
            oncall, oncall_error = manual.oncall(backend.client, str(config.escalation_policy_id)), None
        except PageRulesError as exc:
            oncall, oncall_error = [], str(exc)
        refresh_error = refresher.maybe()
        by_repo: dict[str, list[dict[str, Any]]] = {}
        for incident in backend.state.open_incidents():
            by_repo.setdefault(incident.labels.get("repo", "(no repo)"), []).append(_incident(incident))
        return render_template("dashboard.html", oncall=oncall, oncall_error=oncall_error,
                               repos=sorted(by_repo.items()), audit=backend.state.recent_audit(15),
                               failures=list(backend.notifier.failures)[:5],
                               csrf=session["csrf"], now=time.time(), notice=request.args.get("notice"),
                               refresh_error=refresh_error)

    @app.post("/ui/incidents/<path:key>/acknowledge")
    def ui_ack(key: str) -> Any:
        if not session.get("signed_in"):
            abort(401)
        _check_csrf()
        line = manual.acknowledge(config, _as(backend, "dashboard"), key)
        notice = _UI_NOTICE.get(line["status"], "{status}: {key}").format(status=line["status"], key=key)
        if line.get("error") and line["status"] != "already_resolved":
            notice += f" ({line['error']})"
        return redirect(url_for("dashboard", notice=notice))


def serve(app: Flask, bind: str) -> None:
    """Run ``app`` on waitress at HOST:PORT until interrupted."""
    import waitress

    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise PageRulesError(f"--bind {bind!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    log.info("serving the API and dashboard on http://%s:%s/", host, port)
    waitress.serve(app, host=host, port=int(port), threads=8, max_request_body_size=MAX_BODY, ident="pagerules")


def _as(backend: Live, actor: str) -> Live:
    """The same backend acting for another actor (recorded in the audit trail)."""
    return Live(backend.config, backend.client, backend.state, backend.clock, actor, backend.notifier)


def _check_csrf() -> None:
    if not session.get("csrf") or not hmac.compare_digest(str(request.form.get("csrf", "")), session["csrf"]):
        abort(403, "missing or stale form token; reload the page")


def _json_body(optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, parsed as strictly as webhook bodies (no NaN, bounded depth)."""
    raw = request.get_data()
    if optional and not raw:
        return {}
    if not request.is_json:
        abort(400, "expected a JSON object body (Content-Type: application/json)")
    try:
        body = hooks.parse_json(raw)
    except hooks.BadJson as exc:
        abort(400, str(exc))
    if not isinstance(body, dict):
        abort(400, "expected a JSON object body (Content-Type: application/json)")
    return body


def _trigger_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with a POST /api/incidents body, naming the field, or None."""
    missing = [k for k in ("title", "severity", "repo") if k not in body or body[k] in ("", None)]
    if missing:
        return f"missing or empty: {', '.join(missing)}"
    for field in ("title", "severity", "repo"):
        if not isinstance(body[field], str):
            return f"{field}: expected text, got {_json_kind(body[field])}"
    key = body.get("incident_key")
    if key is not None and (not isinstance(key, str) or not key):
        return f"incident_key: expected non-empty text, got {_json_kind(key)}"
    if "details" in body and not isinstance(body["details"], dict):
        return "details: expected an object"
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, str):
        return "empty text" if not value else "text"
    if isinstance(value, bool):
        return "true/false"
    return {int: "a number", float: "a number", list: "a list", dict: "an object"}.get(type(value), "null")


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def _status_code(line: dict[str, Any]) -> int:
    return {"failed": 502, "nothing_open": 404, "already_resolved": 409}.get(line["status"], 200)


def _incident(incident: Any) -> dict[str, Any]:
    return {"incident_key": incident.incident_key, "incident_id": incident.incident_id, "title": incident.title,
            "severity": incident.severity, "status": incident.status, "rule": incident.rule,
            "repo": incident.labels.get("repo"), "opened_at": incident.opened_at}
