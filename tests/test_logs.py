"""Structured logs (engine/logs.py): JSON lines with stable field names for every handled file, outcome and
PagerDuty call, and no secret in any of them."""
from __future__ import annotations

import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from builders import ROOT, build
from fake_pagerduty import FROM_EMAIL, POLICY, SERVICE, TOKEN, FakePagerDuty

from engine import logs
from engine.daemon.watch import Daemon


def json_lines(tmp_path: Path, fake: FakePagerDuty, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    for name in [k for k in os.environ if k.startswith(("PAGERDUTY_", "PAGERULES_"))]:
        monkeypatch.delenv(name)
    for name, value in {"PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL,
                        "PAGERDUTY_SERVICE_ID": SERVICE, "PAGERDUTY_ESCALATION_POLICY_ID": POLICY,
                        "PAGERDUTY_API_URL": fake.url}.items():  # type: ignore[attr-defined]
        monkeypatch.setenv(name, value)
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    (tmp_path / "pd.yaml").write_text("rules_dir: rules\nstate_path: state.db\nevents_dir: events\n")
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "a.json").write_text(json.dumps([build(349), build(350, "passed", eid="b2")]))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        daemon = Daemon(str(tmp_path / "pd.yaml"), {}, str(tmp_path / "events"), once=True)
        assert daemon.run() == 0
        daemon.state.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = stream.getvalue()
    assert TOKEN not in text and FROM_EMAIL not in text
    return [json.loads(line) for line in text.splitlines()]


def test_files_outcomes_and_pagerduty_calls_log_stable_fields(tmp_path: Path, fake: FakePagerDuty,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    lines = json_lines(tmp_path, fake, monkeypatch)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    outcomes = [line for line in lines if line.get("event") == "outcome"]
    assert [(o["action"], o["status"], o["incident_key"], o["route"]) for o in outcomes] == [
        ("trigger", "created", "codespar-acme-backend-api-build-349", "default"),
        ("resolve", "resolved", "codespar-acme-backend-api-build-349", "default")]
    assert outcomes[1]["resolution"] == "Build #350 passed on main" and outcomes[0]["where"] == "a.json line 1 item 0"
    calls = [line for line in lines if line.get("event") == "pagerduty_call"]
    assert {(c["method"], c["endpoint"], c["status"]) for c in calls} >= {
        ("POST", "POST /incidents", 201), ("PUT", "PUT /incidents/{id}", 200)}
    assert all(isinstance(c["duration_ms"], float) and c["logger"] == "pagerduty" for c in calls)
    [handled] = [line for line in lines if line.get("event") == "file_handled"]
    assert (handled["file"], handled["folder"], handled["problems"]) == ("a.json", "processed", 0)
    assert handled["outcomes"] == {"resolve resolved": 1, "trigger created": 1}


def test_the_plain_format_shows_only_the_message() -> None:
    record = logging.LogRecord("pagerules", logging.INFO, __file__, 1, "handled %s", ("a.json",), None)
    record.__dict__.update(logs.fields(event="file_handled", file="a.json", message="not the message"))
    assert logging.Formatter("%(message)s").format(record) == "handled a.json"
    assert json.loads(logs.JsonFormatter().format(record))["message"] == "handled a.json"  # a field never replaces it
