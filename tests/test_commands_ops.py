"""The operator commands end to end (`python cli.py ...` against the fake PagerDuty): on-call per
project by its route, `check` per route, and no routing key or token in any output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builders import ROOT
from fake_pagerduty import FROM_EMAIL, POLICY, ROUTING_KEY, SERVICE, TOKEN, FakePagerDuty

WRITTEN_KEY = "writtenkey0123456789abcdef012345"  # 32 characters, written in the file
ROUTES = f"""routes:
  - match: {{kind: sentry-issue}}
    routing_key_env: SENTRY_ROUTING_KEY
  - match: {{repo: [acme/payments, acme/billing]}}
    service_id: {SERVICE}
    escalation_policy_id: PEPPAY1
  - match: {{repo: acme/mobile}}
    routing_key: {WRITTEN_KEY}
  - match: {{repo: acme/web}}
    service_id: PNOPE
"""


def write_config(tmp_path: Path, text: str = ROUTES) -> str:
    path = tmp_path / "pd.yaml"
    path.write_text(text)
    return str(path)


def cli(fake: FakePagerDuty, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
    live = {"PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL, "PAGERDUTY_SERVICE_ID": SERVICE,
            "PAGERDUTY_ESCALATION_POLICY_ID": POLICY, "PAGERDUTY_API_URL": fake.url,  # type: ignore[attr-defined]
            "PAGERULES_RETRIES": "0", "SENTRY_ROUTING_KEY": ROUTING_KEY}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True,
                          env={**clean, **live, **env}, timeout=120)


def asked_policies(fake: FakePagerDuty) -> list[list[str]]:
    return [[v for k, v in c["query"] if k == "escalation_policy_ids[]"] for c in fake.calls("GET", "/oncalls")]


def no_secret_in(*results: subprocess.CompletedProcess[str]) -> bool:
    text = "".join(r.stdout + r.stderr for r in results)
    return all(secret not in text for secret in (ROUTING_KEY, WRITTEN_KEY, TOKEN))


def test_oncall_for_two_projects_on_two_routes(fake: FakePagerDuty, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    payments = cli(fake, "oncall", "--repo", "acme/payments", "--json", "--config", config)
    shop = cli(fake, "oncall", "--repo", "acme/shop", "--json", "--config", config)
    assert (payments.returncode, shop.returncode) == (0, 0), payments.stderr + shop.stderr
    pay, other = json.loads(payments.stdout), json.loads(shop.stdout)
    assert {k: pay[k] for k in ("repo", "route", "escalation_policy_id", "also_routes")} == {
        "repo": "acme/payments", "route": 1, "escalation_policy_id": "PEPPAY1", "also_routes": [0]}
    assert pay["why"] == f"{config}:4: routes[1] is the first route that matches repo=acme/payments"
    assert pay["also"] == f"{config}:2: routes[0] takes those of its incidents that match on kind"
    assert {k: other[k] for k in ("repo", "route", "escalation_policy_id")} == {
        "repo": "acme/shop", "route": "default", "escalation_policy_id": POLICY}
    assert [p["name"] for p in pay["levels"]] == ["Cy Payments"]  # PEPPAY1's on-call, not the default's
    assert [p["name"] for p in other["levels"]] == ["Ada Oncall", "Bo Backup"]  # lowest level first
    # each project's route's policy is the one PagerDuty was asked for
    assert asked_policies(fake) == [["PEPPAY1"], [POLICY]]
    assert no_secret_in(payments, shop)


def test_oncall_repo_human_text_names_the_route(fake: FakePagerDuty, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = cli(fake, "oncall", "--repo", "acme/billing", "--config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"acme/billing: {config}:4: routes[1] is the first route that matches repo=acme/billing, escalation policy "
        "PEPPAY1",
        f"also: {config}:2: routes[0] takes those of its incidents that match on kind",
        "level 1: Cy Payments <cy@example.com>, Payments primary, until 2026-11-28T12:00:00Z"]


def test_oncall_of_an_events_api_route_without_a_policy_names_the_key_place_and_exits_1(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = cli(fake, "oncall", "--repo", "acme/mobile", "--json", "--config", config)
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert (body["route"], body["escalation_policy_id"], body["levels"]) == (2, None, [])
    assert body["unknown"] == (
        f"{config}:7: routes[2] sends to an Events API v2 integration (the routing key written at {config}:8); the "
        "service behind a routing key, and so its on-call, is unknown to pagerules: add escalation_policy_id to "
        "routes[2] to name whose on-call to show")
    assert fake.calls("GET", "/oncalls") == []  # nobody to ask
    assert no_secret_in(result)


def test_oncall_without_repo_is_the_global_policy_as_before(fake: FakePagerDuty, tmp_path: Path) -> None:
    result = cli(fake, "oncall", "--json", "--config", write_config(tmp_path))
    assert result.returncode == 0
    assert [p["name"] for p in json.loads(result.stdout)] == ["Ada Oncall", "Bo Backup"]
    assert asked_policies(fake) == [[POLICY]]


def test_oncall_with_a_bad_route_config_exits_2_at_its_line(fake: FakePagerDuty, tmp_path: Path) -> None:
    config = write_config(tmp_path, "routes:\n  - match: {repo: acme/x}\n    service_id: P1\n"
                                    "    routing_key_env: SENTRY_ROUTING_KEY\n")
    result = cli(fake, "oncall", "--repo", "acme/x", "--config", config)
    assert result.returncode == 2
    assert result.stderr == (f"pagerules: {config}:2: routes[0]: names a REST target (service_id) and an Events API "
                             "v2 target (routing_key_env); give one\n")
    assert fake.calls() == []
    empty = cli(fake, "oncall", "--repo", " ", "--config", config)
    assert (empty.returncode, empty.stderr) == (2, "pagerules: --repo: expected a repository (owner/name), got "
                                                   "empty text\n")


def test_check_fails_naming_the_route_whose_service_does_not_exist(fake: FakePagerDuty, tmp_path: Path) -> None:
    config = write_config(tmp_path, ROUTES.replace("PEPPAY1", "PEPNOPE"))  # a policy the fake does not know
    result = cli(fake, "check", "--config", config)
    assert result.returncode == 1
    unverifiable = "PagerDuty has no API to verify a routing key without sending an event, so check sends none"
    assert result.stdout.splitlines() == [
        "ok   token: user token of Oncall Bot <oncall-bot@example.com>",
        "ok   from email: oncall-bot@example.com is Oncall Bot",
        "ok   service: PSVC001 is Backend API",
        "ok   escalation policy: PEP0001 is Backend",
        f"ok   routes[0] routing key $SENTRY_ROUTING_KEY: set, 32 characters ({unverifiable})",
        "ok   routes[1] service PSVC001: Backend API",
        f"FAIL routes[1] escalation policy PEPNOPE: {config}:6: routes[1].escalation_policy_id: no escalation policy "
        "PEPNOPE in this account, or the token cannot see it: fix escalation_policy_id in routes[1]",
        f"ok   routes[2] routing key written at {config}:8: set, 32 characters ({unverifiable})",
        f"FAIL routes[3] service PNOPE: {config}:10: routes[3].service_id: no service PNOPE in this account, or the "
        "token cannot see it: fix service_id in routes[3]"]
    assert len(fake.calls("GET", f"/services/{SERVICE}")) == 1  # the global service and routes[1]'s: asked once
    as_json = cli(fake, "check", "--json", "--config", config, SENTRY_ROUTING_KEY="")
    assert as_json.returncode == 1
    sentry = next(c for c in json.loads(as_json.stdout) if c["name"] == "routes[0] routing key $SENTRY_ROUTING_KEY")
    assert sentry == {"name": "routes[0] routing key $SENTRY_ROUTING_KEY", "ok": False, "message": (
        f"{config}:3: routes[0].routing_key_env: SENTRY_ROUTING_KEY is not set: export it with the Events API v2 "
        "integration key (copy the Integration Key of the service's Events API v2 integration)")}
    assert no_secret_in(result, as_json)


def test_check_passes_with_good_routes(fake: FakePagerDuty, tmp_path: Path) -> None:
    config = write_config(tmp_path, f"routes:\n  - match: {{repo: acme/payments}}\n    service_id: {SERVICE}\n"
                                    f"    escalation_policy_id: {POLICY}\n")
    result = cli(fake, "check", "--config", config, PAGERDUTY_ROUTING_KEY=ROUTING_KEY)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[4:] == [
        f"ok   routes[0] service {SERVICE}: Backend API", f"ok   routes[0] escalation policy {POLICY}: Backend",
        "ok   default routing key PAGERDUTY_ROUTING_KEY: set, 32 characters (PagerDuty has no API to verify a "
        "routing key without sending an event, so check sends none)"]
    assert no_secret_in(result)


def test_oncall_needs_only_the_token_when_the_route_names_its_policy(fake: FakePagerDuty, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    # an Events API default: no REST service, From user or global policy set
    bare = {"PAGERDUTY_FROM_EMAIL": "", "PAGERDUTY_SERVICE_ID": "", "PAGERDUTY_ESCALATION_POLICY_ID": "",
            "PAGERDUTY_ROUTING_KEY": ROUTING_KEY}
    pay = cli(fake, "oncall", "--repo", "acme/payments", "--json", "--config", config, **bare)
    assert pay.returncode == 0, pay.stderr
    assert json.loads(pay.stdout)["escalation_policy_id"] == "PEPPAY1"
    shop = cli(fake, "oncall", "--repo", "acme/shop", "--config", config, **bare)
    assert (shop.returncode, shop.stdout.splitlines()[-1]) == (
        1, "PAGERDUTY_ESCALATION_POLICY_ID is not set: set it to name whose on-call to show")
    tokenless = cli(fake, "oncall", "--repo", "acme/payments", "--config", config, **bare, PAGERDUTY_API_TOKEN="")
    assert (tokenless.returncode, tokenless.stderr) == (
        2, f"pagerules: oncall needs PAGERDUTY_API_TOKEN: set it in the environment or in {config}\n")
    assert asked_policies(fake) == [["PEPPAY1"]]
    assert no_secret_in(pay, shop, tokenless)
