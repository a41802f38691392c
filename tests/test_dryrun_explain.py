"""`explain` (engine/dryrun/explain.py): every rule's verdict and reason, and the outcomes a dry run carries on."""
from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from builders import make_config, rules_from, shipped_rules

from engine.dispatch.dispatcher import Dispatcher, DryRun
from engine.dispatch.pipeline import Pipeline
from engine.dryrun.explain import explain_all, explain_event, format_report
from engine.events.stream import read_events

KEY = "codespar-acme-backend-api-build-349"


def build(number: int, status: str) -> dict[str, Any]:
    return {"type": "build", "id": f"b{number}", "repo": "acme/backend-api", "branch": "main",
            "build_number": number, "status": status}


@pytest.fixture
def pipeline() -> Pipeline:
    config = make_config()
    return Pipeline(shipped_rules(config), Dispatcher(config, DryRun()))


def reports(pipeline: Pipeline, text: str) -> list[dict[str, Any]]:
    return list(explain_all(read_events(io.StringIO(text), "stdin"), pipeline))


def test_a_failed_build_names_the_rule_that_matched_and_why_the_recovery_did_not(pipeline: Pipeline) -> None:
    report = explain_event(build(349, "failed"), pipeline)
    assert report["rules"] == [
        {"rule": "build-failed", "kind": "trigger", "verdict": "matched", "reason": None},
        {"rule": "build-fixed", "kind": "recovery", "verdict": "no match",
         "reason": 'match.status: expected "passed", got "failed"'}]
    assert report["outcomes"] == [{"action": "trigger", "status": "planned", "incident_key": KEY,
                                   "title": "[CodeSpar] High: acme/backend-api CI build #349 failed on main",
                                   "severity": "high", "rule": "build-failed", "event_id": "b349",
                                   "route": "default"}]


def test_open_incidents_carry_to_the_next_event_as_in_a_dry_run(pipeline: Pipeline) -> None:
    first, second = reports(pipeline, "\n".join(json.dumps(build(n, s)) for n, s in ((349, "failed"),
                                                                                    (350, "passed"))))
    assert [o["status"] for o in first["outcomes"]] == ["planned"]
    assert second["outcomes"] == [{"action": "resolve", "status": "planned", "incident_key": KEY,
                                   "rule": "build-fixed", "event_id": "b350", "message": "Build #350 passed on main",
                                   "route": "default"}]
    assert format_report(second).splitlines()[-1] == f"  -> resolve planned: {KEY}: Build #350 passed on main"


def test_an_event_that_fails_its_schema_is_rejected_with_every_reason_and_no_outcomes(pipeline: Pipeline) -> None:
    report = explain_event({"type": "build", "id": "x", "repo": "acme/api", "branch": "main", "status": "failed"},
                           pipeline)
    assert report == {"event_id": "x", "type": "build", "rejected": "build: 'build_number' is a required property"}
    assert format_report(report) == "event x (build)\n  rejected: build: 'build_number' is a required property"


def test_unreadable_input_is_reported_rejected_and_the_next_event_still_explained(pipeline: Pipeline) -> None:
    bad, good = reports(pipeline, "{bad\n" + json.dumps(build(7, "failed")))
    assert bad == {"event_id": None, "type": None,
                   "rejected": "stdin line 1: not valid JSON: Expecting property name enclosed in double quotes "
                               "(column 2)"}
    assert good["event_id"] == "b7" and good["outcomes"][0]["status"] == "planned"


def test_the_text_report_lines_up_rules_kinds_and_verdicts(pipeline: Pipeline) -> None:
    assert format_report(explain_event(build(349, "failed"), pipeline)).splitlines() == [
        "event b349 (build)",
        "  build-failed  trigger   matched",
        '  build-fixed   recovery  no match: match.status: expected "passed", got "failed"',
        f"  -> trigger planned: {KEY} (high) [CodeSpar] High: acme/backend-api CI build #349 failed on main"]


def test_a_type_no_rule_handles_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    config = make_config()
    ruleset = rules_from("triggers:\n  - id: only-deploys\n    on: deploy.health\n    severity: high\n"
                         "    title: x\n    incident_key: x\n", config)
    pipeline = Pipeline(ruleset, Dispatcher(config, DryRun()))
    with caplog.at_level(logging.WARNING, "pagerules"):
        found = reports(pipeline, "\n".join(json.dumps(build(n, "failed")) for n in (1, 2)))
    assert [r["rules"] for r in found] == [[], []]
    assert format_report(found[0]).splitlines()[1] == "  no rules for event type build"
    assert [r.getMessage() for r in caplog.records].count(
        "no rules handle event type build: nothing will page for it (is its rule pack on? --packs build)") == 1


def test_rules_the_index_skips_are_still_listed_with_the_matcher_that_ruled_them_out() -> None:
    text = "triggers:\n" + "".join(
        f"  - id: x{n}\n    on: build\n    match: {{repo: acme/x{n}, status: failed}}\n    severity: high\n"
        f"    title: \"x{n} failed\"\n    incident_key: \"x{n}-{{{{ event.build_number }}}}\"\n" for n in range(1, 4))
    config = make_config()
    ruleset = rules_from(text, config)
    event = {"type": "build", "id": "b1", "repo": "acme/x2", "branch": "main", "build_number": 7, "status": "failed"}
    assert set(ruleset.ruled_out(event)) == {"x1", "x3"}  # the index keeps this event from meeting them
    report = explain_event(event, Pipeline(ruleset, Dispatcher(config, DryRun())))
    no_match = {"kind": "trigger", "verdict": "no match"}
    assert report["rules"] == [
        {"rule": "x1", **no_match, "reason": 'match.repo: expected "acme/x1", got "acme/x2"'},
        {"rule": "x2", "kind": "trigger", "verdict": "matched", "reason": None},
        {"rule": "x3", **no_match, "reason": 'match.repo: expected "acme/x3", got "acme/x2"'}]


ROUTES = """routes:
  - match: {repo: acme/payments}
    service_id: PPAY001
  - match: {kind: deploy}
    routing_key: R0UT1NGKEY0123456789abcdefABCDEF
"""


def routed() -> Pipeline:
    config = make_config(ROUTES)
    return Pipeline(shipped_rules(config), Dispatcher(config, DryRun()))


def deploy_event(eid: str, passed: int, rate: float, repo: str = "acme/backend-api") -> dict[str, Any]:
    return {"type": "deploy.health", "id": eid, "repo": repo, "deploy": {"version": "v2.4.1"}, "error_rate": rate,
            "baseline_error_rate": 0.01, "sustained_minutes": 0, "checks": {"passed": passed, "total": 10}}


def test_change_rules_are_explained_like_the_others_with_their_route() -> None:
    report = explain_event(deploy_event("d2", 10, 0.01), routed())
    assert report["rules"][-1] == {"rule": "deploy-confirmed-change", "kind": "change", "verdict": "matched",
                                   "reason": None}
    assert report["outcomes"][-1] == {
        "action": "change", "status": "planned", "rule": "deploy-confirmed-change", "event_id": "d2",
        "summary": "acme/backend-api v2.4.1 deployed to unknown: confirmed healthy (10/10 checks)", "route": 1}
    [trace] = report["routes"]
    assert (trace["action"], trace["rule"], trace["incident_key"], trace["taken"]) == (
        "change", "deploy-confirmed-change", None, 1)


def test_each_trigger_shows_every_route_tried_why_not_and_the_one_taken() -> None:
    pipeline = routed()
    report = explain_event(deploy_event("d1", 3, 0.06), pipeline)
    where = f"{pipeline.dispatcher.routes[0].filename}:"
    assert report["routes"] == [{
        "action": "trigger", "rule": "deploy-critical-spike", "incident_key": "codespar-acme-backend-api-deploy-v2.4.1",
        "tried": [{"route": 0, "where": where + "2", "target": "service PPAY001",
                   "reason": 'match.repo: expected "acme/payments", got "acme/backend-api"'},
                  {"route": 1, "where": where + "4", "target": "Events API v2 (key in the file)", "reason": None}],
        "taken": 1}]
    text = format_report(report)
    assert text.splitlines()[5:8] == [
        "  route for codespar-acme-backend-api-deploy-v2.4.1:",
        f'    routes[0] ({where}2, service PPAY001): no match: match.repo: expected "acme/payments", '
        'got "acme/backend-api"',
        f"    routes[1] ({where}4, Events API v2 (key in the file)): taken"]
    assert "R0UT1NGKEY" not in text + json.dumps(report)  # a routing key is a secret


def test_an_incident_no_route_takes_says_default() -> None:
    config = make_config("routes:\n  - match: {repo: acme/payments}\n    service_id: PPAY001\n")
    pipeline = Pipeline(shipped_rules(config), Dispatcher(config, DryRun()))
    report = explain_event(deploy_event("d1", 3, 0.06), pipeline)
    assert [t["taken"] for t in report["routes"]] == ["default"]
    assert format_report(report).splitlines()[-2] == "    default: no route matched; the global settings"


def test_with_no_routes_the_text_has_no_route_lines_and_the_json_says_default(pipeline: Pipeline) -> None:
    report = explain_event(build(349, "failed"), pipeline)
    assert report["routes"] == [{"action": "trigger", "rule": "build-failed", "incident_key": KEY, "tried": [],
                                 "taken": "default"}]
    assert not any("route" in line for line in format_report(report).splitlines())


def test_a_time_that_does_not_parse_is_said_and_ignored(pipeline: Pipeline) -> None:
    report = explain_event({**build(349, "failed"), "time": "yesterday"}, pipeline)
    assert format_report(report).splitlines()[1] == (
        "  time: 'yesterday' is not ISO 8601 (e.g. 2026-12-03T14:00:00Z); ignored, so the time it is handled "
        "stands in for it")
    assert report["outcomes"][0]["status"] == "planned"  # the page still goes out
    assert "time" not in explain_event({**build(350, "failed"), "time": "2026-12-03T14:00:00Z"}, pipeline)


def test_a_trigger_a_given_silence_mutes_names_it_and_an_unknown_one_only_by_id() -> None:
    from engine.dispatch.dispatcher import MemoryView
    from engine.language.silences import make_silence

    config = make_config()
    quiet = make_silence({"repo": "acme/backend-api"}, created_by="ada", comment="db upgrade", starts_at=0,
                         ends_at=4e9, created_at=0, silence_id="s-1")
    view = MemoryView(silences=[quiet])
    pipeline = Pipeline(shipped_rules(config), Dispatcher(config, DryRun(view)))
    report = explain_event(build(349, "failed"), pipeline)
    assert [o["status"] for o in report["outcomes"]] == ["silenced"]
    assert report["silenced"] == [{"incident_key": KEY, "silence_id": "s-1", "match": {"repo": "acme/backend-api"},
                                   "starts_at": "1970-01-01T00:00:00Z", "ends_at": "2096-10-02T07:06:40Z",
                                   "weekly": None, "created_by": "ada", "comment": "db upgrade"}]
    assert format_report(report).splitlines()[-1] == (
        f"  silenced: {KEY} by silence s-1 (repo=acme/backend-api; until 2096-10-02T07:06:40Z; by ada: db "
        "upgrade); nothing would be sent, a resolve still goes through")
    # a silence the view does not hold (not a dry run's): the line still names its id
    assert format_report({**report, "silenced": [{"incident_key": KEY, "silence_id": "s-1"}]}).splitlines()[-1] \
        == f"  silenced: {KEY} by silence s-1"
    resolved = explain_event(build(350, "passed"), pipeline)
    assert [(o["action"], o["status"]) for o in resolved["outcomes"]] == [("resolve", "nothing_open")]
    assert resolved["silenced"] == []
