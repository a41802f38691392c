"""POST /hooks/{source}: webhook intake into the events directory, 202 once the file is written
(README "HTTP API, dashboard and webhook intake"). What is accepted and stored is engine.web.intake."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from engine.web.auth import client_address
from engine.web.context import web

hooks = Blueprint("hooks", __name__, url_prefix="/hooks")


@hooks.post("/<source>")
def receive(source: str) -> Any:
    raw = request.get_data(cache=False)
    status, body = web().intake.receive(source, request.headers, raw, client_address(request))
    return jsonify(body), status
