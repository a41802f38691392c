"""Shared test builders: configs, rule sets, events, a dry run, the daemon and web app harnesses.

Test modules import these from here, never from each other (tests/test_layering.py checks it).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fake_pagerduty import FROM_EMAIL, POLICY, SERVICE, TOKEN, FakePagerDuty

from engine.config import Config, load_config_text
from engine.dispatch.dispatcher import Dispatcher, DryRun
from engine.dispatch.pipeline import Tally, run
from engine.events.stream import read_events
from engine.language.loading import load_ruleset
from engine.language.model import RuleSet
from engine.language.rules import load_ruleset_text
from engine.pagerduty.backend import live_backend
from engine.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent


def make_config(yaml_text: str = "", env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """A Config from inline pagerduty.yaml text, with no environment unless given."""
    return load_config_text(yaml_text, str(ROOT / "pagerduty.yaml"), env=env or {}, overrides=overrides)


def shipped_rules(config: Config | None = None) -> RuleSet:
    return load_ruleset(config or make_config())


def rules_from(text: str, config: Config | None = None, filename: str = "rules/test.yaml") -> RuleSet:
    return load_ruleset_text({filename: text}, config or make_config())


def dry_run(events: Iterable[Mapping[str, Any]] | str, ruleset: RuleSet | None = None,
            config: Config | None = None) -> list[dict[str, Any]]:
    """Outcome lines of `process --dry-run` for these events (dicts or raw text)."""
    config = config or make_config()
    ruleset = ruleset or shipped_rules(config)
    text = events if isinstance(events, str) else "\n".join(json.dumps(e) for e in events)
    return list(run(read_events(io.StringIO(text), "stdin"), ruleset, Dispatcher(config, DryRun()), Tally()))


def deploy(version: str = "v2.4.1", rate: float = 0.058, base: float = 0.010, minutes: int = 0,
           passed: int = 3, total: int = 10, repo: str = "acme/backend-api", eid: str = "d1") -> dict[str, Any]:
    return {"type": "deploy.health", "id": eid, "repo": repo,
            "deploy": {"version": version, "environment": "production"},
            "error_rate": rate, "baseline_error_rate": base, "sustained_minutes": minutes,
            "checks": {"passed": passed, "total": total}}


def sentry(level: str = "fatal", count: int = 3, post: bool = True, issue: str = "ISSUE-123",
           version: str = "v2.4.1", eid: str = "s1") -> dict[str, Any]:
    return {"type": "sentry.errors", "id": eid, "repo": "acme/backend-api", "deploy": {"version": version},
            "level": level, "new_count": count, "issue_id": issue, "post_deploy": post}


def build(number: int = 349, status: str = "failed", branch: str = "main", repo: str = "acme/backend-api",
          eid: str = "b1") -> dict[str, Any]:
    return {"type": "build", "id": eid, "repo": repo, "branch": branch, "build_number": number,
            "status": status, "url": f"https://ci.example.com/b/{number}"}


def rollback(version: str = "v2.4.1", status: str = "succeeded", health: bool = True, eid: str = "r1"
             ) -> dict[str, Any]:
    return {"type": "rollback", "id": eid, "repo": "acme/backend-api", "deploy": {"version": version},
            "rolled_back_to": "v2.4.0", "status": status, "health_passed": health}


def escalation(severity: str = "critical", eid: str = "i1") -> dict[str, Any]:
    return {"type": "incident.escalation", "id": eid, "repo": "acme/backend-api", "incident_id": "INC-42",
            "severity": severity, "summary": "checkout p99 latency above 4s for 15 minutes"}


def triggers(lines: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(o["rule"], o["severity"], o["title"], o["incident_key"]) for o in lines if o["action"] == "trigger"]


GOLDEN = [
    ("deploy-critical-spike", deploy(),
     "critical", "[CodeSpar] Critical: acme/backend-api deploy v2.4.1 — error rate 5.8x baseline",
     "codespar-acme-backend-api-deploy-v2.4.1"),
    ("deploy-sustained-increase", deploy(rate=0.032, minutes=10),
     "high", "[CodeSpar] High: acme/backend-api deploy v2.4.1 — sustained error rate 3.2x baseline",
     "codespar-acme-backend-api-deploy-v2.4.1"),
    ("sentry-new-fatal", sentry(),
     "critical", "[CodeSpar] Critical: acme/backend-api — 3 new fatal Sentry errors post-deploy",
     "codespar-acme-backend-api-sentry-ISSUE-123"),
    ("build-failed", build(),
     "high", "[CodeSpar] High: acme/backend-api CI build #349 failed on main",
     "codespar-acme-backend-api-build-349"),
    ("incident-escalation", escalation(),
     "critical", "[CodeSpar] Critical: acme/backend-api — checkout p99 latency above 4s for 15 minutes",
     "codespar-acme-backend-api-incident-INC-42"),
]


RECOVERIES = [
    # (rule, events that open incidents, the recovery event, keys it resolves)
    ("deploy-healthy", [deploy()], deploy(passed=10, total=10, rate=0.01, eid="d2"),
     ["codespar-acme-backend-api-deploy-v2.4.1"], "Deploy v2.4.1 confirmed healthy (10/10 checks passed)"),
    ("rollback-recovered", [deploy(), sentry()], rollback(),
     ["codespar-acme-backend-api-deploy-v2.4.1", "codespar-acme-backend-api-sentry-ISSUE-123"],
     "Rolled back v2.4.1 to v2.4.0; health checks passed"),
    ("build-fixed", [build(349), build(350, eid="b2")], build(351, "passed", eid="b3"),
     ["codespar-acme-backend-api-build-349", "codespar-acme-backend-api-build-350"], "Build #351 passed on main"),
    ("incident-closed", [escalation()],
     {"type": "incident.resolved", "id": "i2", "repo": "acme/backend-api", "incident_id": "INC-42"},
     ["codespar-acme-backend-api-incident-INC-42"], "Incident INC-42 closed by the incident agent"),
]


API_TOKEN = "api-token-for-tests-7f3a"


AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def live_config(fake: FakePagerDuty, channels: str = "channels: []", **env: str) -> Config:
    """The config of a live app on the fake PagerDuty; ``env`` adds or overrides variables."""
    return make_config(channels, env={
        "PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL, "PAGERDUTY_SERVICE_ID": SERVICE,
        "PAGERDUTY_ESCALATION_POLICY_ID": POLICY, "PAGERDUTY_API_URL": fake.url,  # type: ignore[attr-defined]
        "PAGERULES_API_TOKEN": API_TOKEN, "PAGERULES_RETRY_BACKOFF": "0.01", **env})


def app_for(fake: FakePagerDuty, tmp_path: Path, channels: str = "channels: []", clock: Clock | None = None,
            **env: str) -> Any:
    config = live_config(fake, channels, **env)
    backend = live_backend(config, str(tmp_path / "state.db"), "api")
    backend.notifier.synchronous = True
    app = create_app(config, backend, str(tmp_path / "events"), **({"clock": clock} if clock else {}))
    app.testing = True
    return app


def open_one(client: Any) -> dict[str, Any]:
    """Trigger "db down" (high, acme/db) through the API; its outcome line."""
    return client.post("/api/incidents", headers=AUTH, json={"title": "db down", "severity": "high",  # type: ignore[no-any-return]
                                                             "repo": "acme/db"}).get_json()


class Daemon:
    """`pagerules watch` in a folder of its own: rules copied, state and events inside it."""

    def __init__(self, tmp: Path, fake: FakePagerDuty, **env: str):
        self.tmp, self.events, self.rules = tmp, tmp / "events", tmp / "rules"
        if not self.rules.exists():
            shutil.copytree(ROOT / "rules", self.rules)
            (tmp / "pd.yaml").write_text("rules_dir: rules\nstate_path: state.db\nevents_dir: events\n")
        self.events.mkdir(exist_ok=True)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
        self.env = {**clean, "PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL,
                    "PAGERDUTY_SERVICE_ID": SERVICE, "PAGERDUTY_ESCALATION_POLICY_ID": POLICY,
                    "PAGERDUTY_API_URL": fake.url, "PAGERULES_RETRIES": "0",  # type: ignore[attr-defined]
                    "PAGERULES_WATCH_RETRY_MAX": "1", **env}
        self.proc: subprocess.Popen[str] | None = None
        self.log = tmp / "daemon.log"

    def args(self, *extra: str) -> list[str]:
        return [sys.executable, str(ROOT / "cli.py"), "watch", "--config", str(self.tmp / "pd.yaml"), *extra]

    def start(self, *extra: str) -> Daemon:
        self.proc = subprocess.Popen(self.args(*extra), stdout=subprocess.PIPE, stderr=self.log.open("a"),
                                     text=True, env=self.env)
        wait_for(lambda: "watching" in self.log.read_text(), 15, "the daemon to start")
        return self

    def once(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.args("--once"), capture_output=True, text=True, env=self.env, timeout=120)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)

    def drop(self, name: str, events: list[dict[str, Any]] | str) -> Path:
        """Write then rename, as producers should."""
        text = events if isinstance(events, str) else "\n".join(json.dumps(e) for e in events) + "\n"
        temp = self.events / f".{name}.part"
        temp.write_text(text)
        temp.rename(self.events / name)
        return self.events / name

    def status(self) -> dict[str, Any]:
        """The daemon's status file, or {} before its first write."""
        try:
            data: dict[str, Any] = json.loads((self.events / ".pagerules-status.json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def done(self, *names: str) -> bool:
        return all((self.events / "processed" / n).exists() or (self.events / "failed" / n).exists()
                   for n in names)


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def replace_file(path: Path, text: str) -> None:
    """Write beside, then rename over: the daemon sees the whole new file in one change, never half of it."""
    temp = path.parent.parent / f"{path.name}.new"
    temp.write_text(text)
    os.replace(temp, path)


def titles(fake: FakePagerDuty) -> list[str]:
    return [i["title"] for i in fake.incidents.values()]


LIVE_ENV = {"PAGERDUTY_API_TOKEN": "tok-secret-123", "PAGERDUTY_FROM_EMAIL": "oncall@example.com",
            "PAGERDUTY_SERVICE_ID": "PSVC1", "PAGERDUTY_ESCALATION_POLICY_ID": "PEP1"}


# A flaky main branch with a clock (the flap and renotify tests): one trigger, whose last line is ``extra``
# (``flap: ...``, ``renotify: ...`` or nothing), and the recovery that resolves it by labels.
MAIN_RED_RULES = """
triggers:
  - id: main-red
    on: build
    match: {status: failed, branch: main}
    severity: SEVERITY
    title: "{{ event.repo }} main is red"
    incident_key: "{{ event.repo | slug }}-main-red"
    labels: {kind: main-red, repo: "{{ event.repo }}"}
    EXTRA
recoveries:
  - id: main-green
    on: build
    match: {status: passed, branch: main}
    resolves: [{labels: {kind: main-red, repo: "{{ event.repo }}"}}]
    message: main is green again
"""
MAIN_RED_KEY = "codespar-acme-api-main-red"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def main_red_rules(extra: str, severity: str = "high") -> str:
    return MAIN_RED_RULES.replace("EXTRA", extra).replace("SEVERITY", severity)


def iso_at(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main_build(status: str, minute: float, eid: str) -> dict[str, Any]:
    """A build of acme/api's main branch ``minute`` minutes after T0, with its ``time``."""
    return {"type": "build", "id": eid, "repo": "acme/api", "branch": "main", "build_number": int(minute) + 1,
            "status": status, "time": iso_at(T0 + minute * 60)}


EVENTS_ROUTING_KEY = "routingkeyforthedefault000000002"  # 32 characters, as PagerDuty's are


def events_api_config(fake: FakePagerDuty, yaml_text: str = "") -> Config:
    """A live config whose default route is the Events API v2 at ``fake`` (EVENTS_ROUTING_KEY), no retries."""
    return make_config(yaml_text, env={
        "PAGERDUTY_API_URL": fake.url, "PAGERDUTY_EVENTS_URL": fake.url,  # type: ignore[attr-defined]
        "PAGERDUTY_ROUTING_KEY": EVENTS_ROUTING_KEY, "PAGERULES_RETRIES": "0"})


class Workers:
    """``watch --queue`` worker processes sharing one folder's rules and config, on the queue at ``url``, each
    with its own log (tmp/worker-N.log), holding rows for ``lease`` seconds."""

    def __init__(self, tmp: Path, fake: FakePagerDuty, url: str, lease: str = "2"):
        self.harness, self.url, self.lease = Daemon(tmp, fake), url, lease
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: list[Path] = []

    def start(self, *extra: str, wait: bool = True) -> subprocess.Popen[str]:
        """A new worker; with ``wait``, once it says it is on the queue (it must not have exited)."""
        log = self.harness.tmp / f"worker-{len(self.procs)}.log"
        proc = subprocess.Popen(self.harness.args("--queue", "--state", self.url, "--lease", self.lease, *extra),
                                stdout=subprocess.DEVNULL, stderr=log.open("a"), text=True, env=self.harness.env)
        self.procs.append(proc)
        self.logs.append(log)
        if wait:
            wait_for(lambda: "on the queue in" in log.read_text() or proc.poll() is not None, 20, "a worker to start")
            assert proc.poll() is None, log.read_text()
        return proc

    def alive(self) -> list[subprocess.Popen[str]]:
        return [p for p in self.procs if p.poll() is None]

    def stop(self) -> None:
        for proc in self.alive():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.wait(timeout=15)
