"""The daemon's status file (engine/daemon/status.py): throttled writes that are never lost, and liveness."""
from __future__ import annotations

import json
import os
from pathlib import Path

from engine import metrics
from engine.daemon.status import STATUS_NAME, StatusFile, current_status, read_status, status_path


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _written(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_the_status_file_is_hidden_inside_the_events_folder(tmp_path: Path) -> None:
    assert status_path(tmp_path) == tmp_path / STATUS_NAME and STATUS_NAME.startswith(".")


def test_a_counter_bumped_twice_in_one_second_is_written_once_then_on_flush(tmp_path: Path) -> None:
    clock = Clock()
    status = StatusFile(tmp_path / "s.json", clock)
    status.bump("files_processed")
    status.bump("files_processed")  # within the second: held back
    assert _written(tmp_path / "s.json")["files_processed"] == 1
    status.flush()  # still within the second
    assert _written(tmp_path / "s.json")["files_processed"] == 1
    clock.now += 1.0
    status.flush()
    assert _written(tmp_path / "s.json")["files_processed"] == 2
    assert _written(tmp_path / "s.json")["updated_at"] == 1001.0


def test_a_state_change_or_a_reload_error_is_written_at_once(tmp_path: Path) -> None:
    clock = Clock()
    status = StatusFile(tmp_path / "s.json", clock)
    status.update(state="running")
    status.update(last_reload_error="rules/a.yaml:3: bad")  # same second, but an operator needs it now
    assert _written(tmp_path / "s.json")["last_reload_error"] == "rules/a.yaml:3: bad"
    status.update(state="stopped")
    assert _written(tmp_path / "s.json")["state"] == "stopped"


def test_an_update_that_changes_nothing_writes_nothing(tmp_path: Path) -> None:
    status = StatusFile(tmp_path / "s.json", Clock())
    status.update(files_pending=0)
    assert not (tmp_path / "s.json").exists()


def test_read_status_says_running_only_for_a_live_daemon_that_said_so(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    status = StatusFile(path, Clock())
    status.update(state="running")
    assert read_status(path)["running"] is True  # type: ignore[index]  # this process is alive
    status.update(state="stopped")
    assert read_status(path)["running"] is False  # type: ignore[index]
    data = _written(path) | {"state": "running", "pid": _dead_pid()}
    path.write_text(json.dumps(data))
    assert read_status(path)["running"] is False  # type: ignore[index]  # killed -9: the file still says running


def test_read_status_of_no_file_or_a_torn_one_is_none(tmp_path: Path) -> None:
    assert read_status(tmp_path / "none.json") is None
    (tmp_path / "torn.json").write_text('{"state": "runn')
    assert read_status(tmp_path / "torn.json") is None


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)  # reaped: no process has this id now
    return pid


# Issue 16 item 5: the status file's figures are the ones /metrics shows, and /healthz reads them live.
def test_the_status_files_figures_are_what_metrics_shows(tmp_path: Path) -> None:
    clock = Clock()
    status = StatusFile(tmp_path / STATUS_NAME, clock)
    status.bump("files_processed")
    status.bump("files_failed")
    status.update(files_pending=4)
    metrics.observe_reload(True, 1234.0, rules=17)
    assert metrics.value("pagerules_event_files_total", folder="processed") == 1
    assert metrics.value("pagerules_event_files_total", folder="failed") == 1
    assert metrics.value("pagerules_events_pending") == 4
    assert (metrics.value("pagerules_rules_loaded"), metrics.value("pagerules_config_last_reload_successful"),
            metrics.value("pagerules_config_last_reload_success_timestamp_seconds")) == (17, 1, 1234.0)
    written = _written(tmp_path / STATUS_NAME)  # the reload is written at once, with the counts before it
    assert (written["files_processed"], written["files_failed"], written["files_pending"], written["rules_loaded"],
            written["last_reload_successful"], written["rules_loaded_at"]) == (1, 1, 4, 17, True, 1234.0)
    live = current_status(tmp_path)
    assert live is not None and live["files_pending"] == 4 and live["running"] is False  # still "starting"
    status.update(state="running")
    assert current_status(tmp_path)["running"] is True  # type: ignore[index]


def test_current_status_of_a_daemon_in_another_process_reads_its_file(tmp_path: Path) -> None:
    StatusFile(tmp_path / "mine" / STATUS_NAME, Clock())  # this process's daemon watches another folder
    (tmp_path / STATUS_NAME).write_text(json.dumps({"state": "running", "pid": _dead_pid(), "files_processed": 9}))
    found = current_status(tmp_path)
    assert found is not None and (found["files_processed"], found["running"]) == (9, False)
    assert current_status(tmp_path / "nowhere") is None
