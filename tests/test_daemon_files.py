"""What the daemon does with files it cannot or must not read, and with the status file (issues 11, 12)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from builders import ROOT, Daemon, build, titles, wait_for
from fake_pagerduty import FakePagerDuty

from engine.daemon.status import StatusFile


def _error_of(daemon: Daemon, name: str) -> str:
    return (daemon.events / "failed" / f"{name}.error").read_text()


def test_a_fifo_and_a_symlink_go_to_failed_and_later_files_page(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake).start()
    try:
        os.mkfifo(daemon.events / "pipe.json")  # opening it for reading would block forever
        secret = tmp_path / "secret.txt"
        secret.write_text('{"type": "build", "note": "outside the events folder"}')
        os.symlink(secret, daemon.events / "link.json")
        daemon.drop("after.json", [build(7)])
        wait_for(lambda: daemon.done("pipe.json", "link.json", "after.json"), 30, "all three files to be handled")
        assert "not a regular file" in _error_of(daemon, "pipe.json")
        assert "is a symbolic link; only regular files are read" in _error_of(daemon, "link.json")
        assert (daemon.events / "failed" / "link.json").is_symlink()  # moved as a link, never followed
        assert secret.read_text().startswith('{"type"')
        assert titles(fake) == ["[CodeSpar] High: acme/backend-api CI build #7 failed on main"]
        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < 10
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.proc.kill()


def test_poison_files_never_stop_the_daemon(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake).start()
    try:
        daemon.drop("surrogate.json", '{"type": "build", "id": "s", "repo": "acme/\\ud800", "branch": "main", '
                                      '"build_number": 2, "status": "failed"}\n')
        daemon.drop("deep.json", "[" * 1000 + "]" * 1000 + "\n")
        daemon.drop("digits.json", '{"type": "build", "build_number": ' + "9" * 5000 + "}\n")
        daemon.drop("nan.json", '{"type": "build", "id": "n", "build_number": NaN}\n')
        daemon.drop("bytes.json", b"\xff\xfe{".decode("latin-1"))
        daemon.drop("after.json", [build(8)])
        names = ("surrogate.json", "deep.json", "digits.json", "nan.json", "bytes.json", "after.json")
        wait_for(lambda: daemon.done(*names), 30, "every file to be handled")
        assert daemon.proc is not None and daemon.proc.poll() is None  # still running
        for name in ("deep.json", "digits.json", "nan.json"):
            assert (daemon.events / "failed" / name).exists(), name
        # the lone surrogate is U+FFFD, as in Alertmanager: the page goes out and is recorded
        assert sorted(titles(fake)) == ["[CodeSpar] High: acme/backend-api CI build #8 failed on main",
                                        "[CodeSpar] High: acme/\ufffd CI build #2 failed on main"]
        assert "Traceback" not in daemon.log.read_text() and "internal error" not in daemon.log.read_text()
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.proc.kill()


def test_a_type_no_rule_handles_is_warned_once_and_counted(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake)  # the sentry pack is off
    alert = {"action": "triggered", "data": {"event": {"title": "x", "level": "error", "issue_id": "1",
                                                       "web_url": "https://sentry.example/issues/1/"}}}
    daemon.drop("a.sentry.event_alert.json", [alert])
    daemon.drop("b.sentry.event_alert.json", [alert])
    result = daemon.once()
    assert result.returncode == 0
    status = json.loads((daemon.events / ".pagerules-status.json").read_text())
    assert status["unhandled_events"] == {"sentry.event_alert": 2}
    assert fake.incidents == {}
    warnings = [line for line in result.stderr.splitlines() if "no rules handle event type sentry.event_alert" in line]
    assert len(warnings) == 1, result.stderr  # once per type, not once per event
    shown = subprocess.run([sys.executable, str(ROOT / "cli.py"), "status", "--events-dir", str(daemon.events)],
                           capture_output=True, text=True, env=daemon.env, timeout=60)
    assert "events no rule handles (is their pack on?): sentry.event_alert 2" in shown.stdout


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_status_write_held_back_by_the_throttle_lands_on_the_next_flush(tmp_path: Path) -> None:
    clock = Clock()
    status = StatusFile(tmp_path / "status.json", clock=clock)
    status.update(state="running")
    for _ in range(3):  # three failures within one second
        status.bump("files_failed")
    assert json.loads((tmp_path / "status.json").read_text())["files_failed"] == 0  # held back
    status.flush()
    assert json.loads((tmp_path / "status.json").read_text())["files_failed"] == 0  # still inside the second
    clock.now += 1.0
    status.flush()
    assert json.loads((tmp_path / "status.json").read_text())["files_failed"] == 3


def test_a_broken_rule_edit_keeps_the_last_good_rules(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake).start()
    status = daemon.events / ".pagerules-status.json"
    try:
        for number, (name, breaks) in enumerate([("nul.yaml", "write_nul"), ("latin.yaml", "write_byte"),
                                                 ("bad.yaml", "folder")], start=10):
            if breaks == "folder":
                (daemon.rules / name).mkdir()
            else:
                (daemon.rules / name).write_bytes(b"triggers: []\n# \x00\n" if breaks == "write_nul"
                                                  else b"triggers: []\n# caf\xe9\n")
            wait_for(lambda n=name: n in (json.loads(status.read_text()).get("last_reload_error") or ""), 20,
                     f"the reload error naming {name}")
            error = json.loads(status.read_text())["last_reload_error"]
            assert f"{name}:" in error and "Traceback" not in error, error
            daemon.drop(f"b{number}.json", [build(number, eid=f"b{number}")])
            wait_for(lambda n=number: daemon.done(f"b{n}.json"), 20, "the event to be handled")
            assert f"[CodeSpar] High: acme/backend-api CI build #{number} failed on main" in titles(fake)
            if breaks == "folder":
                (daemon.rules / name).rmdir()
            else:
                (daemon.rules / name).unlink()
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.proc.kill()


def test_what_a_disabled_daemon_handled_pages_once_pagerduty_is_enabled(fake: FakePagerDuty, tmp_path: Path) -> None:
    disabled = Daemon(tmp_path, fake, PAGERDUTY_ENABLED="false")
    disabled.drop("a.json", [build(41)])
    assert disabled.once().returncode == 0
    assert fake.incidents == {}
    enabled = Daemon(tmp_path, fake)
    enabled.drop("b.json", [build(41)])  # the same bytes, later, with PagerDuty on
    result = enabled.once()
    assert result.returncode == 0, result.stderr
    assert titles(fake) == ["[CodeSpar] High: acme/backend-api CI build #41 failed on main"]
