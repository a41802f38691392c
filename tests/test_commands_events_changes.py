"""Change events end to end: `pagerules process` live, the CLI in a subprocess against the fake PagerDuty
(which checks every Events API body against PagerDuty's events-v2 OpenAPI file), and the change routing key
looked for in everything the run wrote."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from builders import ROOT, build
from fake_pagerduty import FROM_EMAIL, POLICY, SERVICE, TOKEN, FakePagerDuty

CHANGE_KEY = "changeroutingkey0000000000000042"  # 32 characters, like an integration key
RULES = """
changes:
  - id: build-green
    on: build
    match: {status: passed}
    summary: "{{ event.repo }} build #{{ event.build_number }} passed on {{ event.branch }}"
    details:
      branch: "{{ event.branch }}"
    links:
      - {href: "{{ event.url }}", text: "build #{{ event.build_number }}"}
"""
TIME = "2026-12-03T15:00:00+01:00"


def env_for(fake: FakePagerDuty, tmp_path: Path, **more: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
    return {**clean, "PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL,
            "PAGERDUTY_SERVICE_ID": SERVICE, "PAGERDUTY_ESCALATION_POLICY_ID": POLICY,
            "PAGERDUTY_API_URL": fake.url, "PAGERDUTY_EVENTS_URL": fake.url,  # type: ignore[attr-defined]
            "PAGERULES_STATE": str(tmp_path / "state.db"), "PAGERULES_RETRY_BACKOFF": "0.05", **more}


def process(tmp_path: Path, env: dict[str, str], events: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "changes.yaml").write_text(RULES)
    stdin = "".join(json.dumps(e) + "\n" for e in events)
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "process", "--rules", str(rules)], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120)


def lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def audit_rows(path: Path) -> str:
    if not path.exists():
        return ""
    with sqlite3.connect(path) as db:
        return "\n".join(json.dumps(row) for row in db.execute("SELECT * FROM audit").fetchall())


def passed() -> dict[str, Any]:
    return {**build(350, "passed", eid="g1"), "time": TIME}


def test_a_change_rule_sends_one_change_event_with_its_links_details_and_time(fake: FakePagerDuty,
                                                                             tmp_path: Path) -> None:
    result = process(tmp_path, env_for(fake, tmp_path, PAGERDUTY_CHANGE_ROUTING_KEY=CHANGE_KEY), [passed()])
    assert result.returncode == 0, result.stderr
    assert lines(result) == [{"action": "change", "status": "sent", "rule": "build-green", "event_id": "g1",
                              "summary": "acme/backend-api build #350 passed on main", "route": "default"}]
    assert [c["path"] for c in fake.events_calls()] == ["/v2/change/enqueue"] and not fake.calls("POST", "/incidents")
    assert fake.rejected_events() == []  # the fake validated the body against the events-v2 OpenAPI file
    assert fake.change_events() == [{
        "routing_key": CHANGE_KEY,
        "payload": {"summary": "acme/backend-api build #350 passed on main", "source": "acme/backend-api",
                    "timestamp": "2026-12-03T14:00:00Z", "custom_details": {"branch": "main"}},
        "links": [{"href": "https://ci.example.com/b/350", "text": "build #350"}]}]
    written = result.stdout + result.stderr + audit_rows(tmp_path / "state.db")
    assert CHANGE_KEY not in written and "build-green" in audit_rows(tmp_path / "state.db")


def test_pagerduty_enabled_false_holds_the_change_event(fake: FakePagerDuty, tmp_path: Path) -> None:
    env = env_for(fake, tmp_path, PAGERDUTY_CHANGE_ROUTING_KEY=CHANGE_KEY, PAGERDUTY_ENABLED="false")
    result = process(tmp_path, env, [passed()])
    assert result.returncode == 0, result.stderr
    assert [(o["action"], o["status"]) for o in lines(result)] == [("change", "disabled")]
    assert fake.events_calls() == [] and CHANGE_KEY not in result.stdout + result.stderr


def test_without_a_change_routing_key_the_change_is_disabled_and_says_which_setting(fake: FakePagerDuty,
                                                                                  tmp_path: Path) -> None:
    result = process(tmp_path, env_for(fake, tmp_path), [passed()])
    assert result.returncode == 0, result.stderr
    [change] = lines(result)
    assert change == {"action": "change", "status": "disabled", "rule": "build-green", "event_id": "g1",
                      "summary": "acme/backend-api build #350 passed on main", "route": "default",
                      "error": "no routing key for change events: set PAGERDUTY_CHANGE_ROUTING_KEY or route them "
                               "to an Events API v2 route"}
    assert fake.events_calls() == []


ROUTE_KEY = "routingkeyforpayments00000000077"
ROUTED = """routes:
  - match: {repo: acme/payments}
    routing_key_env: PAGERULES_PAYMENTS_ROUTING_KEY
"""
TRIGGER_WITH_LINKS = """
triggers:
  - id: build-red
    on: build
    match: {status: failed}
    severity: high
    title: "{{ event.repo }} build #{{ event.build_number }} failed"
    incident_key: "{{ event.repo | slug }}-build-{{ event.build_number }}"
    labels: {repo: "{{ event.repo }}"}
    links:
      - {href: "{{ event.url }}", text: "build #{{ event.build_number }}"}
      - {href: "{{ event.get('runbook', '') }}"}
"""


def test_a_change_takes_the_route_its_labels_match_and_a_trigger_sends_its_links(fake: FakePagerDuty,
                                                                                tmp_path: Path) -> None:
    config = tmp_path / "pagerduty.yaml"
    config.write_text(ROUTED)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "red.yaml").write_text(TRIGGER_WITH_LINKS)
    env = env_for(fake, tmp_path, PAGERDUTY_CHANGE_ROUTING_KEY=CHANGE_KEY, PAGERULES_PAYMENTS_ROUTING_KEY=ROUTE_KEY,
                  PAGERULES_CONFIG=str(config))
    payments = {**passed(), "repo": "acme/payments"}
    failed = {**build(352, repo="acme/payments", eid="f1"), "runbook": "javascript:alert(1)"}
    result = process(tmp_path, env, [payments, passed(), failed])
    assert result.returncode == 1, result.stderr  # the refused link is an error line; the page still goes out
    out = lines(result)
    assert [(o["action"], o["status"], o.get("route")) for o in out] == [
        ("change", "sent", 0), ("change", "sent", "default"), ("error", "rule_error", None), ("trigger", "created", 0)]
    assert out[2]["error"] == ("rule build-red: links[1].href: not an http(s) URL (its scheme is 'javascript'); "
                               "the link is left out")
    assert [c["routing_key"] for c in fake.change_events()] == [ROUTE_KEY, CHANGE_KEY]
    [alert] = fake.events_calls("/v2/enqueue")
    assert alert["body"]["links"] == [{"href": "https://ci.example.com/b/352", "text": "build #352"}]
    assert fake.rejected_events() == []
    written = result.stdout + result.stderr + audit_rows(tmp_path / "state.db")
    assert ROUTE_KEY not in written and CHANGE_KEY not in written
