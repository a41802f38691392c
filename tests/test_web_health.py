"""GET /healthz (engine.web.health): up/down and counts for anyone, the details only with the token."""
from __future__ import annotations

import json
from pathlib import Path

from builders import AUTH, app_for
from fake_pagerduty import FakePagerDuty


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
        assert response.get_json() == {"ok": True, "channel_failures": 0, "hooks_ignored": 0, "daemon": {
            "state": "running", "running": False, "files_processed": 4, "files_failed": 1, "files_pending": 2}}
        text = response.get_data(as_text=True)
        assert "secret-team" not in text and "PXYZ" not in text and "999999" not in text and fake.url not in text  # type: ignore[attr-defined]


def test_healthz_without_a_daemon_says_so(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    assert client.get("/healthz").get_json() == {"ok": True, "daemon": None, "channel_failures": 0,
                                                 "hooks_ignored": 0}
    detailed = client.get("/healthz", headers=AUTH).get_json()
    assert (detailed["daemon"], detailed["channel_failures"], detailed["hooks_ignored"]) == (None, [], {})


def test_healthz_counts_failed_channel_deliveries_and_lists_them_only_with_the_token(fake: FakePagerDuty,
                                                                                      tmp_path: Path) -> None:
    app = app_for(fake, tmp_path)
    failures = app.extensions["pagerules"].backend.notifier.failures
    for n in range(7):
        failures.appendleft({"at": 1.0, "channel": f"ops{n}", "error": "answered 500", "event": "triggered"})
    client = app.test_client()
    assert client.get("/healthz").get_json()["channel_failures"] == 7
    listed = client.get("/healthz", headers=AUTH).get_json()["channel_failures"]
    assert [f["channel"] for f in listed] == ["ops6", "ops5", "ops4", "ops3", "ops2"]  # the newest five
