"""Rule packs on real payloads from tests/fixtures/corpus: their cases, the contract's example, and end to end."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT
from fake_pagerduty import FakePagerDuty
from test_watch import Daemon

from cli import main

CORPUS = ROOT / "tests" / "fixtures" / "corpus"
PACK_CASES = ROOT / "tests" / "packs"
PACKS = ["github", "sentry", "alertmanager"]


@pytest.mark.parametrize("pack", PACKS)
def test_each_packs_cases_pass_on_the_corpus(pack: str) -> None:
    result = CliRunner().invoke(main, ["test", str(PACK_CASES / f"{pack}.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].endswith("passed, 0 failed")


@pytest.mark.parametrize("pack", PACKS)
def test_every_pack_rule_has_a_case(pack: str) -> None:
    folder = ROOT / "rules" / "packs" / pack
    rules = {r["id"] for path in folder.glob("*.yaml") for section in ("triggers", "recoveries")
             for r in yaml.safe_load(path.read_text()).get(section, [])}
    named = {o.get("rule") for case in yaml.safe_load((PACK_CASES / f"{pack}.yaml").read_text())["cases"]
             for o in case["expect"]}
    assert rules <= named, rules - named


def test_an_enabled_packs_own_tests_folder_runs_by_default(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    cases = tmp_path / "rules" / "packs" / "sentry" / "tests"
    cases.mkdir()
    (cases / "mine.yaml").write_text((PACK_CASES / "sentry.yaml").read_text().replace(
        "../fixtures/corpus/", str(CORPUS) + "/"))
    result = CliRunner().invoke(main, ["test", "--rules", str(tmp_path / "rules"), "--packs", "sentry"])
    assert result.exit_code == 0 and "packs/sentry/tests/mine.yaml" in result.output, result.output


def test_the_contracts_example_command() -> None:
    payload = (CORPUS / "github" / "workflow_run" / "captured_delivery_completed_failure_main.json").read_text()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "process", "--dry-run", "--packs", "github",
                           "--type", "github.workflow_run"], input=payload, capture_output=True, text=True,
                          env=clean, timeout=60)
    assert proc.returncode == 0
    line = json.loads(proc.stdout)
    assert (line["status"], line["title"]) == (
        "planned", "[CodeSpar] High: ayush8116-tech/chat-app-project workflow Deno failed on main (run #52)")


def test_a_type_with_no_rules_says_which_pack_to_enable() -> None:
    payload = (CORPUS / "sentry" / "issue" / "zulip_issue_created_exception.json").read_text()
    result = CliRunner().invoke(main, ["process", "--dry-run", "--type", "sentry.issue"], input=payload)
    assert result.exit_code == 0 and result.stdout == ""
    assert "no rules handle event type sentry.issue: nothing will page for it (is its rule pack on? --packs sentry)" \
        in result.stderr


def test_an_alertmanager_batch_through_the_daemon_is_one_incident_per_alert(fake: FakePagerDuty,
                                                                            tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake, PAGERULES_PACKS="alertmanager")
    shutil_copy = (CORPUS / "alertmanager" / "firing" / "prometheus_msteams_firing_page_19_alerts.json").read_text()
    daemon.drop("group-1.alertmanager.json", shutil_copy)
    assert daemon.once().returncode == 0
    keys = {i["incident_key"] for i in fake.incidents.values()}
    assert len(fake.incidents) == len(keys) == 19
    assert all(i["urgency"] == "high" and i["title"].startswith(
        "[CodeSpar] Critical: NodeEvent firing — Server is down.")
               for i in fake.incidents.values())
