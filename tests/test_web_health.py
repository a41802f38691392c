"""GET /healthz (engine.web.health): up/down and counts for anyone, the details only with the token."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from builders import AUTH, ROOT, Daemon, app_for, build, replace_file, wait_for
from fake_pagerduty import FakePagerDuty
from prometheus_client.parser import text_string_to_metric_families

from engine import metrics


def test_healthz_needs_no_token_and_shows_the_daemon(fake: FakePagerDuty, tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / ".pagerules-status.json").write_text(json.dumps(
        {"pid": 999999, "state": "running", "ruleset_version": "abc", "last_reload_error": "rules/x.yaml:3: bad",
         "files_processed": 4, "files_failed": 1, "files_pending": 0}))
    client = app_for(fake, tmp_path).test_client()
    detailed = client.get("/healthz", headers=AUTH).get_json()
    assert detailed["ok"] and detailed["daemon"]["last_reload_error"] == "rules/x.yaml:3: bad"
    assert detailed["daemon"]["running"] is False  # that pid is gone
    assert detailed["pagerduty_url"] == fake.url and isinstance(detailed["pid"], int)  # type: ignore[attr-defined]


def test_healthz_without_the_token_shows_only_up_down_and_counts(fake: FakePagerDuty, tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / ".pagerules-status.json").write_text(json.dumps(
        {"pid": 999999, "state": "running", "ruleset_version": "abc", "files_processed": 4, "files_failed": 1,
         "files_pending": 2, "last_reload_error": "rules/secret-team/x.yaml:3: rule page-ceo: bad",
         "last_pagerduty_error": "not found in PagerDuty (404): /incidents/PXYZ"}))
    client = app_for(fake, tmp_path).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.get("/healthz", headers=headers)
        assert response.get_json() == {"ok": True, "channel_failures": metrics.channel_failures(), "hooks_ignored": 0,
                                       "daemon": {"state": "running", "running": False, "files_processed": 4,
                                                  "files_failed": 1, "files_pending": 2, "rules_loaded": None,
                                                  "last_reload_successful": None}}
        text = response.get_data(as_text=True)
        assert "secret-team" not in text and "PXYZ" not in text and "999999" not in text and fake.url not in text  # type: ignore[attr-defined]


def test_healthz_without_a_daemon_says_so(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    assert client.get("/healthz").get_json() == {"ok": True, "daemon": None, "hooks_ignored": 0,
                                                 "channel_failures": metrics.channel_failures()}
    detailed = client.get("/healthz", headers=AUTH).get_json()
    assert (detailed["daemon"], detailed["channel_failures"], detailed["hooks_ignored"]) == (None, [], {})


def test_healthz_counts_failed_channel_deliveries_and_lists_them_only_with_the_token(fake: FakePagerDuty,
                                                                                      tmp_path: Path) -> None:
    app = app_for(fake, tmp_path)
    failures = app.extensions["pagerules"].backend.notifier.failures
    before = metrics.channel_failures()
    for n in range(7):  # as the notifier records a failed delivery: counted for /metrics, listed for /healthz
        metrics.CHANNEL_FAILURES.labels(f"ops{n}").inc()
        failures.appendleft({"at": 1.0, "channel": f"ops{n}", "error": "answered 500", "event": "triggered"})
    client = app.test_client()
    assert client.get("/healthz").get_json()["channel_failures"] == before + 7  # the count /metrics has
    scraped = client.get("/metrics").get_data(as_text=True)
    assert sum(float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines()
               if line.startswith("pagerules_channel_failures_total{")) == before + 7
    listed = client.get("/healthz", headers=AUTH).get_json()["channel_failures"]
    assert [f["channel"] for f in listed] == ["ops6", "ops5", "ops4", "ops3", "ops2"]  # the newest five


# Issue 16 item 5: `pagerules status`, /healthz and /metrics report the same figures, from one source.
def test_status_healthz_and_metrics_of_one_running_daemon_agree(fake: FakePagerDuty, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = Daemon(tmp_path, fake, PAGERULES_API_TOKEN="t-123").start("--http", f"127.0.0.1:{port}")
    try:
        def get(path: str, token: bool = True) -> bytes:
            headers = {"Authorization": "Bearer t-123"} if token else {}
            with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers),
                                        timeout=5) as response:
                return response.read()  # type: ignore[no-any-return]

        def answers() -> bool:
            try:
                return bool(get("/healthz"))
            except OSError:
                return False

        def three() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
            shown = subprocess.run([sys.executable, str(ROOT / "cli.py"), "status", "--json", "--events-dir",
                                    str(daemon.events)], capture_output=True, text=True, env=daemon.env, timeout=60)
            scraped = {s.name + str(sorted(s.labels.items()) or ""): s.value
                       for family in text_string_to_metric_families(get("/metrics").decode()) for s in family.samples}
            return (json.loads(shown.stdout), json.loads(get("/healthz"))["daemon"],
                    json.loads(get("/healthz", token=False)), scraped)

        def agree(files: tuple[int, int], reload_ok: bool) -> bool:
            status, healthz, public, scraped = three()
            figures = {
                "files_processed": scraped["pagerules_event_files_total[('folder', 'processed')]"],
                "files_failed": scraped["pagerules_event_files_total[('folder', 'failed')]"],
                "files_pending": scraped["pagerules_events_pending"],
                "rules_loaded": scraped["pagerules_rules_loaded"],
                "last_reload_successful": scraped["pagerules_config_last_reload_successful"],
                "rules_loaded_at": scraped["pagerules_config_last_reload_success_timestamp_seconds"]}
            if (status["files_processed"], status["files_failed"], status["last_reload_successful"]) != \
                    (*files, reload_ok):
                return False  # the status file is written at most once a second: not there yet
            for key, value in figures.items():
                assert status[key] == healthz[key] == value, (key, status[key], healthz[key], value)
                if key in public["daemon"]:
                    assert public["daemon"][key] == value, key
            assert public["channel_failures"] == sum(v for k, v in scraped.items()
                                                     if k.startswith("pagerules_channel_failures_total["))
            return True

        wait_for(answers, 15, "the HTTP server")
        daemon.drop("a.json", [build(41)])
        daemon.drop("b.json", "{not json\n")
        wait_for(lambda: daemon.done("a.json", "b.json"), 15, "a.json and b.json")
        wait_for(lambda: agree((1, 1), True), 15, "1 file processed and 1 failed in all three")
        assert three()[3]["pagerules_rules_loaded"] > 5

        replace_file(daemon.rules / "build.yaml", "triggers: [{id: broken}]\n")
        wait_for(lambda: agree((1, 1), False), 15, "the failed reload in all three")
    finally:
        assert daemon.stop() == 0
