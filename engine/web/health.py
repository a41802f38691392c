"""GET /healthz: up/down and counts for anyone (a load balancer, a monitor); the details (paths, ids,
errors, the PagerDuty URL, the pid) only with the bearer token, since they describe the deployment.

The daemon's figures come from engine.daemon.status.current_status and the channel failures from
engine.metrics: the same figures /metrics and `pagerules status` show (README "Metrics")."""
from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, jsonify

from engine import metrics
from engine.daemon.status import current_status
from engine.web.context import bearer_ok, web

PUBLIC_STATUS = ("state", "running", "files_processed", "files_failed", "files_pending", "rules_loaded",
                 "last_reload_successful")  # what /metrics, which needs no token either, shows

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> Any:
    daemon = current_status(web().events)
    return jsonify(_detailed(daemon) if bearer_ok() else _public(daemon))


def _public(daemon: dict[str, Any] | None) -> dict[str, Any]:
    return {"ok": True, "daemon": {k: daemon.get(k) for k in PUBLIC_STATUS} if daemon else None,
            "channel_failures": metrics.channel_failures(),
            "hooks_ignored": sum(dict(web().intake.ignored).values())}  # dict(): one atomic copy


def _detailed(daemon: dict[str, Any] | None) -> dict[str, Any]:
    return {"ok": True, "daemon": daemon, "channel_failures": list(web().backend.notifier.failures)[:5],
            "pid": os.getpid(), "pagerduty_url": web().config.api_url, "hooks_ignored": dict(web().intake.ignored)}
