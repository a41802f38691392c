"""`pagerules process` and `watch` live, end to end, with Events API v2 routes: the CLI in a subprocess
against the fake PagerDuty (REST and Events API on one server, every body checked against PagerDuty's
OpenAPI files), and the routing keys looked for in everything it wrote."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from builders import ROOT, Daemon, build, wait_for
from fake_pagerduty import FROM_EMAIL, POLICY, SERVICE, TOKEN, FakePagerDuty
from pd_spec import body_errors

KEY = "routingkeyforpayments00000000001"  # 32 characters, like an integration key
DEFAULT_KEY = "routingkeyforthedefault000000002"
KEY_ENV = "PAGERULES_PAYMENTS_ROUTING_KEY"
EVENTS_ROUTE = f"""routes:
  - match: {{repo: acme/payments}}
    routing_key_env: {KEY_ENV}
"""
REST_ROUTES = """routes:
  - match: {repo: acme/payments}
    service_id: PPAY001
    escalation_policy_id: PEPPAY1
  - match: {repo: acme/web}
    service_id: PWEB001
"""


def env_for(fake: FakePagerDuty, tmp_path: Path, **more: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
    return {**clean, "PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL,
            "PAGERDUTY_SERVICE_ID": SERVICE, "PAGERDUTY_ESCALATION_POLICY_ID": POLICY,
            "PAGERDUTY_API_URL": fake.url, "PAGERDUTY_EVENTS_URL": fake.url,  # type: ignore[attr-defined]
            "PAGERULES_STATE": str(tmp_path / "state.db"), "PAGERULES_RETRY_BACKOFF": "0.05",
            KEY_ENV: KEY, **more}


def cli(args: list[str], env: dict[str, str], events: list[dict[str, Any]] | None = None
        ) -> subprocess.CompletedProcess[str]:
    stdin = "".join(json.dumps(e) + "\n" for e in events or [])
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120)


def lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def config_file(tmp_path: Path, yaml: str) -> str:
    path = tmp_path / "pagerduty.yaml"
    path.write_text(yaml)
    return str(path)


def state_rows(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return "\n".join(json.dumps(row) for table in ("audit", "incidents")
                         for row in db.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608 - two names


def test_an_events_api_route_triggers_deduplicates_and_resolves_with_one_call_each(fake: FakePagerDuty,
                                                                                   tmp_path: Path) -> None:
    env = env_for(fake, tmp_path)
    config = config_file(tmp_path, EVENTS_ROUTE)
    storm = [build(349, repo="acme/payments", eid=f"p{n}") for n in range(20)]
    first = cli(["process", "--config", config], env, storm)
    assert first.returncode == 0, first.stderr
    out = lines(first)
    assert [(o["status"], o["route"]) for o in out] == [("created", 0)] + [("deduplicated", 0)] * 19
    key = out[0]["incident_key"]
    assert len(fake.events_calls()) == 1 and fake.open_dedup_keys() == {KEY: [key]}
    body = fake.events_calls()[0]["body"]
    assert (body["dedup_key"], body["payload"]["summary"], body["payload"]["source"], body["payload"]["severity"]) \
        == (key, out[0]["title"], "acme/payments", "error")
    second = cli(["process", "--config", config], env, [build(350, "passed", repo="acme/payments", eid="p99")])
    assert second.returncode == 0, second.stderr
    assert [(o["action"], o["status"], o["route"]) for o in lines(second)] == [("resolve", "resolved", 0)]
    assert [c["body"]["event_action"] for c in fake.events_calls()] == ["trigger", "resolve"]
    assert fake.open_dedup_keys() == {} and fake.rejected_events() == []
    assert [c for c in fake.calls() if not c["path"].startswith("/v2/")] == []  # REST never called
    assert "INFO pagerduty: POST /v2/enqueue trigger 202" in first.stderr


def test_two_rest_routes_go_to_their_two_services_and_the_rest_to_the_default(fake: FakePagerDuty,
                                                                              tmp_path: Path) -> None:
    env = env_for(fake, tmp_path)
    result = cli(["process", "--config", config_file(tmp_path, REST_ROUTES)], env,
                 [build(1, repo="acme/payments", eid="p1"), build(2, repo="acme/web", eid="w1"), build(3, eid="d1"),
                  build(4, "passed", repo="acme/payments", eid="p2")])
    assert result.returncode == 0, result.stderr
    out = lines(result)
    assert [(o["action"], o["status"], o["route"]) for o in out] == [
        ("trigger", "created", 0), ("trigger", "created", 1), ("trigger", "created", "default"),
        ("resolve", "resolved", 0)]
    by_service = {i["incident_key"]: (i["service"]["id"], i["status"]) for i in fake.incidents.values()}
    assert by_service == {out[0]["incident_key"]: ("PPAY001", "resolved"),
                          out[1]["incident_key"]: ("PWEB001", "triggered"),
                          out[2]["incident_key"]: (SERVICE, "triggered")}
    policies = [c["body"]["incident"]["escalation_policy"]["id"] for c in fake.calls("POST", "/incidents")]
    assert policies == ["PEPPAY1", POLICY, POLICY]
    assert all(body_errors(c["method"], c["path"], c["body"]) == [] for c in fake.calls() if c["body"])


def test_events_api_only_needs_no_rest_setting_and_an_unset_key_variable_exits_2_at_its_line(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    env = {k: v for k, v in env_for(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY).items()
           if k not in ("PAGERDUTY_API_TOKEN", "PAGERDUTY_FROM_EMAIL", "PAGERDUTY_SERVICE_ID",
                        "PAGERDUTY_ESCALATION_POLICY_ID")}
    config = config_file(tmp_path, EVENTS_ROUTE)
    ran = cli(["process", "--config", config], env, [build(1, repo="acme/payments", eid="p1"), build(2, eid="d1")])
    assert ran.returncode == 0, ran.stderr
    assert [(o["status"], o["route"]) for o in lines(ran)] == [("created", 0), ("created", "default")]
    assert sorted(fake.open_dedup_keys()) == sorted([KEY, DEFAULT_KEY]) and fake.calls("POST", "/incidents") == []
    unset = {k: v for k, v in env.items() if k != KEY_ENV}
    refused = cli(["process", "--config", config], unset, [build(3, repo="acme/payments", eid="p3")])
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"pagerduty.yaml:2: routes[0].routing_key_env: {KEY_ENV} is not set" in refused.stderr
    assert len(fake.events_calls()) == 2  # nothing sent, to the default least of all
    for result in (ran, refused):
        assert KEY not in result.stdout + result.stderr and DEFAULT_KEY not in result.stdout + result.stderr


def test_an_events_api_outage_in_watch_holds_the_file_and_sends_it_later(fake: FakePagerDuty,
                                                                         tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake, PAGERDUTY_EVENTS_URL=fake.url, **{KEY_ENV: KEY})  # type: ignore[attr-defined]
    with (tmp_path / "pd.yaml").open("a") as config:
        config.write(EVENTS_ROUTE)
    fake.faults = {"status": 503, "count": 10**6, "prefix": "/v2/"}  # the Events API only; REST answers
    daemon.start()
    daemon.drop("0.json", [build(1, repo="acme/payments", eid="p1"), build(1, eid="d1")])
    wait_for(lambda: "0.json stays in events: PagerDuty unreachable (try 2)" in daemon.log.read_text(), 20,
             "the file to be held for a retry")
    assert (daemon.events / "0.json").exists() and not daemon.done("0.json")
    assert fake.open_dedup_keys() == {}
    fake.faults = {}
    wait_for(lambda: daemon.done("0.json"), 30, "the file after the outage")
    assert daemon.stop() == 0
    assert (daemon.events / "processed" / "0.json").exists()
    assert list(fake.open_dedup_keys()) == [KEY] and len(fake.open_dedup_keys()[KEY]) == 1
    assert len(fake.calls("POST", "/incidents")) == 1  # the REST incident was created once, never again
    assert len([c for c in fake.events_calls() if c["body"]["event_action"] == "trigger"]) >= 3  # 2 held, 1 sent
    written = daemon.log.read_text() + state_rows(tmp_path / "state.db")
    written += "".join(p.read_text() for p in daemon.events.rglob("*") if p.is_file() and p.suffix != ".json")
    assert KEY not in written


def test_no_routing_key_in_any_output_log_audit_or_state_row(fake: FakePagerDuty, tmp_path: Path) -> None:
    env = env_for(fake, tmp_path, PAGERDUTY_ROUTING_KEY=DEFAULT_KEY, PAGERULES_RETRIES="0")
    config = config_file(tmp_path, EVENTS_ROUTE)
    runs = []
    fake.faults = {"status": 400, "count": 1, "prefix": "/v2/"}
    runs.append(cli(["process", "--config", config], env, [build(1, repo="acme/payments", eid="p1")]))
    fake.faults = {"status": 503, "count": 1, "prefix": "/v2/"}
    runs.append(cli(["process", "--config", config], env, [build(2, eid="d1")]))
    fake.faults = {}
    runs.append(cli(["process", "--config", config], env,
                    [build(3, repo="acme/payments", eid="p2"), build(4, eid="d2")]))
    key = lines(runs[-1])[0]["incident_key"]
    runs.append(cli(["ack", "--config", config, "--key", key], env))
    runs.append(cli(["resolve", "--config", config, "--key", key], env))
    runs.append(cli(["process", "--config", config], env, [build(5, "passed", eid="d3")]))
    runs.append(cli(["audit", "--config", config, "--json"], env))
    runs.append(cli(["validate", "--config", config], env))
    runs.append(cli(["explain", "--config", config], env, [build(6, repo="acme/payments", eid="p6")]))
    codes = [r.returncode for r in runs]
    assert codes[:7] == [1, 1, 0, 0, 0, 0, 0], [r.stderr[-500:] for r in runs]
    assert [o["status"] for r in runs[:3] for o in lines(r)] == ["failed", "failed", "created", "created"]
    assert runs[3].stdout.startswith(f"acknowledged: {key}") and runs[4].stdout.startswith(f"resolved: {key}")
    audit = [row["action"] for row in json.loads(runs[6].stdout)]
    assert {"create_failed", "create", "acknowledged", "resolved"} <= set(audit)
    written = "\n".join(r.stdout + r.stderr for r in runs) + state_rows(tmp_path / "state.db")
    for secret in (KEY, DEFAULT_KEY, TOKEN):
        assert secret not in written
    assert len([c for c in fake.events_calls()]) == 7  # the two refused, then 2 triggers, ack, resolve, resolve
