"""Golden cases: the shipped rules against every row of the README's "The shipped rules", to the character."""
from __future__ import annotations

from typing import Any

import pytest
from builders import (
    GOLDEN,
    RECOVERIES,
    build,
    deploy,
    dry_run,
    escalation,
    make_config,
    rollback,
    sentry,
    shipped_rules,
    triggers,
)

from engine.dispatch.dispatcher import MemoryView
from engine.evaluation.actions import ChangeAction
from engine.evaluation.evaluate import evaluate


@pytest.mark.parametrize("rule, event, severity, title, key", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_trigger_row_of_the_contract(rule: str, event: dict[str, Any], severity: str, title: str, key: str) -> None:
    lines = dry_run([event])
    assert triggers(lines) == [(rule, severity, title, key)]
    assert lines[0]["status"] == "planned" and lines[0]["event_id"] == event["id"]


@pytest.mark.parametrize("rule, opening, recovery, keys, message", RECOVERIES, ids=[r[0] for r in RECOVERIES])
def test_recovery_row_of_the_contract(rule: str, opening: list[dict[str, Any]], recovery: dict[str, Any],
                                      keys: list[str], message: str) -> None:
    lines = dry_run([*opening, recovery])
    resolves = [o for o in lines if o["action"] == "resolve"]
    assert [(o["rule"], o["status"], o["incident_key"], o["message"]) for o in resolves] == \
        [(rule, "planned", key, message) for key in keys]


# Change events: (rule, events, summary). A link goes with the change only when the event has a URL.
CHANGES = [
    ("deploy-confirmed-change", [deploy(passed=10, total=10, rate=0.011)],
     "acme/backend-api v2.4.1 deployed to production: confirmed healthy (10/10 checks)"),
    ("rollback-succeeded-change", [rollback()],
     "acme/backend-api rolled back from v2.4.1 to v2.4.0: health checks passed"),
]


@pytest.mark.parametrize("rule, events, summary", CHANGES, ids=[c[0] for c in CHANGES])
def test_change_event_of_the_shipped_rules(rule: str, events: list[dict[str, Any]], summary: str) -> None:
    lines = dry_run(events)
    assert [o for o in lines if o["action"] == "change"] == [
        {"action": "change", "status": "planned", "rule": rule, "event_id": events[-1]["id"], "summary": summary,
         "route": "default"}]


def test_shipped_change_events_link_to_the_event_url_only_when_it_has_one() -> None:
    ruleset = shipped_rules()
    url = "https://deploys.example.com/acme/backend-api/42"
    with_url = [a for a in evaluate({**deploy(passed=10, total=10), "url": url}, ruleset, MemoryView())
                if isinstance(a, ChangeAction)]
    without = [a for a in evaluate(rollback(), ruleset, MemoryView()) if isinstance(a, ChangeAction)]
    assert [c.links for c in with_url] == [({"href": url, "text": "acme/backend-api v2.4.1"},)]
    assert [c.links for c in without] == [()]
    assert with_url[0].labels == {"kind": "deploy", "repo": "acme/backend-api", "version": "v2.4.1"}
    assert with_url[0].details == {"repo": "acme/backend-api", "version": "v2.4.1", "environment": "production",
                                   "checks": "10/10"}


def test_every_shipped_rule_has_a_golden_case() -> None:
    covered = {g[0] for g in GOLDEN} | {r[0] for r in RECOVERIES} | {c[0] for c in CHANGES}
    assert {rule.id for rule in shipped_rules().all_rules()} == covered


NEAR_MISSES = [
    ("ratio just under 5x, not sustained", deploy(rate=0.0499), []),
    ("ratio 5x exactly pages critical", deploy(rate=0.05), ["deploy-critical-spike"]),
    ("2x for 9 minutes is not sustained", deploy(rate=0.032, minutes=9), []),
    ("just under 2x for 10 minutes", deploy(rate=0.0199, minutes=10), []),
    ("no errors at all with a zero baseline", deploy(rate=0.0, base=0.0), []),
    ("level error is not fatal", sentry(level="error"), []),
    ("fatal but not after a deploy", sentry(post=False), []),
    ("no new errors", sentry(count=0), []),
    ("a failed build on another branch", build(branch="feature/x"), []),
]


@pytest.mark.parametrize("case, event, rules", NEAR_MISSES, ids=[n[0] for n in NEAR_MISSES])
def test_nearest_non_matches_do_not_page(case: str, event: dict[str, Any], rules: list[str]) -> None:
    assert [t[0] for t in triggers(dry_run([event]))] == rules


def test_spike_and_sustained_on_one_deploy_are_one_critical_incident() -> None:
    lines = dry_run([deploy(rate=0.06, minutes=12)])
    assert triggers(lines) == [("deploy-critical-spike", "critical",
                                "[CodeSpar] Critical: acme/backend-api deploy v2.4.1 — error rate 6.0x baseline",
                                "codespar-acme-backend-api-deploy-v2.4.1")]


def test_health_checks_short_of_all_passing_resolve_nothing_and_send_no_change() -> None:
    lines = dry_run([deploy(), deploy(passed=9, total=10, rate=0.01, eid="d2")])
    assert [o["action"] for o in lines] == ["trigger"]


def test_recovery_leaves_other_repos_versions_and_branches_open() -> None:
    lines = dry_run([
        deploy(), deploy(version="v2.5.0", eid="d2"), deploy(repo="acme/web", eid="d3"),
        build(349), build(12, branch="release", eid="b2"),
        deploy(passed=10, total=10, rate=0.01, eid="d4"),
        build(351, "passed", eid="b3"),
    ], config=make_config("params: {build_branches: [main, release]}"))
    resolved = [o["incident_key"] for o in lines if o["action"] == "resolve"]
    assert resolved == ["codespar-acme-backend-api-deploy-v2.4.1", "codespar-acme-backend-api-build-349"]


def test_rollback_that_failed_resolves_nothing_and_sends_no_change() -> None:
    lines = dry_run([deploy(), rollback(status="failed", eid="r2"), rollback(health=False, eid="r3")])
    assert [o["action"] for o in lines] == ["trigger"]


def test_recovery_with_nothing_open_says_so() -> None:
    [line] = dry_run([build(350, "passed")])
    assert line == {"action": "resolve", "status": "nothing_open", "incident_key": None, "rule": "build-fixed",
                    "event_id": "b1", "message": "Build #350 passed on main", "route": "default"}


def test_repeated_failure_of_one_build_is_deduplicated() -> None:
    lines = dry_run([build(349), build(349, eid="b2")])
    assert [o["status"] for o in lines] == ["planned", "deduplicated"]


def test_the_build_branch_list_comes_from_config() -> None:
    config = make_config("params: {build_branches: [main, release/*]}")
    assert triggers(dry_run([build(branch="release/*")], config=config))
    assert not triggers(dry_run([build(branch="main")], config=make_config("params: {build_branches: [trunk]}")))


def test_escalation_severity_comes_from_the_event() -> None:
    assert triggers(dry_run([escalation("medium")], config=make_config("severity_threshold: low")))[0][1] == "medium"
