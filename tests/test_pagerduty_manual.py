"""engine.pagerduty.manual: whose on-call a repo's incidents reach (the route picked and why) and `check`
per route, with PagerDuty mocked by `responses`."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from builders import ROOT, make_config

from engine.config import Config
from engine.dispatch.dispatcher import DryRun, MemoryView
from engine.errors import InvalidFiles
from engine.language.silences import make_silence
from engine.pagerduty import manual
from engine.pagerduty.backend import make_client

URL = "https://pd.test"
FILE = str(ROOT / "pagerduty.yaml")
WRITTEN_KEY = "writtenkey0123456789abcdef012345"  # 32 characters
ENV_KEY = "envroutingkey0123456789abcdef012"
ROUTES = f"""routes:
  - match: {{kind: sentry-issue}}
    routing_key_env: SENTRY_ROUTING_KEY
  - match: {{repo: [acme/payments, acme/billing]}}
    service_id: PPAY001
    escalation_policy_id: PEPPAY1
  - match: {{repo: acme/web}}
    service_id: PWEB001
  - match: {{repo: acme/mobile}}
    routing_key: {WRITTEN_KEY}
  - match: {{repo: acme/ios}}
    routing_key_env: IOS_ROUTING_KEY
    escalation_policy_id: PEPIOS1
  - match: {{repo: acme/payments, severity: critical}}
    service_id: PPAYCRIT
"""
GLOBAL = {"PAGERDUTY_API_TOKEN": "tok-secret-123", "PAGERDUTY_FROM_EMAIL": "bot@example.com",
          "PAGERDUTY_SERVICE_ID": "PSVC001", "PAGERDUTY_ESCALATION_POLICY_ID": "PEPGLOB", "PAGERDUTY_API_URL": URL,
          "PAGERULES_RETRIES": "0"}


def config(yaml: str = ROUTES, **env: str) -> Config:
    return make_config(yaml, env={**GLOBAL, **env})


SENTRY_TAKES_SOME = f"{FILE}:2: routes[0] takes those of its incidents that match on kind"


@pytest.mark.parametrize("repo, route, policy, why", [
    ("acme/payments", 1, "PEPPAY1", f"{FILE}:4: routes[1] is the first route that matches repo=acme/payments"),
    ("acme/billing", 1, "PEPPAY1", f"{FILE}:4: routes[1] is the first route that matches repo=acme/billing"),
    ("acme/web", 2, "PEPGLOB", f"{FILE}:7: routes[2] is the first route that matches repo=acme/web; it names no "
                               "escalation_policy_id: the global one (PAGERDUTY_ESCALATION_POLICY_ID)"),
    ("acme/ios", 4, "PEPIOS1", f"{FILE}:11: routes[4] is the first route that matches repo=acme/ios"),
    ("someone/else", "default", "PEPGLOB", "no route matches repo=someone/else: the global settings "
                                           "(PAGERDUTY_ESCALATION_POLICY_ID)"),
])
def test_a_repo_takes_the_first_route_its_repo_label_alone_matches(repo: str, route: int | str, policy: str,
                                                                   why: str) -> None:
    target = manual.project_target(config(), repo)
    assert (target.repo, target.route, target.escalation_policy_id, target.why, target.unknown) == \
        (repo, route, policy, why, None)
    # the sentry route matches on kind only: it takes this repo's Sentry incidents, and the answer says so
    assert (target.also_routes, target.also) == ((0,), SENTRY_TAKES_SOME)


def test_an_earlier_route_that_also_needs_another_label_is_named_not_taken() -> None:
    yaml = """routes:
  - match: {repo: acme/payments, severity: critical}
    service_id: PPAYCRIT
    escalation_policy_id: PEPCRIT
  - match: {repo: acme/billing, kind: build-failed}
    service_id: PBILL
  - match: {repo: acme/payments}
    service_id: PPAY001
    escalation_policy_id: PEPPAY1
"""
    target = manual.project_target(config(yaml), "acme/payments")
    assert (target.route, target.escalation_policy_id, target.also_routes) == (2, "PEPPAY1", (0,))
    assert target.also == f"{FILE}:2: routes[0] takes those of its incidents that match on severity"
    other = manual.project_target(config(yaml), "acme/shop")  # no repo condition holds: nothing else to say
    assert (other.route, other.also_routes, other.also) == ("default", (), None)


def test_no_routes_is_the_global_policy() -> None:
    target = manual.project_target(config(""), "acme/shop")
    assert (target.route, target.escalation_policy_id, target.why, target.also) == (
        "default", "PEPGLOB", "no routes are configured: the global settings (PAGERDUTY_ESCALATION_POLICY_ID)", None)


def test_an_events_api_route_without_a_policy_says_which_key_never_the_key() -> None:
    written = manual.project_target(config(), "acme/mobile")
    assert (written.route, written.escalation_policy_id) == (3, None)
    assert written.unknown == (
        f"{FILE}:9: routes[3] sends to an Events API v2 integration (the routing key written at {FILE}:10); "
        "the service behind a routing key, and so its on-call, is unknown to pagerules: add escalation_policy_id "
        "to routes[3] to name whose on-call to show")
    yaml = "routes:\n  - match: {repo: acme/mobile}\n    routing_key_env: MOBILE_ROUTING_KEY\n"
    by_env = manual.project_target(config(yaml, MOBILE_ROUTING_KEY=ENV_KEY), "acme/mobile")
    assert by_env.unknown == (
        f"{FILE}:2: routes[0] sends to an Events API v2 integration (routing key in $MOBILE_ROUTING_KEY); the "
        "service behind a routing key, and so its on-call, is unknown to pagerules: add escalation_policy_id to "
        "routes[0] to name whose on-call to show")
    assert WRITTEN_KEY not in repr(written) + repr(manual.project_target(config(), "acme/ios"))
    assert ENV_KEY not in repr(by_env)


def test_a_bad_route_config_is_refused_at_its_line() -> None:
    bad = make_config("routes:\n  - match: {repo: acme/x}\n    service_id: P1\n    routing_key_env: K\n", env=GLOBAL)
    with pytest.raises(InvalidFiles) as caught:
        manual.project_target(bad, "acme/x")
    assert str(caught.value) == (f"{FILE}:2: routes[0]: names a REST target (service_id) and an Events API v2 "
                                 "target (routing_key_env); give one")


def _oncalls(policy: str, name: str) -> None:
    responses.get(f"{URL}/oncalls", match=[responses.matchers.query_param_matcher(
        {"escalation_policy_ids[]": policy, "include[]": "users", "earliest": "true"})],
        json={"oncalls": [{"escalation_level": 1, "user": {"name": name, "email": f"{name.lower()}@example.com"},
                           "schedule": {"summary": "Primary"}, "end": "2026-12-04T00:00:00Z"}]})


@responses.activate
def test_project_oncall_asks_for_the_routes_policy() -> None:
    _oncalls("PEPPAY1", "Pat")
    _oncalls("PEPGLOB", "Gil")
    cfg = config()
    client = make_client(cfg)
    pay, other = (manual.project_oncall(cfg, client, repo) for repo in ("acme/payments", "acme/shop"))
    assert [(p.name, p.email) for p in pay.people] == [("Pat", "pat@example.com")]
    assert (pay.target.route, other.target.route) == (1, "default")
    assert [p.name for p in other.people] == ["Gil"]
    asked = [parse_qs(urlsplit(c.request.url).query)["escalation_policy_ids[]"] for c in responses.calls]
    assert asked == [["PEPPAY1"], ["PEPGLOB"]]


@responses.activate
def test_project_oncall_of_an_unknown_policy_asks_nobody() -> None:
    answer = manual.project_oncall(config(), make_client(config()), "acme/mobile")
    assert (answer.people, answer.target.escalation_policy_id) == ([], None)
    assert len(responses.calls) == 0


CHECKED = f"""routes:
  - match: {{repo: acme/payments}}
    service_id: PPAY001
    escalation_policy_id: PEPPAY1
  - match: {{repo: acme/web}}
    service_id: PNOPE
  - match: {{kind: sentry-issue}}
    routing_key_env: SENTRY_ROUTING_KEY
    escalation_policy_id: PEPPAY1
  - match: {{repo: acme/mobile}}
    routing_key: {WRITTEN_KEY}
  - match: {{repo: acme/ios}}
    routing_key_env: IOS_ROUTING_KEY
  - match: {{repo: acme/tv}}
    routing_key_env: TV_ROUTING_KEY
"""
UNVERIFIABLE = "PagerDuty has no API to verify a routing key without sending an event, so check sends none"
SHORT_KEY = "short-key-9"


def _pagerduty_answers() -> None:
    responses.get(f"{URL}/users/me", json={"user": {"name": "Bot", "email": "bot@example.com"}})
    responses.get(f"{URL}/users", json={"users": [{"name": "Bot", "email": "bot@example.com"}]})
    responses.get(f"{URL}/services/PSVC001", json={"service": {"id": "PSVC001", "name": "Backend API"}})
    responses.get(f"{URL}/services/PPAY001", json={"service": {"id": "PPAY001", "name": "Payments"}})
    responses.get(f"{URL}/services/PNOPE", status=404, json={"error": {"message": "Not Found", "code": 2100}})
    responses.get(f"{URL}/escalation_policies/PEPGLOB", json={"escalation_policy": {"name": "Backend"}})
    responses.get(f"{URL}/escalation_policies/PEPPAY1", json={"escalation_policy": {"name": "Payments rota"}})


@responses.activate
def test_check_verifies_every_routes_target_and_says_what_to_fix() -> None:
    _pagerduty_answers()
    cfg = config(CHECKED, PAGERDUTY_ROUTING_KEY=SHORT_KEY)
    env = {"SENTRY_ROUTING_KEY": ENV_KEY, "IOS_ROUTING_KEY": SHORT_KEY}
    results = [(c.name, c.ok, c.message) for c in manual.check(cfg, make_client(cfg), env)]
    assert results == [
        ("token", True, "user token of Bot <bot@example.com>"),
        ("from email", True, "bot@example.com is Bot"),
        ("service", True, "PSVC001 is Backend API"),
        ("escalation policy", True, "PEPGLOB is Backend"),
        ("routes[0] service PPAY001", True, "Payments"),
        ("routes[0] escalation policy PEPPAY1", True, "Payments rota"),
        ("routes[1] service PNOPE", False, f"{FILE}:6: routes[1].service_id: no service PNOPE in this account, or "
                                           "the token cannot see it: fix service_id in routes[1]"),
        ("routes[2] routing key $SENTRY_ROUTING_KEY", True, f"set, 32 characters ({UNVERIFIABLE})"),
        ("routes[2] escalation policy PEPPAY1", True, "Payments rota"),
        (f"routes[3] routing key written at {FILE}:11", True, f"set, 32 characters ({UNVERIFIABLE})"),
        ("routes[4] routing key $IOS_ROUTING_KEY", False, f"{FILE}:13: routes[4].routing_key_env: is 11 characters; "
         "an Events API v2 integration key has 32: copy the Integration Key of the service's Events API v2 "
         "integration"),
        ("routes[5] routing key $TV_ROUTING_KEY", False, f"{FILE}:15: routes[5].routing_key_env: TV_ROUTING_KEY is "
         "not set: export it with the Events API v2 integration key (copy the Integration Key of the service's "
         "Events API v2 integration)"),
        ("default routing key PAGERDUTY_ROUTING_KEY", False, "PAGERDUTY_ROUTING_KEY: is 11 characters; an Events "
         "API v2 integration key has 32: copy the Integration Key of the service's Events API v2 integration")]
    # each id is asked once, however many lines name it
    asked = [c.request.url.removeprefix(URL) for c in responses.calls]
    assert asked.count("/escalation_policies/PEPPAY1") == 1
    text = repr(results)
    assert all(secret not in text for secret in (WRITTEN_KEY, ENV_KEY, SHORT_KEY, "tok-secret-123"))


def test_check_without_settings_still_checks_the_routing_keys() -> None:
    cfg = make_config(CHECKED, env={"PAGERDUTY_API_URL": URL})
    results = [(c.name, c.ok) for c in manual.check(cfg, None, {"SENTRY_ROUTING_KEY": ENV_KEY})]
    assert results == [("settings", False), ("routes[2] routing key $SENTRY_ROUTING_KEY", True),
                       (f"routes[3] routing key written at {FILE}:11", True),
                       ("routes[4] routing key $IOS_ROUTING_KEY", False),
                       ("routes[5] routing key $TV_ROUTING_KEY", False)]


def test_check_refuses_a_bad_route_config_at_its_line() -> None:
    bad = make_config("routes:\n  - service_id: P1\n  - match: {repo: acme/x}\n    escalation_policy_id: P2\n",
                      env=GLOBAL)
    with pytest.raises(InvalidFiles) as caught:
        manual.check(bad, None, {})
    assert str(caught.value) == (f"{FILE}:3: routes[1]: names no target: give service_id (REST API) or "
                                 "routing_key / routing_key_env (Events API v2)")


def test_the_default_without_a_global_policy_says_what_to_set() -> None:
    events_only = make_config("routes:\n  - match: {repo: acme/web}\n    service_id: PWEB001\n",
                              env={"PAGERDUTY_ROUTING_KEY": ENV_KEY})
    default, web = (manual.project_target(events_only, repo) for repo in ("acme/shop", "acme/web"))
    assert (default.route, default.escalation_policy_id, default.unknown) == (
        "default", None, "PAGERDUTY_ESCALATION_POLICY_ID is not set: set it to name whose on-call to show")
    assert (web.route, web.escalation_policy_id, web.unknown) == (0, None, (
        f"{FILE}:2: routes[0] names no escalation_policy_id and PAGERDUTY_ESCALATION_POLICY_ID is not set: add one "
        "to name whose on-call to show"))


def test_check_needs_the_rest_settings_even_when_the_default_is_an_events_api_key() -> None:
    cfg = make_config("", env={"PAGERDUTY_ROUTING_KEY": ENV_KEY, "PAGERDUTY_API_URL": URL})
    results = [(c.name, c.ok, c.message) for c in manual.check(cfg, None, {})]
    assert results == [
        ("settings", False, "PAGERDUTY_API_TOKEN, PAGERDUTY_FROM_EMAIL, PAGERDUTY_SERVICE_ID, "
                            f"PAGERDUTY_ESCALATION_POLICY_ID not set: export them or put them in {FILE}"),
        ("default routing key PAGERDUTY_ROUTING_KEY", True, f"set, 32 characters ({UNVERIFIABLE})")]
    assert ENV_KEY not in repr(results)


def test_a_page_by_hand_goes_out_even_when_a_silence_matches_its_repo() -> None:
    muting = make_silence({"repo": "acme/api"}, created_by="ada", comment="maintenance", starts_at=0.0,
                          ends_at=4e9, created_at=0.0, silence_id="s1")
    config = make_config(enabled=True)
    line = manual.trigger(config, DryRun(MemoryView(silences=[muting])), "checkout down", "critical", "acme/api")
    assert line["status"] == "planned" and "silence_id" not in line
