"""The fake PagerDuty's control endpoints (/_fake/...), as the benchmarks drive them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import NamedTuple

ROUTING_KEY = "benchroutingkey00000000000000001"  # 32 characters, like an Events API v2 integration key
ROUTING_KEY_ENV = "PAGERULES_BENCH_ROUTING_KEY"


def control(url: str, path: str, body: object | None = None, timeout: float = 60) -> dict:  # type: ignore[type-arg]
    """GET ``path`` of the fake, or POST ``body`` to it; its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def start_fake(root: Path) -> tuple[subprocess.Popen[str], str]:
    """The project's fake PagerDuty in a process of its own, and its base URL."""
    fake = subprocess.Popen([sys.executable, str(root / "tests" / "fake_pagerduty.py")], stdout=subprocess.PIPE,
                            text=True)
    return fake, fake.stdout.readline().strip()  # type: ignore[union-attr]


def live_env(url: str, **more: str) -> dict[str, str]:
    """This environment without any PAGERDUTY_/PAGERULES_ setting, plus a live configuration aimed at ``url``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
    return {**clean, "PAGERDUTY_API_TOKEN": "fake-token-0123456789", "PAGERDUTY_FROM_EMAIL": "oncall-bot@example.com",
            "PAGERDUTY_SERVICE_ID": "PSVC001", "PAGERDUTY_ESCALATION_POLICY_ID": "PEP0001",
            "PAGERDUTY_API_URL": url, **more}


class RouteConfig(NamedTuple):
    path: Path
    env: dict[str, str]

    def __str__(self) -> str:
        return str(self.path)


def route_config(folder: Path, events_api: bool, match: str = "{kind: build}") -> RouteConfig:
    """A pagerduty.yaml in ``folder`` whose one route takes ``match``'s incidents: to the Events API v2
    (its routing key read from the environment returned; PAGERDUTY_EVENTS_URL is the caller's), else
    to the fake's REST service."""
    path = folder / "pagerduty.yaml"
    target = f"routing_key_env: {ROUTING_KEY_ENV}" if events_api else "service_id: PSVC001"
    path.write_text(f"routes:\n  - match: {match}\n    {target}\n")
    return RouteConfig(path, {ROUTING_KEY_ENV: ROUTING_KEY} if events_api else {})
