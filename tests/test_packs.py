"""Rule packs on real payloads from tests/fixtures/corpus: their cases, the contract's example, and end to end."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import ROOT, Daemon, dry_run, make_config, shipped_rules
from click.testing import CliRunner
from fake_pagerduty import FakePagerDuty

from cli import main
from engine.events.types import load_event_types

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


# GitHub's community examples (npm @octokit/webhooks-examples, copied unchanged; tests/fixtures/README.md).
OCTOKIT = ROOT / "tests" / "fixtures" / "octokit-webhooks-examples"
OCTOKIT_EVENTS = ("workflow_run", "workflow_job", "check_run", "check_suite", "status", "deployment_status")
# What each example gives, in the package's order: t = a trigger, r = a resolve (nothing is open, so
# nothing_open), - = no outcome at all. Only one example fails on a branch that pages (workflow_job 1: job
# 'linters' failed on main); check_run 1 fails on 'changes', not the default branch (master).
OCTOKIT_EXPECTED = {
    "api.github.com": {"workflow_run": "-rr--", "workflow_job": "-tr-----", "check_run": "---------",
                       "check_suite": "-r-------", "status": "rrrr", "deployment_status": "r-rr"},
    "ghes-31": {"workflow_run": "-", "check_run": "-", "check_suite": "-", "status": "r", "deployment_status": "r"},
    "ghes-32": {"workflow_run": "-", "check_run": "-", "check_suite": "-", "status": "r", "deployment_status": "r"},
    "ghes-33": {"workflow_run": "-", "workflow_job": "-", "check_run": "-", "check_suite": "-", "status": "r",
                "deployment_status": "r"},
    "ghes-34": {"workflow_run": "-", "workflow_job": "-", "check_run": "---", "check_suite": "----", "status": "rr",
                "deployment_status": "rr"},
    "ghes-35": {"workflow_run": "-", "workflow_job": "-", "check_run": "---", "check_suite": "----", "status": "rr",
                "deployment_status": "rr"},
}


def _octokit_examples(variant: str) -> dict[str, list[dict[str, Any]]]:
    index = json.loads((OCTOKIT / variant / "index.json").read_text(encoding="utf-8"))
    return {entry["name"]: entry["examples"] for entry in index if entry["name"] in OCTOKIT_EVENTS}


def _kind(lines: list[dict[str, Any]]) -> str:
    assert all(line["action"] != "error" for line in lines), lines
    assert len(lines) <= 1, lines
    return {"trigger": "t", "resolve": "r"}[lines[0]["action"]] if lines else "-"


@pytest.mark.parametrize("variant", sorted(OCTOKIT_EXPECTED))
def test_the_github_pack_over_every_octokit_example(variant: str) -> None:
    config = make_config(packs=["github"])
    rules = shipped_rules(config)
    examples = _octokit_examples(variant)
    assert sorted(examples) == sorted(OCTOKIT_EXPECTED[variant]), "the package's event types changed"
    got = {}
    for name, payloads in examples.items():
        event_type = load_event_types()[f"github.{name}"]
        for payload in payloads:
            event = {**payload, "type": f"github.{name}"}
            assert event_type.problems(event) == (), (name, event_type.problems(event))
        got[name] = "".join(_kind(dry_run([{**p, "type": f"github.{name}"}], rules, config)) for p in payloads)
    assert got == OCTOKIT_EXPECTED[variant]
    resolves = [line for name, payloads in examples.items() for p in payloads
                for line in dry_run([{**p, "type": f"github.{name}"}], rules, config) if line["action"] == "resolve"]
    assert all(line["status"] == "nothing_open" for line in resolves)


def test_the_one_failing_octokit_job_pages_with_its_names() -> None:
    config = make_config(packs=["github"])
    job = _octokit_examples("api.github.com")["workflow_job"][1]
    [line] = dry_run([{**job, "type": "github.workflow_job"}], shipped_rules(config), config)
    assert (line["status"], line["severity"], line["incident_key"], line["title"]) == (
        "planned", "high", "codespar-Codertocat-Hello-World-gha-job-2202229078-linters",
        "[CodeSpar] High: Codertocat/Hello-World job linters of workflow CodeQL failed on main")


# Every corpus payload of a type some pack handles is valid and gives no error line (issue 12: real
# deliveries were rejected for fields their sender never promised).
HANDLED = {"github": ("workflow_run", "workflow_job", "check_run", "check_suite", "status", "deployment_status"),
           "sentry": ("event_alert", "issue", "metric_alert"), "alertmanager": ("firing", "resolved")}


def _corpus_files() -> list[tuple[str, str, Path]]:
    found = []
    for source, folders in HANDLED.items():
        for folder in folders:
            event_type = "alertmanager" if source == "alertmanager" else f"{source}.{folder}"
            found += [(source, event_type, path) for path in sorted((CORPUS / source / folder).glob("*.json"))]
    return found


@pytest.mark.parametrize("source, event_type, path", _corpus_files(), ids=lambda v: getattr(v, "name", str(v)))
def test_every_corpus_payload_of_a_handled_type_is_taken_without_error(source: str, event_type: str,
                                                                       path: Path) -> None:
    config = make_config(packs=[source], params={"build_branches": ["main", "master"]})
    event = {**json.loads(path.read_text(encoding="utf-8")), "type": event_type}
    lines = dry_run([event], shipped_rules(config), config)
    assert [line for line in lines if line["action"] == "error"] == []


def test_real_deliveries_without_alertname_or_issue_id_page_through_the_daemon(fake: FakePagerDuty,
                                                                              tmp_path: Path) -> None:
    # issue 12 items 2 and 3: both were moved to failed/ and never paged
    daemon = Daemon(tmp_path, fake, PAGERULES_PACKS="alertmanager,sentry")
    am = CORPUS / "alertmanager"
    daemon.drop("a.alertmanager.json", (am / "firing" / "debian_alertmanager_0.25.0_firing_no_alertname.json")
                .read_text())
    daemon.drop("b.sentry.event_alert.json",
                (CORPUS / "sentry" / "event_alert" / "zulip_event_for_exception_python.json").read_text())
    assert daemon.once().returncode == 0
    assert list((daemon.events / "failed").glob("*")) == []
    assert fake.open_keys() == ["codespar-alertmanager-abc2a212d50e", "codespar-sentry-issue-1635244907"]
    daemon.drop("c.alertmanager.json", (am / "resolved" / "debian_alertmanager_0.25.0_resolved_no_alertname.json")
                .read_text())
    assert daemon.once().returncode == 0
    assert fake.open_keys() == ["codespar-sentry-issue-1635244907"]
