"""Silences over HTTP: /api/silences (bearer token) and the dashboard's silences page (README "Silences
and maintenance windows").

The API takes the same fields as `pagerules silence add` (engine/language/silences.py
silence_from_request: ``match`` in the rule language's syntax, ``comment``, ``starts_at``, ``ends_at`` or
``for``, ``weekly``); a bad one is 400 naming the field. Who made a silence is who signed in: a named
token's person, else ``api`` (the shared token) or ``dashboard`` (the page) - never a field of the body,
so nobody can make a silence in another's name.
"""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, session, url_for

from engine.language.silences import SilenceError, matchers_from_pairs, silence_from_request
from engine.web.api import json_body
from engine.web.context import json_error, web
from engine.web.dashboard import SHARED_PERSON, _signed_in_form, ago, signed_in_person

silences = Blueprint("silences", __name__)
API_ACTOR = "api"
_PAIRS = re.compile(r"[\s,]+")


@silences.get("/api/silences")
def listed() -> Any:
    """The silences not yet ended, soonest first; ``?all=1``: every one, newest first."""
    everything = request.args.get("all", "") not in ("", "0", "false")
    now = web().backend.clock()
    found = web().backend.state.silences(now, include_ended=everything)
    return jsonify({"silences": [s.to_json(now) for s in found]})


@silences.post("/api/silences")
def create() -> Any:
    body = json_body()
    now = web().backend.clock()
    try:
        made = silence_from_request(body, web().acting_as(API_ACTOR).actor, now)
    except SilenceError as exc:
        return json_error(400, str(exc), field=exc.field)
    web().backend.state.add_silence(made)
    return jsonify(made.to_json(now)), 201


@silences.delete("/api/silences/<silence_id>")
def expire(silence_id: str) -> Any:
    return _expire(silence_id, web().acting_as(API_ACTOR).actor)


def _expire(silence_id: str, actor: str) -> Response:
    state, now = web().backend.state, web().backend.clock()
    known = state.get_silence(silence_id)
    if known is None:
        return json_error(404, f"no silence {silence_id!r}")
    try:
        ended = state.expire_silence(silence_id, now, actor)
    except SilenceError as exc:  # ended meanwhile, or already
        return json_error(409, str(exc))
    return jsonify(ended.to_json(now))


# ---- the dashboard's page ----------------------------------------------------

@silences.get("/silences")
def page() -> Any:
    if signed_in_person() is None:
        return redirect(url_for("dashboard.login_form"))
    return _page(None, {}, request.args.get("notice"))


def _page(error: str | None, form: dict[str, str], notice: str | None, status: int = 200) -> Any:
    now = web().backend.clock()
    listed = web().backend.state.silences(now)
    return render_template("silences.html", silences=listed, now=now, ago=ago, csrf=session["csrf"], error=error,
                           form=form, notice=notice), status


@silences.post("/ui/silences")
def create_from_form() -> Any:
    _signed_in_form()
    form = {key: str(request.form.get(key, "")).strip()
            for key in ("match", "for", "ends_at", "comment", "weekdays", "between", "tz")}
    try:
        made = silence_from_request(_request_of(form), web().acting_as(SHARED_PERSON).actor, web().backend.clock())
    except SilenceError as exc:
        return _page(str(exc), form, None, 400)
    web().backend.state.add_silence(made)
    return redirect(url_for("silences.page", notice=f"silence {made.id} made"))


def _request_of(form: dict[str, str]) -> dict[str, Any]:
    """The form's fields as silence_from_request takes them: ``match`` is ``label=value`` pairs."""
    pairs = [p for p in _PAIRS.split(form["match"]) if p]
    request_data: dict[str, Any] = {"match": matchers_from_pairs(pairs), "comment": form["comment"],
                                    "for": form["for"] or None, "ends_at": form["ends_at"] or None}
    if form["between"] or form["weekdays"]:
        request_data["weekly"] = {"weekdays": form["weekdays"] or "mon-sun", "between": form["between"] or None,
                                  "tz": form["tz"] or "UTC"}
    return request_data


@silences.post("/ui/silences/<silence_id>/expire")
def expire_from_form(silence_id: str) -> Any:
    _signed_in_form()
    response = _expire(silence_id, web().acting_as(SHARED_PERSON).actor)
    if response.status_code != 200:
        abort(response.status_code, (response.get_json() or {}).get("error"))
    return redirect(url_for("silences.page", notice=f"silence {silence_id} expired"))
