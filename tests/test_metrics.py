"""The Prometheus metrics: names as README "Metrics" lists them, and values that move with what happens."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests
import responses
from builders import ROOT

from engine import metrics
from engine.daemon.watch import Daemon
from engine.pagerduty.client import Client, PagerDutyError, RetryPolicy

URL = "https://pd.test"


def client() -> Client:
    return Client(URL, "metrics-test-token", "bot@example.com", timeout=2,
                  retry=RetryPolicy(total=1, backoff_factor=0.01))


NAMES = ("pagerules_events_total", "pagerules_pagerduty_requests_total", "pagerules_pagerduty_request_duration_seconds",
         "pagerules_events_pending", "pagerules_rules_loaded", "pagerules_config_last_reload_successful",
         "pagerules_config_last_reload_success_timestamp_seconds", "pagerules_channel_failures_total",
         "pagerules_event_files_total", "pagerules_silences_active")


def test_the_exposition_names_every_documented_metric_with_prometheus_content_type() -> None:
    body, content_type = metrics.exposition()
    text = body.decode()
    assert content_type.startswith("text/plain; version=")
    for name in NAMES:
        assert f"# HELP {name} " in text, name
    assert "process_resident_memory_bytes" in text  # the process's own figures, as every exporter has


def test_endpoints_hide_pagerduty_ids_so_the_label_stays_small() -> None:
    assert metrics.endpoint("POST", "/incidents/PABC123/notes") == "POST /incidents/{id}/notes"
    assert metrics.endpoint("PUT", "/incidents/Q0RIJJZL24RC6W") == "PUT /incidents/{id}"
    assert metrics.endpoint("GET", "/incidents?incident_key=x") == "GET /incidents"
    assert metrics.endpoint("GET", "/users/me") == "GET /users/me"
    assert metrics.endpoint("GET", "/escalation_policies/PEP1") == "GET /escalation_policies/{id}"


@responses.activate
def test_each_pagerduty_call_counts_by_endpoint_and_status_and_times_it() -> None:
    created = dict(name="pagerules_pagerduty_requests_total", endpoint="POST /incidents", status="201")
    refused = dict(name="pagerules_pagerduty_requests_total", endpoint="PUT /incidents/{id}", status="404")
    timed = dict(name="pagerules_pagerduty_request_duration_seconds_count", endpoint="POST /incidents")
    before = [metrics.value(**created), metrics.value(**refused), metrics.value(**timed)]
    responses.post(f"{URL}/incidents", json={"incident": {"id": "P1"}}, status=201)
    responses.put(f"{URL}/incidents/P9", json={"error": {"message": "Not Found"}}, status=404)
    client().create_incident({"incident": {}})
    with pytest.raises(PagerDutyError, match="404"):
        client().set_status("P9", "resolved")
    after = [metrics.value(**created), metrics.value(**refused), metrics.value(**timed)]
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]


@responses.activate
def test_a_call_that_gets_no_answer_counts_as_error() -> None:
    labels = dict(name="pagerules_pagerduty_requests_total", endpoint="GET /users/me", status="error")
    before = metrics.value(**labels)
    responses.get(f"{URL}/users/me", body=requests.ConnectionError("refused"))
    with pytest.raises(PagerDutyError, match="unreachable"):
        client().me()
    assert metrics.value(**labels) == before + 1


def test_a_failed_reload_keeps_the_last_success_time_and_rule_count() -> None:
    metrics.observe_reload(True, 1_700_000_000.0, rules=12)
    metrics.observe_reload(False, 1_700_000_100.0, rules=0)
    assert metrics.value("pagerules_config_last_reload_successful") == 0
    assert metrics.value("pagerules_config_last_reload_success_timestamp_seconds") == 1_700_000_000.0
    assert metrics.value("pagerules_rules_loaded") == 12


def test_the_daemon_feeds_the_reload_gauges_and_the_backlog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith(("PAGERDUTY_", "PAGERULES_"))]:
        monkeypatch.delenv(name)
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    (tmp_path / "pd.yaml").write_text("enabled: false\nrules_dir: rules\nstate_path: state.db\nevents_dir: events\n")
    clock = [1_800_000_000.0]
    daemon = Daemon(str(tmp_path / "pd.yaml"), {}, str(tmp_path / "events"), once=True, clock=lambda: clock[0])
    assert metrics.value("pagerules_config_last_reload_successful") == 1
    assert metrics.value("pagerules_config_last_reload_success_timestamp_seconds") == 1_800_000_000.0
    assert metrics.value("pagerules_rules_loaded") == len(daemon.loaded.ruleset.all_rules())

    (tmp_path / "rules" / "build.yaml").write_text("triggers: [{id: broken}]\n")
    clock[0] += 60
    daemon.reload()
    assert metrics.value("pagerules_config_last_reload_successful") == 0  # and the last good rules still run
    assert metrics.value("pagerules_config_last_reload_success_timestamp_seconds") == 1_800_000_000.0

    daemon.status.update(files_pending=3)
    assert metrics.value("pagerules_events_pending") == 3
    daemon.state.close()


def test_the_daemon_counts_each_outcome_by_event_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith(("PAGERDUTY_", "PAGERULES_"))]:
        monkeypatch.delenv(name)
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    (tmp_path / "pd.yaml").write_text("enabled: false\nrules_dir: rules\nstate_path: state.db\nevents_dir: events\n")
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "b.json").write_text(
        '{"type": "build", "id": "b1", "repo": "acme/api", "branch": "main", "build_number": 1, "status": "failed"}')
    (tmp_path / "events" / "c.ndjson").write_text('{"type": "build", "id": "b2"}\n{not json\n')
    disabled = dict(name="pagerules_events_total", type="build", outcome="disabled")
    rejected = dict(name="pagerules_events_total", type="build", outcome="rejected")
    unreadable = dict(name="pagerules_events_total", type="unknown", outcome="rejected")
    before = [metrics.value(**disabled), metrics.value(**rejected), metrics.value(**unreadable)]
    daemon = Daemon(str(tmp_path / "pd.yaml"), {}, str(tmp_path / "events"), once=True)
    daemon.run()
    daemon.state.close()
    after = [metrics.value(**disabled), metrics.value(**rejected), metrics.value(**unreadable)]
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]


def test_the_silences_gauge_shows_what_it_was_last_told() -> None:
    metrics.observe_silences(3)
    assert metrics.value("pagerules_silences_active") == 3
    metrics.observe_silences(0)
    assert metrics.value("pagerules_silences_active") == 0


def test_without_a_daemon_the_reload_gauges_have_no_sample_so_no_reload_alert_fires() -> None:
    metrics.install(metrics.Figures())  # what `serve` alone has
    text = metrics.exposition()[0].decode()
    assert "# HELP pagerules_config_last_reload_successful " in text
    assert "\npagerules_config_last_reload_successful " not in text and "\npagerules_rules_loaded " not in text
    assert "\npagerules_events_pending 0.0" in text
    assert metrics.REGISTRY.get_sample_value("pagerules_config_last_reload_successful") is None
    metrics.observe_reload(False, 1.0)
    assert metrics.value("pagerules_config_last_reload_successful") == 0  # a daemon whose first load failed
