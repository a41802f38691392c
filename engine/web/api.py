"""The JSON API under /api/ (README "HTTP API, dashboard and webhook intake").

Every call needs ``Authorization: Bearer <PAGERULES_API_TOKEN>``; without it, 401 and nothing
happens. That check covers every path under /api/, routed or not, so a caller without the token
cannot learn which paths exist. A bad request is 400 with a message naming the field.
"""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from engine.dispatch.outcomes import Status
from engine.pagerduty import manual
from engine.web.context import BEARER_PROBLEM, bearer_ok, incident_view, json_error, web
from engine.web.hooks import answer as hook_answer
from engine.web.strict_json import BadJson, parse_json

MAX_AUDIT = 1000
TRIGGER_FIELDS = ("title", "severity", "repo")
NOT_AN_OBJECT = "expected a JSON object body (Content-Type: application/json)"
# The HTTP status for an outcome line's status; any other is 200 (deduplicated, below_threshold, disabled, ...).
TRIGGER_CODES = {Status.CREATED.value: 201, Status.FAILED.value: 502}
ACTION_CODES = {Status.FAILED.value: 502, Status.NOTHING_OPEN.value: 404,  # acknowledge and resolve
                Status.ALREADY_RESOLVED.value: 409}

api = Blueprint("api", __name__, url_prefix="/api")


@api.before_app_request
def _require_token() -> Response | None:
    if request.path.startswith(f"{api.url_prefix}/") and not bearer_ok():
        return json_error(401, BEARER_PROBLEM)
    return None


@api.get("/oncall")
def oncall() -> Any:
    """Who is on call: the first of the lowest level, and ``levels``; ``?repo=R``: for the route R's
    incidents take, with ``route``, ``escalation_policy_id`` and ``why`` (README "Routes")."""
    repo = request.args.get("repo")
    if repo is None:
        policy = web().config.escalation_policy_id
        if not policy:
            return json_error(404, "PAGERDUTY_ESCALATION_POLICY_ID is not set: set it to name whose on-call to show")
        people = manual.oncall(web().backend.client, policy)
        if not people:
            return json_error(404, "nobody is on call for this escalation policy")
        return jsonify({**people[0].__dict__, "levels": [p.__dict__ for p in people]})
    if not repo.strip():
        return json_error(400, "repo: expected a repository (owner/name), got empty text")
    target = manual.project_target(web().config, repo)
    people = manual.oncall(web().backend.client, target.escalation_policy_id) if target.escalation_policy_id else []
    view = manual.project_view(target, people)
    if not people:
        return json_error(404, target.unknown or f"nobody is on call for {target.escalation_policy_id}", **view)
    return jsonify({**people[0].__dict__, **view})


@api.post("/incidents")
def trigger() -> Any:
    body = json_body()
    problem = trigger_problem(body)
    if problem:
        return json_error(400, problem)
    line = manual.trigger(web().config, web().acting_as("api"), body["title"], body["severity"].lower(),
                          body["repo"], body.get("incident_key"), body.get("details"))
    return jsonify(line), TRIGGER_CODES.get(line["status"], 200)


@api.post("/incidents/<path:key>/acknowledge")
def acknowledge(key: str) -> Any:
    line = manual.acknowledge(web().config, web().acting_as("api"), key)
    return jsonify(line), ACTION_CODES.get(line["status"], 200)


@api.post("/incidents/<path:key>/resolve")
def resolve(key: str) -> Any:
    message = json_body(optional=True).get("message")
    if message is not None and not isinstance(message, str):
        return json_error(400, "message: expected text")
    line = manual.resolve(web().config, web().acting_as("api"), key, message)
    return jsonify(line), ACTION_CODES.get(line["status"], 200)


@api.post("/events")
def events() -> Any:
    """Events for the rules, as a sender would drop them in the events directory: one object or a list;
    202 once stored (in the queue, with their ids, when the server runs with --queue)."""
    raw = request.get_data()
    if not request.is_json:
        abort(400, "expected a JSON event or a list of events (Content-Type: application/json)")
    try:
        body = parse_json(raw)
    except BadJson as exc:
        abort(400, str(exc))
    status, answer = web().intake.accept_events(body)
    return hook_answer(status, answer)


@api.get("/incidents")
def incidents() -> Any:
    refresh_error = web().refresher.maybe()
    listed = web().backend.state.open_incidents(request.args.get("repo"))
    body: dict[str, Any] = {"incidents": [incident_view(i) for i in listed]}
    if refresh_error:
        body["refresh_error"] = refresh_error
    return jsonify(body)


@api.get("/audit")
def audit() -> Any:
    limit = request.args.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,7}", limit) or not 1 <= int(limit) <= MAX_AUDIT:
        return json_error(400, f"limit: expected a whole number from 1 to {MAX_AUDIT}")
    return jsonify({"entries": web().backend.state.recent_audit(int(limit))})


def json_body(optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, parsed as strictly as webhook bodies (no NaN, bounded depth)."""
    raw = request.get_data()
    if optional and not raw:
        return {}
    if not request.is_json:
        abort(400, NOT_AN_OBJECT)
    try:
        body = parse_json(raw)
    except BadJson as exc:
        abort(400, str(exc))
    if not isinstance(body, dict):
        abort(400, NOT_AN_OBJECT)
    return body


def trigger_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with a POST /api/incidents body, naming the field, or None."""
    missing = [k for k in TRIGGER_FIELDS if k not in body or body[k] in ("", None)]
    if missing:
        return f"missing or empty: {', '.join(missing)}"
    for field in TRIGGER_FIELDS:
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
