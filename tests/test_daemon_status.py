"""The daemon's status file (engine/daemon/status.py): throttled writes that are never lost, and liveness."""
from __future__ import annotations

import json
import os
from pathlib import Path

from engine.daemon.status import STATUS_NAME, StatusFile, read_status, status_path


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
