"""Evaluation: errors that name the rule and event, fallbacks that never lose a page, the gates."""
from __future__ import annotations

import hashlib

import pytest
from builders import build, deploy, dry_run, escalation, make_config, rules_from, sentry

from engine.dispatch.dispatcher import MemoryView
from engine.evaluation.actions import (
    MAX_INCIDENT_KEY,
    ChangeAction,
    ErrorAction,
    ResolveAction,
    TriggerAction,
    full_key,
)
from engine.evaluation.evaluate import evaluate, event_time

TEMPLATE_RULE = """
triggers:
  - id: t
    on: build
    severity: high
    title: "{title}"
    incident_key: "{key}"
    details:
      summary: "{detail}"
"""


def one_rule(title: str = "{{ event.repo }}", key: str = "k-{{ event.build_number }}",
             detail: str = "{{ event.repo }}") -> str:
    return TEMPLATE_RULE.format(title=title, key=key, detail=detail)


def test_zero_baseline_with_errors_is_an_error_line_naming_rule_and_event() -> None:
    lines = dry_run([deploy(rate=0.05, base=0.0, eid="z1"), build(eid="after")])
    errors = [o for o in lines if o["action"] == "error"]
    assert errors == [
        {"action": "error", "status": "rule_error", "event_id": "z1", "rule": "deploy-critical-spike",
         "error": "rule deploy-critical-spike: vars.ratio: division by zero"},
    ]  # the sustained rule stops at sustained_minutes (0 < 10) before it divides
    assert lines[-1]["event_id"] == "after" and lines[-1]["status"] == "planned"


def test_missing_field_in_a_matcher_is_an_error_not_a_silent_miss() -> None:
    rules = rules_from("""
triggers:
  - id: env
    on: build
    match: {env.name: prod}
    severity: high
    title: x
    incident_key: x
""")
    [line] = dry_run([build()], rules)
    assert line["error"] == "rule env: match.env.name: missing field 'env.name'"


def test_exists_guard_makes_a_missing_field_a_plain_miss() -> None:
    rules = rules_from("""
triggers:
  - id: env
    on: build
    match: {env: {exists: true, eq: prod}}
    severity: high
    title: x
    incident_key: x
""")
    assert dry_run([build()], rules) == []
    assert dry_run([{**build(), "env": "prod"}], rules)[0]["status"] == "planned"


def test_broken_title_still_pages_with_a_fallback_title_and_an_error_line() -> None:
    rules = rules_from(one_rule(title="{{ event.nope.deeper }}"))
    error, trigger = dry_run([build()], rules)
    assert error["error"] == "rule t: title: missing field 'nope'"
    assert trigger["status"] == "planned"
    assert trigger["title"] == "[CodeSpar] High: rule t fired but its title failed: rule t: title: missing field 'nope'"


def test_broken_details_still_pages() -> None:
    rules = rules_from(one_rule(detail="{{ 1 / 0 }}"))
    lines = dry_run([build()], rules)
    assert [(o["action"], o.get("error")) for o in lines] == [
        ("error", "rule t: details.summary: division by zero"), ("trigger", None)]


def test_broken_key_still_pages_under_a_per_rule_fallback_key() -> None:
    rules = rules_from(one_rule(key="{{ event.missing }}"))
    lines = dry_run([build(), build(350, eid="b2")], rules)
    assert [(o["action"], o.get("status"), o.get("incident_key")) for o in lines] == [
        ("error", "rule_error", None), ("trigger", "planned", "codespar-t-template-error"),
        ("error", "rule_error", None), ("trigger", "deduplicated", "codespar-t-template-error")]


def test_event_data_is_never_rendered_as_a_template() -> None:
    event = {**escalation(), "summary": "{{ 7*7 }} {% raw %}"}
    [line] = dry_run([event])
    assert line["title"] == "[CodeSpar] Critical: acme/backend-api — {{ 7*7 }} {% raw %}"


def test_sandbox_refuses_attribute_access_at_run_time() -> None:
    rules = rules_from(one_rule(title="{{ params.build_branches.append }}"))  # a list only when it runs
    error, trigger = dry_run([build()], rules)
    assert error["error"] == ("rule t: title: refused by the sandbox: access to attribute 'append' of 'list' "
                              "object is unsafe.")
    assert trigger["status"] == "planned"


def test_a_power_bomb_is_an_error_line_naming_the_rule_and_still_pages() -> None:
    rules = rules_from(one_rule(title="{{ event.build_number ** 100000000 }}"))
    error, trigger = dry_run([build()], rules)
    assert error["error"] == ("rule t: title: refused by the sandbox: 349 ** 100000000 is too large "
                              "(more than 4096 bits)")
    assert trigger["status"] == "planned"


def test_long_keys_are_shortened_deterministically() -> None:
    rendered = "x" * 300
    key = full_key("codespar", rendered)
    whole = f"codespar-{rendered}"
    assert len(key) == MAX_INCIDENT_KEY
    assert key == whole[:238] + "-" + hashlib.sha256(whole.encode()).hexdigest()[:16]
    assert full_key("codespar", rendered) == key and full_key("codespar", rendered + "y") != key
    assert full_key("codespar", "short") == "codespar-short"


def test_prefix_comes_from_config() -> None:
    [line] = dry_run([build()], config=make_config("dedup_key_prefix: acme"))
    assert line["incident_key"] == "acme-acme-backend-api-build-349"


def test_title_format_comes_from_config() -> None:
    [line] = dry_run([build()], config=make_config('title_format: "{severity} | {title}"'))
    assert line["title"] == "high | acme/backend-api CI build #349 failed on main"


def test_slug_turns_unsafe_characters_into_dashes() -> None:
    [line] = dry_run([sentry(issue="ab/c d:é#1")])
    assert line["incident_key"] == "codespar-acme-backend-api-sentry-ab-c-d---1"


def test_below_threshold_does_not_open_an_incident() -> None:
    lines = dry_run([escalation("medium"), {"type": "incident.resolved", "id": "x", "repo": "acme/backend-api",
                                            "incident_id": "INC-42"}])
    assert [(o["action"], o["status"]) for o in lines] == [("trigger", "below_threshold"),
                                                           ("resolve", "nothing_open")]


def test_disabled_and_auto_resolve_off_gate_their_actions() -> None:
    off = make_config(env={"PAGERDUTY_ENABLED": "false"})
    assert [o["status"] for o in dry_run([build(), build(350, "passed")], config=off)] == ["disabled", "disabled"]
    manual = make_config(env={"PAGERDUTY_AUTO_RESOLVE": "no"})
    assert [o["status"] for o in dry_run([build(), build(350, "passed")], config=manual)] == [
        "planned", "auto_resolve_off"]


def test_an_event_never_resolves_what_it_triggers() -> None:
    rules = rules_from("""
triggers:
  - id: t
    on: build
    severity: high
    title: x
    incident_key: "k"
    labels: {kind: build}
recoveries:
  - id: r
    on: build
    resolves: [{labels: {kind: build}}]
    message: m
""")
    lines = dry_run([build(), build(eid="b2")], rules)
    assert [(o["action"], o["status"]) for o in lines] == [
        ("trigger", "planned"), ("resolve", "nothing_open"), ("trigger", "deduplicated"), ("resolve", "nothing_open")]


def test_evaluate_is_pure_and_does_not_touch_the_view() -> None:
    rules = rules_from(one_rule())
    view = MemoryView()
    first = evaluate(build(), rules, view)
    assert evaluate(build(), rules, view) == first and len(view) == 0


def test_events_only_meet_the_rules_of_their_type(ruleset) -> None:  # type: ignore[no-untyped-def]
    assert set(ruleset.triggers) == {"build", "deploy.health", "sentry.errors", "incident.escalation"}
    assert [r.id for r in ruleset.triggers["build"]] == ["build-failed"]


CHANGE_RULES = """
triggers:
  - id: t
    on: build
    match: {status: failed}
    severity: high
    title: "{{ event.repo }} failed"
    incident_key: "k-{{ event.build_number }}"
    links:
      - {href: "{{ event.url }}", text: "build #{{ event.build_number }}"}
      - {href: "{{ event.get('docs', '') }}"}
      - {href: "{{ event.get('other', '') }}", text: "{{ event.nope }}"}
changes:
  - id: c
    on: build
    match: {status: passed}
    summary: "{{ event.repo }} #{{ event.build_number }} passed{{ '' if 1 / event.get('n', 1) else '' }}"
    details: {branch: "{{ event.branch }}"}
    links:
      - {href: "{{ event.url }}"}
"""


def _actions(event: dict[str, object]) -> list[object]:
    return evaluate(event, rules_from(CHANGE_RULES), MemoryView())


def test_a_matching_change_rule_makes_a_change_action_with_the_event_time() -> None:
    (change,) = _actions({**build(status="passed"), "time": "2026-12-03T15:00:00+01:00"})
    assert change == ChangeAction("c", "b1", "acme/backend-api #349 passed", {"repo": "acme/backend-api"},
                                  {"branch": "main"}, ({"href": "https://ci.example.com/b/349"},),
                                  source="acme/backend-api", timestamp="2026-12-03T14:00:00Z")


def test_a_change_summary_that_fails_still_sends_the_change_with_a_fallback_naming_rule_and_error() -> None:
    error, change = _actions({**build(status="passed"), "n": 0, "time": "nonsense"})
    assert isinstance(error, ErrorAction) and isinstance(change, ChangeAction)
    assert (error.rule, error.error) == ("c", "rule c: summary: division by zero")
    assert change.summary == f"rule c matched but its summary failed: {error.error}"
    assert change.timestamp is None  # a time that does not parse is as if the event gave none


def test_trigger_links_keep_web_urls_and_drop_the_rest_with_an_error_line() -> None:
    actions = _actions({**build(), "docs": "file:///etc/passwd", "other": "https://wiki.example.com/x"})
    errors = [a.error for a in actions if isinstance(a, ErrorAction)]
    (trigger,) = [a for a in actions if isinstance(a, TriggerAction)]
    assert errors == ["rule t: links[1].href: not an http(s) URL (its scheme is 'file'); the link is left out",
                      "rule t: links[2].text: missing field 'nope'"]
    assert trigger.links == ({"href": "https://ci.example.com/b/349", "text": "build #349"},
                             {"href": "https://wiki.example.com/x"})
    assert trigger.title == "[CodeSpar] High: acme/backend-api failed"  # the page goes out


def test_an_empty_href_is_no_link_and_no_error() -> None:
    (trigger,) = _actions(build())
    assert isinstance(trigger, TriggerAction) and len(trigger.links) == 1


def test_trigger_and_resolve_carry_the_event_time_naive_means_utc() -> None:
    rules = rules_from("""
triggers:
  - id: t
    on: build
    match: {status: failed}
    severity: high
    title: x
    incident_key: k
recoveries:
  - id: r
    on: build
    match: {status: passed}
    resolves: [{incident_key: k}]
    message: m
""")
    (trigger,) = evaluate({**build(), "time": "2026-12-03T14:00:00"}, rules, MemoryView())
    (resolve,) = evaluate({**build(status="passed"), "time": "2026-12-03T14:00:00Z"}, rules, MemoryView())
    assert isinstance(trigger, TriggerAction) and isinstance(resolve, ResolveAction)
    assert trigger.at == resolve.at == 1796306400.0
    (untimed,) = evaluate(build(), rules, MemoryView())
    assert isinstance(untimed, TriggerAction) and untimed.at is None


@pytest.mark.parametrize("written, expected", [
    ("2026-12-03T14:00:00Z", 1796306400.0), ("2026-12-03T16:00:00+02:00", 1796306400.0),
    ("2026-12-03 14:00:00", 1796306400.0), ("2026-12-03T14:00:00.5Z", 1796306400.5),
    ("yesterday", None), ("", None), (1796306400, None), (None, None), (True, None),
    # past the years ISO 8601 can write back (found in review: it crashed process and lost the next events)
    ("9999-12-31T23:59:59-01:00", None), ("0001-01-01T00:00:00+01:00", None), ("1969-12-31T23:59:59Z", None)])
def test_event_time_reads_iso_8601_and_nothing_else(written: object, expected: float | None) -> None:
    assert event_time(written) == expected
