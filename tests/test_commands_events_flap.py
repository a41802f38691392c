"""Flap control end to end (README "Flap control"): `pagerules process` in a subprocess against the fake
PagerDuty, one process per batch of events (each a restart): the third open within the window holds the
recovery with a note, a red build in a later process adds a note and opens nothing, and once the hold is
due a recovery resolves it. Every body is checked against PagerDuty's spec; no token in any output."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from builders import ROOT
from fake_pagerduty import FROM_EMAIL, POLICY, SERVICE, TOKEN, FakePagerDuty
from pd_spec import body_errors

RULES = (ROOT / "rules" / "examples" / "main-flap.yaml").read_text()
KEY = "codespar-acme-api-main-red"


def build(n: int, status: str) -> dict[str, Any]:
    return {"type": "build", "id": f"b{n}", "repo": "acme/api", "branch": "main", "build_number": n,
            "status": status, "url": f"https://ci.example.com/b/{n}"}


def process(tmp: Path, fake: FakePagerDuty, *events: dict[str, Any]) -> list[dict[str, Any]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
    env = {**clean, "PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL,
           "PAGERDUTY_SERVICE_ID": SERVICE, "PAGERDUTY_ESCALATION_POLICY_ID": POLICY,
           "PAGERDUTY_API_URL": fake.url,  # type: ignore[attr-defined]
           "PAGERULES_STATE": str(tmp / "state.db"), "PAGERULES_RETRY_BACKOFF": "0.05"}
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "process", "--config", str(tmp / "pd.yaml")],
                            input="".join(json.dumps(e) + "\n" for e in events), capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_process_holds_a_flapping_key_open_notes_it_and_resolves_it_once_due(fake: FakePagerDuty,
                                                                             tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main-flap.yaml").write_text(RULES)
    (tmp_path / "pd.yaml").write_text("rules_dir: rules\n")
    out = process(tmp_path, fake, *(build(n, "failed" if n % 2 else "passed") for n in range(1, 7)))
    assert [(line["action"], line["status"]) for line in out] == \
        [("trigger", "created"), ("resolve", "resolved")] * 2 + [("trigger", "created"), ("resolve", "flapping")]
    assert out[-1]["incident_key"] == KEY and out[-1]["resolve_at"].endswith("Z")
    [open_id] = [i for i, incident in fake.incidents.items() if incident["status"] != "resolved"]
    assert out[-1]["incident_id"] == open_id
    assert fake.incidents[open_id]["notes"][-1].startswith(
        "pagerules: recovered, but this key opened 3 times in 30m: held open as flapping")

    [line] = process(tmp_path, fake, build(7, "failed"))  # a new process: the hold was in the state
    assert (line["action"], line["status"], line["incident_id"]) == ("trigger", "flapping", open_id)
    assert len(fake.incidents) == 3 and "(4th open in 30m)" in fake.incidents[open_id]["notes"][-1]
    [line] = process(tmp_path, fake, build(8, "passed"))
    assert (line["status"], fake.incidents[open_id]["status"]) == ("flapping", "triggered")

    with sqlite3.connect(tmp_path / "state.db") as db:  # 30 minutes pass (the hold's time, not the clock's)
        db.execute("UPDATE held_resolves SET due_at = due_at - 1800")
    [line] = process(tmp_path, fake, build(9, "passed"))
    assert (line["action"], line["status"], line["incident_id"]) == ("resolve", "resolved", open_id)
    assert fake.incidents[open_id]["status"] == "resolved"
    with sqlite3.connect(tmp_path / "state.db") as db:
        audit = db.execute("SELECT action, detail FROM audit WHERE incident_key = ? ORDER BY id", (KEY,)).fetchall()
    assert [a for a, _ in audit].count("note") == 3 and "flapping_released" in [a for a, _ in audit]
    assert TOKEN not in json.dumps(audit)
    for call in fake.calls():
        assert body_errors(call["method"], call["path"], call["body"]) == [], call
