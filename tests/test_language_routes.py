"""`routes:`: compiling (each problem at FILE:LINE: routes[N].field), first match wins, routing keys kept secret."""
from __future__ import annotations

from typing import Any

import pytest

from engine.config import Config, load_config_text
from engine.documents.source import load_yaml_text
from engine.errors import ConfigError, InvalidFiles
from engine.language.routes import (
    Route,
    compile_routes,
    config_routes,
    in_document,
    load_routes,
    missing_routing_keys,
    pick_route,
    resolve_routing_key,
    route_name,
    route_trace,
    unreachable_routes,
)

KEY = "0123456789abcdef0123456789SECRET"  # 32 characters

ROUTES = f"""\
params: {{}}
routes:
  - match: {{repo: [acme/payments, acme/billing]}}
    service_id: PPAY001
    escalation_policy_id: PEPPAY1
  - match: {{kind: sentry-issue}}
    routing_key_env: PAGERULES_SENTRY_ROUTING_KEY
  - match: {{repo: {{regex: "^acme/web-"}}}}
    routing_key: {KEY}
    escalation_policy_id: PEPWEB1
"""


def compile_text(text: str) -> tuple[tuple[Route, ...], list[str]]:
    doc, problems = load_yaml_text(text, "pagerduty.yaml")
    assert problems == []
    routes, found = compile_routes(doc.data.get("routes"), in_document(doc.line, "pagerduty.yaml"))
    return routes, [str(p) for p in found]


def problems_of(routes_yaml: str) -> list[str]:
    return compile_text("routes:\n" + routes_yaml)[1]


def test_each_route_compiles_to_its_target_with_its_line() -> None:
    routes, problems = compile_text(ROUTES)
    assert problems == []
    assert [(r.index, r.line, r.events_api) for r in routes] == [(0, 3, False), (1, 6, True), (2, 8, True)]
    assert (routes[0].service_id, routes[0].escalation_policy_id) == ("PPAY001", "PEPPAY1")
    assert routes[1].routing_key_env == "PAGERULES_SENTRY_ROUTING_KEY" and routes[1].routing_key is None
    assert routes[2].routing_key == KEY and routes[2].escalation_policy_id == "PEPWEB1"
    assert routes[0].where == "pagerduty.yaml:3: routes[0]"


@pytest.mark.parametrize("labels, taken", [
    ({"repo": "acme/billing", "kind": "sentry-issue"}, 0),  # the first match wins, though route 1 also matches
    ({"repo": "acme/api", "kind": "sentry-issue"}, 1),
    ({"repo": "acme/web-shop", "kind": "build"}, 2),
    ({"repo": "acme/api", "kind": "build"}, "default"),
    ({}, "default"),  # a missing label is no match, not an error
])
def test_the_first_route_that_matches_takes_the_incident(labels: dict[str, str], taken: Any) -> None:
    routes, _ = compile_text(ROUTES)
    assert route_name(pick_route(routes, labels)) == taken


def test_no_routes_means_the_global_settings() -> None:
    assert compile_text("params: {}\n") == ((), [])
    assert pick_route((), {"repo": "acme/api"}) is None


def test_a_route_without_match_takes_everything_and_shadows_the_routes_after_it() -> None:
    routes, problems = compile_text("routes:\n  - service_id: PALL\n  - match: {repo: a}\n    service_id: PA\n")
    assert route_name(pick_route(routes, {"repo": "b"})) == 0
    assert problems == ["pagerduty.yaml:3: warning: routes[1]: can never be taken: routes[0] has no match "
                        "and takes every incident first"]


def test_the_trace_says_why_each_earlier_route_did_not_match() -> None:
    routes, _ = compile_text(ROUTES)
    trace = route_trace(routes, {"repo": "acme/web-shop", "kind": "build"})
    assert [(route.index, why) for route, why in trace] == [
        (0, 'match.repo: expected one of ["acme/payments", "acme/billing"], got "acme/web-shop"'),
        (1, "match.kind: expected \"sentry-issue\", got \"build\""),
        (2, None),
    ]
    assert route_trace(routes, {})[0][1] == "match.repo: missing field 'repo'"


@pytest.mark.parametrize("routes_yaml, expected", [
    ("  - match: {repo: a}\n    service_id: P1\n    servce: x\n",
     ["pagerduty.yaml:4: routes[0].servce: unknown key 'servce' (did you mean 'service_id'? known: "
      "escalation_policy_id, match, routing_key, routing_key_env, service_id)"]),
    ("  - match: {repo: {regx: a}}\n    service_id: P1\n",
     ["pagerduty.yaml:2: routes[0].match.repo: unknown matcher 'regx' (did you mean 'regex'? known: eq, exists, "
      "gt, gte, in, lt, lte, ne, not_in, regex)"]),
    ("  - service_id: P1\n  - match: {repo: {regex: '(a'}}\n    service_id: P2\n",
     ["pagerduty.yaml:3: routes[1].match.repo: regex: invalid regular expression '(a': missing ), "
      "unterminated subpattern at position 0"]),
    ("  - match: [repo]\n    service_id: P1\n",
     ["pagerduty.yaml:2: routes[0].match: expected a mapping of label matchers, got a list"]),
    ("  - match: {repo: a}\n    service_id: P1\n    routing_key_env: KEY_VAR\n",
     ["pagerduty.yaml:2: routes[0]: names a REST target (service_id) and an Events API v2 target "
      "(routing_key_env); give one"]),
    ("  - match: {repo: a}\n    routing_key: abc\n    routing_key_env: KEY_VAR\n",
     ["pagerduty.yaml:2: routes[0]: give routing_key or routing_key_env, not both"]),
    ("  - match: {repo: a}\n    escalation_policy_id: PEP1\n",
     ["pagerduty.yaml:2: routes[0]: names no target: give service_id (REST API) or routing_key / "
      "routing_key_env (Events API v2)"]),
    ("  - match: {repo: a}\n    service_id: 7\n",
     ["pagerduty.yaml:3: routes[0].service_id: expected a non-empty string, got 7"]),
    ("  - match: {repo: a}\n    routing_key_env: 'not a name'\n",
     ["pagerduty.yaml:3: routes[0].routing_key_env: 'not a name' is not an environment variable name"]),
    ("  - just-a-string\n",
     ["pagerduty.yaml:2: routes[0]: expected a mapping with match and a target, got a string"]),
    ("  - match: {repo: a}\n    routing_key: short\n",
     ["pagerduty.yaml:3: warning: routes[0].routing_key: is 5 characters; an Events API v2 integration key "
      "has 32 (PagerDuty will refuse it)"]),
])
def test_every_problem_names_the_file_line_route_and_field(routes_yaml: str, expected: list[str]) -> None:
    assert problems_of(routes_yaml) == expected


def test_every_route_is_checked_not_only_the_first_bad_one() -> None:
    problems = problems_of("  - match: {repo: a}\n  - match: {repo: b}\n    service_id: P1\n    bogus: 1\n"
                           "  - match: {repo: c}\n    service_id: P3\n")
    assert [p.split(": ")[1] for p in problems] == ["routes[0]", "routes[1].bogus"]


def test_a_bad_route_is_left_out_and_the_good_ones_kept() -> None:
    routes, problems = compile_text("routes:\n  - match: {repo: a}\n  - match: {repo: b}\n    service_id: P2\n")
    assert [r.index for r in routes] == [1] and len(problems) == 1


def test_routes_that_are_not_a_list_are_one_problem() -> None:
    assert compile_text("routes: {repo: a}\n")[1] == ["pagerduty.yaml:1: routes: expected a list of routes, "
                                                       "got a mapping"]


def test_the_routing_key_env_is_read_only_from_the_mapping_given() -> None:
    routes, _ = compile_text(ROUTES)
    assert resolve_routing_key(routes[1], {"PAGERULES_SENTRY_ROUTING_KEY": "k" * 32}) == "k" * 32
    assert resolve_routing_key(routes[1], {}) is None
    assert resolve_routing_key(routes[2], {}) == KEY
    assert resolve_routing_key(routes[0], {"PAGERULES_SENTRY_ROUTING_KEY": "k"}) is None  # a REST route has none


def test_an_unset_routing_key_env_is_an_error_for_live_mode_only() -> None:
    routes, problems = compile_text(ROUTES)
    assert problems == []  # compiling (dry run, validate) does not need the variable
    assert [str(p) for p in missing_routing_keys(routes, {"PAGERULES_SENTRY_ROUTING_KEY": ""})] == [
        "pagerduty.yaml:6: routes[1].routing_key_env: PAGERULES_SENTRY_ROUTING_KEY is not set; "
        "live mode needs the Events API v2 integration key in it"]
    assert missing_routing_keys(routes, {"PAGERULES_SENTRY_ROUTING_KEY": "k" * 32}) == []


def test_a_routing_key_is_in_no_repr_and_no_problem() -> None:
    routes, _ = compile_text(ROUTES)
    assert KEY not in repr(routes) and KEY not in str(routes)
    bad = problems_of(f"  - match: {{repo: a}}\n    routing_key: {KEY}\n    routing_key_env: V\n"
                      f"  - match: {{repo: [{KEY}]}}\n    routing_key: [{KEY}]\n")
    assert len(bad) == 2 and all(KEY not in p for p in bad)
    assert bad[1] == "pagerduty.yaml:6: routes[1].routing_key: expected a non-empty string"


# ---- routes and the Events API settings in a loaded Config ---------------------

def config(text: str, env: dict[str, str] | None = None) -> Config:
    return load_config_text(text, "conf/pagerduty.yaml", env=env or {})


def test_a_config_keeps_its_routes_as_written_and_they_compile_at_their_lines() -> None:
    loaded = config(ROUTES)
    routes = load_routes(loaded)
    assert [(r.index, r.filename, r.line) for r in routes] == [
        (0, "conf/pagerduty.yaml", 3), (1, "conf/pagerduty.yaml", 6), (2, "conf/pagerduty.yaml", 8)]
    assert route_name(pick_route(routes, {"repo": "acme/payments"})) == 0
    assert load_routes(config("params: {}\n")) == () and load_routes(Config()) == ()


def test_route_problems_from_a_config_name_its_file_and_line() -> None:
    bad = config("bind: 127.0.0.1:9\nroutes:\n  - match: {repo: a}\n    service_id: P1\n    routing_key: k\n")
    with pytest.raises(InvalidFiles) as caught:
        load_routes(bad)
    assert str(caught.value) == ("conf/pagerduty.yaml:3: routes[0]: names a REST target (service_id) and an "
                                 "Events API v2 target (routing_key); give one")
    warned = config("routes:\n  - service_id: P1\n  - match: {repo: a}\n    service_id: P2\n")
    assert len(load_routes(warned)) == 2  # a warning does not refuse the config
    assert [p.warning for p in config_routes(warned)[1]] == [True]


@pytest.mark.parametrize("text, expected", [
    ("routes:\n  - match: {repo: a}\n    service_id: P1\n    escalation: PEP\n",
     "conf/pagerduty.yaml:4: routes[0].escalation: unknown key 'escalation' (did you mean 'escalation_policy_id'? "
     "known: escalation_policy_id, match, routing_key, routing_key_env, service_id)"),
    ("routes:\n  - match: {repo: a}\n    service_id: ''\n",
     "conf/pagerduty.yaml:3: routes[0].service_id: '' should be non-empty"),
    ("routes:\n  - match: {repo: a}\n    routing_key: [" + KEY + "]\n",
     "conf/pagerduty.yaml:3: routes[0].routing_key: must be text"),
    ("routes: {routing_key: " + KEY + "}\n",
     "conf/pagerduty.yaml:1: routes: expected a list or null, got {\"routing_key\": \"[routing key]\"}"),
])
def test_a_config_with_a_malformed_route_is_refused_at_load_without_the_key(text: str, expected: str) -> None:
    with pytest.raises(InvalidFiles) as caught:
        config(text)
    assert str(caught.value) == expected and KEY not in str(caught.value)


def test_events_api_settings_come_from_the_environment_and_stay_out_of_repr() -> None:
    defaults = config("")
    assert (defaults.routing_key, defaults.change_routing_key) == (None, None)
    assert defaults.events_url == "https://events.pagerduty.com"
    change_key = "c" * 32
    loaded = config("events_url: http://127.0.0.1:1\n", env={
        "PAGERDUTY_ROUTING_KEY": KEY, "PAGERDUTY_CHANGE_ROUTING_KEY": change_key,
        "PAGERDUTY_EVENTS_URL": "http://127.0.0.1:8765"})
    assert (loaded.routing_key, loaded.change_routing_key, loaded.events_url) == (
        KEY, change_key, "http://127.0.0.1:8765")  # the environment beats the file
    with_routes = config(ROUTES, env={"PAGERDUTY_ROUTING_KEY": KEY})
    for shown in (repr(loaded), str(loaded), repr(with_routes), repr(load_routes(with_routes))):
        assert KEY not in shown and change_key not in shown


def test_a_routing_key_with_a_stray_newline_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        config("", env={"PAGERDUTY_ROUTING_KEY": KEY + "\n"})
    assert str(caught.value) == ("invalid configuration:\n  PAGERDUTY_ROUTING_KEY: contains a newline, tab or space "
                                 "at the ends; copy the value again without it")
    with pytest.raises(InvalidFiles, match="change_routing_key: must be text"):
        config(f"change_routing_key: [{KEY}]\n")


def test_a_route_no_rules_labels_can_reach_is_a_warning() -> None:
    routes, _ = compile_text(ROUTES + "  - match: {repo: acme/x, team: {exists: false}}\n    service_id: PX\n")
    rules = [{"repo", "branch"}, {"repo", "issue"}]  # no rule sets 'kind'
    assert [str(p) for p in unreachable_routes(routes, rules)] == [
        "pagerduty.yaml:6: warning: routes[1]: can never be taken: no rule's labels include 'kind' "
        "(labels the rules set: branch, issue, repo)"]
    assert unreachable_routes(routes, rules + [{"kind", "project"}]) == []
    split = compile_text("routes:\n  - match: {repo: a, kind: b}\n    service_id: P1\n")[0]
    assert len(unreachable_routes(split, [{"repo"}, {"kind"}])) == 1  # both labels on one rule, or never
