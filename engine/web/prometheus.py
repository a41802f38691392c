"""GET /metrics: the Prometheus text exposition of engine.metrics (README "Metrics"), without a token,
as Prometheus scrapes it and as Alertmanager's own /metrics is served; the figures name no secret."""
from __future__ import annotations

from flask import Blueprint, Response

from engine import metrics

prometheus = Blueprint("prometheus", __name__)


@prometheus.get("/metrics")
def scrape() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, status=200, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
