"""GET /metrics (engine.web.prometheus): served without a token in Prometheus' text format, on the app
that both `serve` and `watch --http` run (commands/serving.py builds both with create_app), with the
README's metric names; a PagerDuty call made through the API moves the request counter."""
from __future__ import annotations

from pathlib import Path

from builders import API_TOKEN, AUTH, app_for, open_one
from fake_pagerduty import FakePagerDuty
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from engine import metrics

DOCUMENTED = ("pagerules_events_total", "pagerules_pagerduty_requests_total",
              "pagerules_pagerduty_request_duration_seconds", "pagerules_events_pending", "pagerules_rules_loaded",
              "pagerules_config_last_reload_successful", "pagerules_config_last_reload_success_timestamp_seconds",
              "pagerules_channel_failures_total")


def test_metrics_need_no_token_and_use_the_prometheus_content_type(fake: FakePagerDuty, tmp_path: Path) -> None:
    response = app_for(fake, tmp_path).test_client().get("/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    text = response.get_data(as_text=True)
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    # the parser names a counter without its _total suffix
    assert families["pagerules_pagerduty_requests"] == "counter" and families["pagerules_events"] == "counter"
    assert families["pagerules_pagerduty_request_duration_seconds"] == "histogram"
    for name in DOCUMENTED:
        assert f"# HELP {name} " in text, name
    assert API_TOKEN not in text


def test_an_acknowledge_through_the_api_moves_the_pagerduty_counters(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    line = open_one(client)
    put = {"endpoint": "PUT /incidents/{id}", "status": "200"}
    before = metrics.value("pagerules_pagerduty_requests_total", **put)
    observed = metrics.value("pagerules_pagerduty_request_duration_seconds_count", endpoint=put["endpoint"])
    acked = client.post(f"/api/incidents/{line['incident_key']}/acknowledge", headers=AUTH).get_json()
    assert acked["status"] == "acknowledged"
    assert metrics.value("pagerules_pagerduty_requests_total", **put) == before + 1
    assert metrics.value("pagerules_pagerduty_request_duration_seconds_count", endpoint=put["endpoint"]) \
        == observed + 1
    scraped = client.get("/metrics").get_data(as_text=True)
    assert f'pagerules_pagerduty_requests_total{{endpoint="PUT /incidents/{{id}}",status="200"}} {before + 1}' \
        in scraped
