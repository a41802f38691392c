"""The watch daemon end to end: a subprocess over a temporary events folder against the fake PagerDuty."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pg_server as servers
import pytest
from builders import ROOT, Daemon, build, replace_file, titles, wait_for
from fake_pagerduty import FakePagerDuty

from engine.daemon.inbox import move, type_from_name
from engine.pagerduty.pgstate import PgState

pg_server, pg_url = servers.pg_server, servers.pg_url  # the session's PostgreSQL, a fresh schema per test


def test_the_daemon_keeps_its_state_where_state_url_says(fake: FakePagerDuty, tmp_path: Path, pg_url: str) -> None:
    daemon = Daemon(tmp_path, fake, PAGERULES_STATE_URL=pg_url)
    daemon.drop("1.json", [build(349)])
    result = daemon.once()
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "state.db").exists()  # the config's state_path is not used when state_url is set
    state = PgState(pg_url)
    assert state.get("codespar-acme-backend-api-build-349") is not None
    state.close()


def test_the_backlog_is_handled_oldest_first_and_sorted(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake)
    daemon.drop("1-old.ndjson", [build(349), build(349, "passed", eid="b2")])
    daemon.drop("2-bad.json", '{"type": "build", "id": "x", "repo": "a/b"}\nnot json\n')
    daemon.drop("3-new.json", [build(350)])
    for name, age in (("1-old.ndjson", 30), ("2-bad.json", 20), ("3-new.json", 10)):
        os.utime(daemon.events / name, (time.time() - age, time.time() - age))
    result = daemon.once()
    assert result.returncode == 1  # a file failed
    assert sorted(p.name for p in (daemon.events / "processed").iterdir()) == ["1-old.ndjson", "3-new.json"]
    assert (daemon.events / "failed" / "2-bad.json.error").read_text() == (
        "2-bad.json line 1: event x: build: 'branch' is a required property; build: 'build_number' is a required "
        "property; build: 'status' is a required property\n"
        "2-bad.json line 2: not valid JSON: Expecting value (column 1)\n")
    assert [c["method"] for c in fake.calls() if c["path"].startswith("/incidents")] == [
        "POST", "PUT", "POST", "POST"]  # 349 created, resolved (+note), then 350: oldest file first
    assert [line.split(" -> ")[0].split(": ")[-1] for line in result.stderr.splitlines() if " -> " in line] == \
        ["1-old.ndjson", "2-bad.json", "3-new.json"]


def test_new_files_page_and_rule_edits_apply_without_restart(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake).start()
    daemon.drop("a.json", [build(1)])
    wait_for(lambda: daemon.done("a.json"), 10, "a.json")
    rule = daemon.rules / "build.yaml"
    first = daemon.status()["ruleset_version"]
    replace_file(rule, rule.read_text().replace("CI build #", "CI build number "))
    wait_for(lambda: daemon.status().get("ruleset_version") not in (None, first), 10, "the edit to load")
    daemon.drop("b.json", [build(2)])
    wait_for(lambda: daemon.done("b.json"), 10, "b.json")
    replace_file(daemon.rules / "broken.yaml", "triggers:\n  - id: x\n    on: buidl\n")
    wait_for(lambda: "broken.yaml" in (daemon.status().get("last_reload_error") or ""), 10, "the reload refusal")
    daemon.drop("c.json", [build(3)])
    wait_for(lambda: daemon.done("c.json"), 10, "c.json")
    assert daemon.stop() == 0
    assert titles(fake) == ["[CodeSpar] High: acme/backend-api CI build #1 failed on main",
                            "[CodeSpar] High: acme/backend-api CI build number 2 failed on main",
                            "[CodeSpar] High: acme/backend-api CI build number 3 failed on main"]
    log = daemon.log.read_text()
    assert "reload refused, keeping ruleset" in log and "broken.yaml:3: rule x: on: unknown event type 'buidl'" in log
    status = subprocess.run([sys.executable, str(ROOT / "cli.py"), "status", "--events-dir", str(daemon.events),
                             "--json"], capture_output=True, text=True, env=daemon.env)
    data = json.loads(status.stdout)
    assert status.returncode == 1 and not data["running"] and data["files_processed"] == 3
    assert "broken.yaml:3" in data["last_reload_error"]


def dry_daemon_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A dry-run watch daemon in this process on a copy of the shipped rules (tmp_path/rules), not started."""
    from engine.daemon.watch import Daemon as InProcess
    for name in [k for k in os.environ if k.startswith(("PAGERDUTY_", "PAGERULES_"))]:
        monkeypatch.delenv(name)
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    (tmp_path / "pd.yaml").write_text("enabled: false\nrules_dir: rules\nstate_path: state.db\nevents_dir: events\n")
    return InProcess(str(tmp_path / "pd.yaml"), {}, str(tmp_path / "events"))


def test_a_rule_edit_made_while_the_daemon_starts_is_in_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen once in CI (test_a_broken_rule_edit_keeps_the_last_good_rules timed out): the daemon loaded its
    rules and only then began observing the folder, so an edit in between raised no notification and was
    never loaded. Such an edit is made here, after the load and before run() starts the observer."""
    daemon = dry_daemon_in_process(tmp_path, monkeypatch)
    loaded = daemon.loaded.ruleset.version
    rule = tmp_path / "rules" / "build.yaml"
    rule.write_text(rule.read_text().replace("CI build #", "CI build number "))
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        wait_for(lambda: daemon.loaded.ruleset.version != loaded, 10, "the edit made during start-up to load")
        [failed] = [r for r in daemon.loaded.ruleset.all_rules() if r.id == "build-failed"]
        assert "CI build number" in failed.title.source  # type: ignore[attr-defined]
    finally:
        daemon.requests.put(("stop", None))
        runner.join(15)
        daemon.state.close()


def test_a_rules_folder_emptied_while_the_daemon_starts_keeps_it_running_on_the_rules_it_has(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fourth review, item 3: the start-up check for edits made before the observer ran raised when the
    rules folder was empty for a moment (a checkout that deletes the files before writing the new ones), so
    the daemon exited with good rules loaded and nobody was paged. An empty folder now is an edit, whose
    reload is refused and keeps the rules in force."""
    daemon = dry_daemon_in_process(tmp_path, monkeypatch)
    loaded = daemon.loaded.ruleset.version
    shutil.move(tmp_path / "rules", tmp_path / "checkout")
    (tmp_path / "rules").mkdir()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        wait_for(lambda: failures or daemon.status.data["last_reload_error"], 10, "the empty folder's reload")
        assert failures == []
        assert runner.is_alive()
        assert daemon.loaded.ruleset.version == loaded  # the rules it had stay in force
        assert "rules" in daemon.status.data["last_reload_error"]
    finally:
        daemon.requests.put(("stop", None))
        runner.join(15)
        daemon.state.close()


def test_a_rules_folder_gone_while_it_is_read_counts_as_an_edit(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Fifth review, item 7: a checkout that removes the rules folder itself while the start-up check reads
    it raised OSError past the check, which caught only the rules' own errors, and the daemon exited."""
    from engine.daemon.notifications import edited_since
    daemon = dry_daemon_in_process(tmp_path, monkeypatch)
    try:
        def gone(config: Any) -> bool:
            raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "rules" / "build.yaml"))
        monkeypatch.setattr(daemon.rule_cache, "stale", gone)
        assert edited_since(daemon.loaded.config, daemon.rule_cache, daemon.config_path, daemon.overrides) is True
    finally:
        daemon.state.close()


def test_an_outage_of_20_seconds_loses_nothing(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake).start()
    fake.faults = {"status": 503, "until": time.time() + 20}
    for n in range(5):  # names in order: files that arrive together are taken by name
        daemon.drop(f"{n}.json", [build(100 + n), build(100 + n, eid=f"again-{n}")])
    wait_for(lambda: "0.json stays in events: PagerDuty unreachable (try 2)" in daemon.log.read_text(), 15,
             "the first file to be retried")
    waiting = [p for p in daemon.events.glob("*.json") if not p.name.startswith(".")]
    assert not (daemon.events / "processed").exists() and len(waiting) == 5
    wait_for(lambda: daemon.done(*[f"{n}.json" for n in range(5)]), 40, "all files after the outage")
    assert daemon.stop() == 0
    assert sorted(i["incident_key"] for i in fake.incidents.values()) == \
        [f"codespar-acme-backend-api-build-{100 + n}" for n in range(5)]
    assert "PagerDuty unreachable" in daemon.log.read_text()


def test_kill_9_mid_stream_then_restart_pages_each_incident_once(fake: FakePagerDuty, tmp_path: Path) -> None:
    fake.faults = {"latency_ms": 15}
    daemon = Daemon(tmp_path, fake)
    for f in range(20):
        daemon.drop(f"{f:02d}.ndjson", [build(1000 + f * 10 + n, eid=f"{f}-{n}") for n in range(10)])
    daemon.start()
    wait_for(lambda: len(fake.incidents) >= 60, 30, "some incidents")
    assert daemon.proc is not None
    daemon.proc.kill()  # SIGKILL: no chance to tidy up
    daemon.proc.wait(timeout=10)
    assert len(fake.incidents) < 200
    result = daemon.once()
    assert result.returncode == 0, result.stderr[-2000:]
    keys = [i["incident_key"] for i in fake.incidents.values()]
    assert len(keys) == 200 and len(set(keys)) == 200
    assert len(fake.calls("POST", "/incidents")) <= 201  # at most the one in flight is sent again
    assert len(list((daemon.events / "processed").iterdir())) == 20


def test_sigterm_finishes_the_file_in_hand_and_exits_0(fake: FakePagerDuty, tmp_path: Path) -> None:
    fake.faults = {"latency_ms": 100}
    daemon = Daemon(tmp_path, fake).start()
    daemon.drop("slow.ndjson", [build(n, eid=f"s{n}") for n in range(10)])
    wait_for(lambda: len(fake.incidents) >= 1, 10, "the first incident")
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 10
    assert daemon.done("slow.ndjson") and len(fake.incidents) == 10


def test_a_file_written_in_place_is_read_only_once_complete(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake).start()
    text = "\n".join(json.dumps(build(n, eid=f"p{n}")) for n in range(3)) + "\n"
    with (daemon.events / "inplace.ndjson").open("w") as out:
        out.write(text[:50])  # half an event: read now, the file would fail
        out.flush()
        out.write(text[50:])
    wait_for(lambda: daemon.done("inplace.ndjson"), 10, "inplace.ndjson")
    assert daemon.stop() == 0
    assert (daemon.events / "processed" / "inplace.ndjson").exists() and len(fake.incidents) == 3


def test_ignored_names_stay_and_collisions_never_overwrite(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake)
    for name in (".hidden.json", "upload.json.part", "x.tmp", "notes.txt"):
        (daemon.events / name).write_text("{}")
    (daemon.events / "processed").mkdir()
    (daemon.events / "processed" / "dup.json").write_text("earlier")
    daemon.drop("dup.json", [build(5)])
    assert daemon.once().returncode == 0
    assert (daemon.events / "processed" / "dup.json").read_text() == "earlier"
    assert json.loads((daemon.events / "processed" / "dup~1.json").read_text())["build_number"] == 5
    assert sorted(p.name for p in daemon.events.iterdir() if p.is_file()) == [
        ".hidden.json", ".pagerules-status.json", "notes.txt", "upload.json.part", "x.tmp"]


def test_reconcile_records_what_was_resolved_by_hand(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake)
    daemon.drop("a.json", [build(7)])
    daemon.once()
    fake.resolve_by_hand("codespar-acme-backend-api-build-7")
    daemon.once()  # reconciles on start
    audit = subprocess.run([sys.executable, str(ROOT / "cli.py"), "audit", "--json", "--config",
                            str(tmp_path / "pd.yaml")], capture_output=True, text=True, env=daemon.env)
    assert [(e["actor"], e["action"]) for e in json.loads(audit.stdout)][0] == ("reconcile", "resolved")


def test_json_logs_and_the_type_in_the_file_name(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake)
    untyped = {k: v for k, v in build(8).items() if k != "type"}
    daemon.drop("ci-8.build.json", [untyped])
    result = subprocess.run(daemon.args("--once", "--log-format", "json"), capture_output=True, text=True,
                            env=daemon.env, timeout=60)
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert {r["logger"] for r in records} >= {"pagerduty", "pagerules.watch"}
    assert len(fake.incidents) == 1


def test_an_unreadable_line_and_a_rejected_event_are_warnings_in_the_log_with_their_reasons(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    """Found by a new user: the daemon's log said only "problems": 1 for a file with a bad JSON line; the
    reason was in failed/NAME.error alone, and a rejected event was logged at INFO like any outcome. Someone
    reading the log at 3 a.m. now sees each one at WARNING, with what is wrong and where."""
    daemon = Daemon(tmp_path, fake)
    untyped = {k: v for k, v in build(9).items() if k != "type"}
    daemon.drop("mixed.json", json.dumps(build(8)) + "\n{\"type\": \"build\", oops\n" + json.dumps(untyped) + "\n")
    result = subprocess.run(daemon.args("--once", "--log-format", "json"), capture_output=True, text=True,
                            env=daemon.env, timeout=60)
    warnings = [r for r in map(json.loads, result.stderr.splitlines()) if r["level"] == "WARNING"]
    unreadable = [r for r in warnings if r.get("event") == "unreadable"]
    assert len(unreadable) == 1 and "mixed.json line 2" in unreadable[0]["error"], warnings
    rejected = [r for r in warnings if r.get("event") == "outcome"]
    assert len(rejected) == 1 and "'type'" in rejected[0]["error"] and "line 3" in rejected[0]["where"], warnings
    assert len(fake.incidents) == 1  # the good event still paged
    assert (daemon.events / "failed" / "mixed.json").exists()


def test_names_and_moves_in_isolation(tmp_path: Path) -> None:
    assert type_from_name("d-1.github.workflow_run.json", ["github.workflow_run", "run"]) == "github.workflow_run"
    assert type_from_name("plain.json", ["build"]) is None
    (tmp_path / "x.json").write_text("1")
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "x.json.error").write_text("older reason")
    target = move(tmp_path / "x.json", tmp_path / "failed", "why")
    assert target.name == "x~1.json" and (tmp_path / "failed" / "x~1.json.error").read_text() == "why\n"
    assert (tmp_path / "failed" / "x.json.error").read_text() == "older reason"


def test_watch_with_http_serves_the_api_beside_the_daemon(fake: FakePagerDuty, tmp_path: Path) -> None:
    import socket
    import urllib.request
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = Daemon(tmp_path, fake, PAGERULES_API_TOKEN="t-123").start("--http", f"127.0.0.1:{port}")
    daemon.drop("a.json", [build(21)])
    wait_for(lambda: daemon.done("a.json"), 10, "a.json")

    def get(path: str) -> dict[str, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": "Bearer t-123"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    wait_for(lambda: _answers(get), 10, "the HTTP server")
    assert get("/healthz")["daemon"]["running"] is True
    assert [i["incident_key"] for i in get("/api/incidents")["incidents"]] == ["codespar-acme-backend-api-build-21"]
    assert daemon.stop() == 0


def _answers(get: Callable[[str], Any]) -> bool:
    try:
        get("/healthz")
        return True
    except OSError:
        return False


def test_a_file_that_cannot_be_moved_stays_and_the_daemon_goes_on(fake: FakePagerDuty, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, fake)
    (daemon.events / "processed").write_text("a file where the folder should be")
    daemon.drop("a.json", [build(31)])
    result = daemon.once()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "a.json: handled, but cannot move it to processed/" in result.stderr
    assert (daemon.events / "a.json").exists() and len(fake.incidents) == 1
    (daemon.events / "processed").unlink()
    assert daemon.once().returncode == 0  # the next run moves it, and pages nothing again
    assert (daemon.events / "processed" / "a.json").exists() and len(fake.incidents) == 1
