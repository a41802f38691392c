"""HTTP API, dashboard and webhook intake (CONTRACT §8), on Flask; `pagerules serve` runs it on waitress.

Every /api/ call needs ``Authorization: Bearer <PAGERULES_API_TOKEN>``. The
dashboard signs in with the same token through a form and then holds a session
cookie (HttpOnly, SameSite=Strict); its buttons carry a CSRF token. Errors are
JSON with a message, never a traceback. /hooks/{source} writes the payload into
the events directory (write, fsync, rename) and answers 202 only then.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from engine import manual
from engine.config import Config
from engine.errors import PageRulesError
from engine.live import Live
from engine.status import read_status

log = logging.getLogger("pagerules.server")
MAX_BODY = 1024 * 1024  # bytes; webhook payloads are far smaller
SOURCE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
TYPE_HEADERS = {"github": ("X-GitHub-Event", "github."), "sentry": ("Sentry-Hook-Resource", "sentry.")}


def create_app(config: Config, backend: Live, events_dir: str | None = None) -> Flask:
    """The WSGI app. ``backend`` holds the PagerDuty client, the state and the channel notifier."""
    if not config.server_api_token:
        raise PageRulesError("PAGERULES_API_TOKEN is not set: the API and dashboard need it to sign callers in")
    app = Flask(__name__, template_folder=str(Path(__file__).parent / "web"))
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, SECRET_KEY=secrets.token_hex(32), SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_NAME="pagerules_session")
    app.add_template_filter(lambda at: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)), "utc")
    events = Path(events_dir or config.events_dir)
    token = str(config.server_api_token)
    dashboard_actor = "dashboard"

    def allowed(given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), token.encode())

    @app.before_request
    def _api_auth() -> Any:
        if request.path.startswith("/api/"):
            header = request.headers.get("Authorization", "")
            if not (header.startswith("Bearer ") and allowed(header[len("Bearer "):])):
                return _error(401, "missing or wrong bearer token (Authorization: Bearer <PAGERULES_API_TOKEN>)")
        return None

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
        missing = [k for k in ("title", "severity", "repo") if not isinstance(body.get(k), str) or not body[k]]
        if missing:
            return _error(400, f"missing or empty: {', '.join(missing)}")
        if "details" in body and not isinstance(body["details"], dict):
            return _error(400, "details: expected an object")
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
        return jsonify({"incidents": [_incident(i) for i in backend.state.open_incidents(repo)]})

    @app.get("/api/audit")
    def api_audit() -> Any:
        limit = request.args.get("limit", "50")
        if not limit.isdigit():
            return _error(400, "limit: expected a whole number")
        return jsonify({"entries": backend.state.recent_audit(min(int(limit), 1000))})

    @app.get("/healthz")
    def healthz() -> Any:
        daemon = read_status(events / ".pagerules-status.json")
        return jsonify({"ok": True, "daemon": daemon, "channel_failures": list(backend.notifier.failures)[:5]})

    # ---- webhook intake -----------------------------------------------------
    @app.post("/hooks/<source>")
    def hook(source: str) -> Any:
        if not SOURCE.match(source):
            return _error(404, "unknown hook source")
        raw = request.get_data(cache=False)
        if source == "github" and config.github_webhook_secret:
            expected = "sha256=" + hmac.new(config.github_webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected):
                return _error(401, "missing or wrong X-Hub-Signature-256")
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        if not isinstance(payload, (dict, list)):
            return _error(400, "body must be a JSON object or array")
        kind = _hook_type(source, request.headers)
        name = _write_event(events, source, kind, raw)
        log.info("hook %s: wrote %s", source, name)
        return jsonify({"file": name, "type": kind}), 202

    # ---- dashboard ----------------------------------------------------------
    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "POST":
            if allowed(request.form.get("token")):
                session.clear()
                session["signed_in"], session["csrf"] = True, secrets.token_urlsafe(24)
                return redirect(url_for("dashboard"))
            return render_template("login.html", error="That token is not right."), 401
        return render_template("login.html", error=None)

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
        by_repo: dict[str, list[dict[str, Any]]] = {}
        for incident in backend.state.open_incidents():
            by_repo.setdefault(incident.labels.get("repo", "(no repo)"), []).append(_incident(incident))
        return render_template("dashboard.html", oncall=oncall, oncall_error=oncall_error, repos=sorted(by_repo.items()),
                               audit=backend.state.recent_audit(15), failures=list(backend.notifier.failures)[:5],
                               csrf=session["csrf"], now=time.time(), notice=request.args.get("notice"))

    @app.post("/ui/incidents/<path:key>/acknowledge")
    def ui_ack(key: str) -> Any:
        if not session.get("signed_in"):
            abort(401)
        _check_csrf()
        line = manual.acknowledge(config, _as(backend, dashboard_actor), key)
        return redirect(url_for("dashboard", notice=f"{line['status']}: {key}" + (f" ({line['error']})"
                                                                                   if line.get("error") else "")))

    return app


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
    if optional and not request.get_data():
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "expected a JSON object body (Content-Type: application/json)")
    return body


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _status_code(line: dict[str, Any]) -> int:
    return {"failed": 502, "nothing_open": 404}.get(line["status"], 200)


def _incident(incident: Any) -> dict[str, Any]:
    return {"incident_key": incident.incident_key, "incident_id": incident.incident_id, "title": incident.title,
            "severity": incident.severity, "status": incident.status, "rule": incident.rule,
            "repo": incident.labels.get("repo"), "opened_at": incident.opened_at}


def _hook_type(source: str, headers: Any) -> str | None:
    """github + X-GitHub-Event: workflow_run -> github.workflow_run (CONTRACT §6); alertmanager -> alertmanager."""
    if source == "alertmanager":
        return "alertmanager"
    header, prefix = TYPE_HEADERS.get(source, (None, ""))
    value = headers.get(header) if header else None
    return f"{prefix}{value}" if value and re.match(r"^[A-Za-z0-9_.-]+$", value) else None


def _write_event(events: Path, source: str, kind: str | None, raw: bytes) -> str:
    """Write then rename, fsyncing the file and the folder, so the daemon never sees half a payload
    and a 202 means the payload survives a crash. The type travels in the name (NAME.TYPE.json)."""
    events.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{source}-{uuid.uuid4().hex[:12]}" \
           + (f".{kind}" if kind else "") + ".json"
    temp = events / f".{name}.part"
    with open(temp, "wb") as out:
        out.write(raw)
        out.flush()
        os.fsync(out.fileno())
    os.rename(temp, events / name)
    folder = os.open(events, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return name
