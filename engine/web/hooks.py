"""POST /hooks/{source}: webhook intake into the events directory (or the queue), 202 once it is stored
(README "HTTP API, dashboard and webhook intake"). What is accepted and stored is engine.web.intake;
a 503 (the queue is unavailable) carries Retry-After."""
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
    return answer(status, body)


def answer(status: int, body: dict[str, Any]) -> Any:
    """The JSON answer; a 503 says when to try again in Retry-After, as senders read it."""
    response = jsonify(body)
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = str(body.get("retry_after", 10))
    return response
