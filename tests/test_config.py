"""Configuration: precedence, parsing, and errors that name the variable or the line."""
from __future__ import annotations

import pytest
from builders import LIVE_ENV, ROOT, make_config

from engine.config import load_config, load_config_text
from engine.errors import ConfigError, InvalidFiles
from engine.settings import parse_bool


def test_defaults_match_the_contract() -> None:
    config = make_config()
    assert (config.enabled, config.auto_resolve, config.severity_threshold, config.dedup_key_prefix,
            config.api_url) == (True, True, "high", "codespar", "https://api.pagerduty.com")


def test_flag_beats_environment_beats_file() -> None:
    text = "severity_threshold: low\n"
    assert make_config(text).severity_threshold == "low"
    assert make_config(text, env={"PAGERDUTY_SEVERITY_THRESHOLD": "medium"}).severity_threshold == "medium"
    assert make_config(text, env={"PAGERDUTY_SEVERITY_THRESHOLD": "medium"},
                       severity_threshold="critical").severity_threshold == "critical"


@pytest.mark.parametrize("text, value", [("true", True), ("FALSE", False), ("1", True), ("0", False),
                                         ("Yes", True), ("no", False), (True, True)])
def test_booleans_accept_the_contract_spellings(text: object, value: bool) -> None:
    assert parse_bool(text) is value


def test_an_invalid_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(env={"PAGERDUTY_ENABLED": "maybe", "PAGERDUTY_SEVERITY_THRESHOLD": "urgent"})
    assert str(caught.value) == (
        "invalid configuration:\n"
        "  PAGERDUTY_ENABLED: 'maybe' is not a boolean (use true/false, 1/0 or yes/no)\n"
        "  PAGERDUTY_SEVERITY_THRESHOLD: 'urgent' is not a severity (known: low, medium, high, critical)")


def test_an_invalid_file_value_names_file_line_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text("enabled: true\nauto_resolve: perhaps\n", "conf.yaml", env={})
    assert str(caught.value) == (
        "invalid configuration:\n"
        "  conf.yaml:2: auto_resolve: 'perhaps' is not a boolean (use true/false, 1/0 or yes/no)")


def test_a_bad_channel_names_its_path_in_the_one_notation() -> None:
    text = ("channels:\n  - {name: ops, url: 'https://hooks.test/x'}\n"
            "  - {name: bot, url: 'https://bot.test/y', announce: [triggered, paged]}\n")
    with pytest.raises(InvalidFiles) as caught:
        load_config_text(text, "conf.yaml", env={})
    assert str(caught.value) == (
        "conf.yaml:3: channels[1].announce[1]: 'paged' is not one of 'triggered', 'acknowledged', 'resolved'")


def test_an_unknown_key_in_the_file_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(InvalidFiles) as caught:
        load_config_text("enabled: true\nseverity_treshold: low\n", "conf.yaml", env={})
    assert str(caught.value).startswith(
        "conf.yaml:2: severity_treshold: unknown key 'severity_treshold' (did you mean 'severity_threshold'? known:")


def test_live_mode_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(env={"PAGERDUTY_FROM_EMAIL": "a@b.c"}).require_live()
    assert str(caught.value).startswith(
        "live mode needs PAGERDUTY_API_TOKEN, PAGERDUTY_SERVICE_ID, PAGERDUTY_ESCALATION_POLICY_ID:")
    make_config(env=LIVE_ENV).require_live()


ROUTING_KEY = "routingkeyforthedefault000000002"
EVENTS_ROUTE = "routes:\n  - match: {repo: acme/api}\n    routing_key_env: API_KEY\n"
REST_ROUTE = "  - match: {repo: acme/web}\n    service_id: PWEB001\n"


@pytest.mark.parametrize(("yaml", "env", "missing"), [
    # no PAGERDUTY_ROUTING_KEY: the default is the REST service, so all four (with routes or not)
    ("", {}, ["PAGERDUTY_API_TOKEN", "PAGERDUTY_FROM_EMAIL", "PAGERDUTY_SERVICE_ID",
              "PAGERDUTY_ESCALATION_POLICY_ID"]),
    (EVENTS_ROUTE, {"PAGERDUTY_API_TOKEN": "t"}, ["PAGERDUTY_FROM_EMAIL", "PAGERDUTY_SERVICE_ID",
                                                 "PAGERDUTY_ESCALATION_POLICY_ID"]),
    # the default goes to the Events API: nothing of REST unless a route names a service
    ("", {"PAGERDUTY_ROUTING_KEY": ROUTING_KEY}, []),
    (EVENTS_ROUTE, {"PAGERDUTY_ROUTING_KEY": ROUTING_KEY}, []),
    # a REST route: token and From, and the global policy when the route names none
    (EVENTS_ROUTE + REST_ROUTE, {"PAGERDUTY_ROUTING_KEY": ROUTING_KEY},
     ["PAGERDUTY_API_TOKEN", "PAGERDUTY_FROM_EMAIL", "PAGERDUTY_ESCALATION_POLICY_ID"]),
    (EVENTS_ROUTE + REST_ROUTE + "    escalation_policy_id: PEPWEB1\n", {"PAGERDUTY_ROUTING_KEY": ROUTING_KEY},
     ["PAGERDUTY_API_TOKEN", "PAGERDUTY_FROM_EMAIL"]),
])
def test_live_mode_needs_the_rest_settings_only_where_an_incident_can_go_through_rest(
        yaml: str, env: dict[str, str], missing: list[str]) -> None:
    assert make_config(yaml, env=env).missing_for_live() == missing


def test_an_events_api_only_config_starts_live_and_rest_commands_still_name_what_they_need() -> None:
    config = make_config(EVENTS_ROUTE, env={"PAGERDUTY_ROUTING_KEY": ROUTING_KEY})
    config.require_live()  # nothing raised
    assert config.missing_for_live(rest=True) == ["PAGERDUTY_API_TOKEN", "PAGERDUTY_FROM_EMAIL",
                                                  "PAGERDUTY_SERVICE_ID", "PAGERDUTY_ESCALATION_POLICY_ID"]
    with pytest.raises(ConfigError) as caught:
        make_config(EVENTS_ROUTE + REST_ROUTE, env={"PAGERDUTY_ROUTING_KEY": ROUTING_KEY}).require_live()
    assert str(caught.value).startswith("live mode needs PAGERDUTY_API_TOKEN, PAGERDUTY_FROM_EMAIL, "
                                        "PAGERDUTY_ESCALATION_POLICY_ID: set them in the environment or in ")
    assert ROUTING_KEY not in str(caught.value)


def test_dry_run_and_validate_need_no_pagerduty_values() -> None:
    assert make_config().missing_for_live()  # nothing raised while loading


def test_the_token_is_not_in_the_config_repr() -> None:
    config = make_config(env=LIVE_ENV)
    assert "tok-secret-123" not in repr(config) and "tok-secret-123" not in str(config)


def test_title_format_must_use_known_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config('title_format: "{sev}: {title}"')
    assert "must use {title} and may use {Severity} and {severity} only" in str(caught.value)


def test_packs_come_from_a_comma_separated_variable() -> None:
    assert make_config(env={"PAGERULES_PACKS": "github, sentry"}).packs == ("github", "sentry")


def test_relative_paths_are_taken_from_the_config_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pd.yaml"
    path.write_text("rules_dir: my-rules\n")
    assert load_config(str(path), env={}).rules_dir == str(tmp_path / "my-rules")


def test_a_missing_config_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    expected = r"cannot read config file .*nope.yaml \(from --config\): No such file or directory"
    with pytest.raises(ConfigError, match=expected):
        load_config(str(tmp_path / "nope.yaml"), env={})


def test_the_shipped_config_loads_and_documents_every_setting() -> None:
    from engine.config import setting_names
    text = (ROOT / "pagerduty.yaml").read_text()
    for key, env in setting_names():
        assert key in text and (env is None or env in text), key
    assert load_config(str(ROOT / "pagerduty.yaml"), env={}).api_token is None
