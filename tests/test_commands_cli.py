"""The command line: exit codes, output lines, input forms, and no traceback ever."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builders import LIVE_ENV, ROOT
from click.testing import CliRunner

from cli import main
from engine.events.types import load_event_types
from engine.pagerduty.migrations import LATEST, MIGRATIONS, Migration
from engine.pagerduty.state import State

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}


def invoke(args: list[str], stdin: str = "", env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, args, input=stdin, env={**{k: None for k in os.environ
                                                               if k.startswith(("PAGERDUTY_", "PAGERULES_"))},
                                                            **(env or {})})


def lines(output: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_dry_run_on_the_shipped_example_events_exits_0() -> None:
    result = invoke(["process", "--dry-run"], (ROOT / "examples/events.jsonl").read_text())
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    assert [(o["action"], o["status"]) for o in out][:3] == [("trigger", "planned")] * 3
    assert {o["action"] for o in out} == {"trigger", "resolve", "change"}


def test_a_rejected_event_exits_1_and_the_others_are_still_processed() -> None:
    result = invoke(["process", "--dry-run"], (ROOT / "examples/bad-events.jsonl").read_text()
                    + (ROOT / "examples/events.jsonl").read_text())
    assert result.exit_code == 1
    out = lines(result.stdout)
    assert out[0] == {"action": "error", "status": "rejected", "event_id": "e9",
                      "error": "deploy.health: 'repo' is a required property"}
    assert out[1]["error"].startswith("stdin line 2: not valid JSON: Expecting property name")
    assert len([o for o in out if o["action"] == "trigger"]) == 5


def test_a_type_that_is_not_text_is_rejected_not_a_crash() -> None:
    result = invoke(["process", "--dry-run"], '{"type": ["x"], "id": 1}\n{"type": {"a": 1}, "id": 2}\n')
    assert result.exit_code == 1
    assert [o["error"] for o in lines(result.stdout)] == [
        "event has no 'type' (set it in the event, or use --type for raw webhook payloads)"] * 2


def test_a_single_object_and_an_array_are_accepted() -> None:
    event = {"type": "build", "id": "b", "repo": "a/b", "branch": "main", "build_number": 1, "status": "failed"}
    assert lines(invoke(["process", "--dry-run"], json.dumps(event, indent=2)).stdout)[0]["status"] == "planned"
    array = invoke(["process", "--dry-run"], json.dumps([event, {**event, "id": "c", "build_number": 2}]))
    assert [o["incident_key"] for o in lines(array.stdout)] == ["codespar-a-b-build-1", "codespar-a-b-build-2"]


def test_the_summary_goes_to_stderr() -> None:
    result = invoke(["process", "--dry-run"], (ROOT / "examples/events.jsonl").read_text())
    assert "9 events, 5 triggers (1 deduplicated, 4 planned), 5 resolves (1 nothing_open, 4 planned), 0 errors" \
        in result.stderr


def test_live_mode_without_settings_is_exit_2_naming_every_variable() -> None:
    result = invoke(["process"], "")
    assert result.exit_code == 2
    assert ("live mode needs PAGERDUTY_API_TOKEN, PAGERDUTY_FROM_EMAIL, PAGERDUTY_SERVICE_ID, "
            "PAGERDUTY_ESCALATION_POLICY_ID") in result.stderr


def test_disabled_needs_no_settings_and_reports_disabled() -> None:
    result = invoke(["process"], (ROOT / "examples/events.jsonl").read_text(), env={"PAGERDUTY_ENABLED": "false"})
    assert result.exit_code == 0 and {o["status"] for o in lines(result.stdout)} == {"disabled"}


def test_an_invalid_variable_is_exit_2_naming_it() -> None:
    result = invoke(["process", "--dry-run"], "", env={"PAGERDUTY_AUTO_RESOLVE": "sometimes"})
    assert result.exit_code == 2
    assert "PAGERDUTY_AUTO_RESOLVE: 'sometimes' is not a boolean" in result.stderr


def test_broken_rules_are_exit_2_for_process_with_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "r.yaml").write_text("triggers:\n  - id: x\n    on: build\n    severity: hgh\n    title: t\n"
                                     "    incident_key: k\n")
    result = invoke(["process", "--dry-run", "--rules", str(tmp_path)], "")
    assert result.exit_code == 2
    assert "r.yaml:4: rule x: severity: 'hgh' is not a severity (known: low, medium, high, critical)" in result.stderr


def test_validate_lists_every_problem_and_exits_1(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "r.yaml").write_text("triggers:\n  - id: x\n    on: biuld\n    severity: hgh\n    title: t\n"
                                     "    incident_key: k\n")
    result = invoke(["validate", "--rules", str(tmp_path)])
    assert result.exit_code == 1
    known = ", ".join(sorted(load_event_types()))
    assert [o.split(": ", 2)[1:] for o in result.stdout.splitlines()] == [
        ["rule x", f"on: unknown event type 'biuld' (did you mean 'build'? known: {known})"],
        ["rule x", "severity: 'hgh' is not a severity (known: low, medium, high, critical)"]]


def test_validate_passes_on_the_shipped_rules() -> None:
    result = invoke(["validate"])
    assert result.exit_code == 0 and result.stdout == ""
    assert "ok: 11 rules in 4 files" in result.stderr


def test_validate_reports_an_unknown_pack() -> None:
    result = invoke(["validate", "--packs", "nosuch"])
    assert result.exit_code == 1 and "unknown rule pack 'nosuch'" in result.stdout


def test_explain_says_why_each_rule_did_not_match() -> None:
    event = {"type": "build", "id": "b9", "repo": "a/b", "branch": "dev", "build_number": 7, "status": "failed"}
    result = invoke(["explain"], json.dumps(event))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:3] == [
        "event b9 (build)",
        "  build-failed  trigger   no match: when: `event.branch in params.build_branches` is false",
        '  build-fixed   recovery  no match: match.status: expected "passed", got "failed"']


def test_explain_carries_open_incidents_between_events() -> None:
    fail = {"type": "build", "id": "b1", "repo": "a/b", "branch": "main", "build_number": 7, "status": "failed"}
    result = invoke(["explain", "--json"], json.dumps(fail) + "\n" + json.dumps({**fail, "id": "b2",
                                                                                  "status": "passed"}))
    reports = [json.loads(o) for o in result.stdout.splitlines()]
    assert [o["status"] for r in reports for o in r["outcomes"]] == ["planned", "planned"]
    assert reports[1]["outcomes"][0]["incident_key"] == "codespar-a-b-build-7"


def test_type_flag_sets_the_type_of_untyped_events() -> None:
    event = {"id": "b", "repo": "a/b", "branch": "main", "build_number": 1, "status": "failed"}
    result = invoke(["process", "--dry-run", "--type", "build"], json.dumps(event))
    assert lines(result.stdout)[0]["status"] == "planned"


def test_the_token_never_appears_in_output() -> None:
    env = {**LIVE_ENV, "PAGERDUTY_ENABLED": "maybe"}
    for args in (["process"], ["process", "--dry-run"], ["validate"], ["explain"]):
        result = invoke(args, (ROOT / "examples/events.jsonl").read_text(), env=env)
        assert LIVE_ENV["PAGERDUTY_API_TOKEN"] not in result.output + result.stderr


def test_a_bad_token_value_in_the_file_is_not_echoed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "pd.yaml"
    config.write_text("api_token: [tok-secret-123]\n")
    result = invoke(["process", "--dry-run", "--config", str(config)], "")
    assert result.exit_code == 2 and "api_token: must be text" in result.stderr
    assert "tok-secret-123" not in result.stderr


def test_cli_as_a_subprocess_streams_json_lines_without_traceback() -> None:
    stdin = "not json\n" + (ROOT / "examples/events.jsonl").read_text()
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "process", "--dry-run"], input=stdin,
                          capture_output=True, text=True, env=CLEAN_ENV, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["error"].startswith("stdin line 1: not valid JSON")


SENTINEL = b'{"type": "build", "id": "ok", "repo": "a/b", "branch": "main", "build_number": 9, "status": "failed"}\n'
POISON = [b"[" * 1000 + b"]" * 1000, b'{"n": ' + b"9" * 5000 + b"}", b'{"id": NaN, "type": "build"}', b"\xff",
          b'{"type": "build", "id": "s", "repo": "a/\\ud800", "branch": "main", "build_number": 8, "status": "failed"}',
          b'{"type": "build", "id": "r", "repo": "a/\xff", "branch": "main", "build_number": 7, "status": "failed"}']


def test_process_explain_and_replay_go_on_after_poison_documents() -> None:
    stdin = b"\n".join(POISON) + b"\n" + SENTINEL
    for args in (["process", "--dry-run"], ["explain", "--json"], ["replay", "--rules", "rules", "--against",
                                                                    "rules", "-"]):
        proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], input=stdin, capture_output=True,
                              env=CLEAN_ENV, timeout=60, cwd=ROOT)
        err = proc.stderr.decode()
        assert "internal error" not in err and "Traceback" not in err, (args, err)
        if args[0] == "process":
            out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
            assert proc.returncode == 1
            assert [o["action"] for o in out] == ["error"] * 4 + ["trigger"] * 3
            assert [o["event_id"] for o in out[4:]] == ["s", "r", "ok"]
            assert out[4]["title"] == "[CodeSpar] High: a/\ufffd CI build #8 failed on main"
        elif args[0] == "explain":
            reports = [json.loads(line) for line in proc.stdout.decode().splitlines()]
            assert [r["event_id"] for r in reports] == [None] * 4 + ["s", "r", "ok"]
        else:
            assert proc.returncode == 0 and err.count("; skipped") == 4


def test_nan_is_refused_naming_the_line() -> None:
    result = invoke(["process", "--dry-run"], '{"type": "build", "id": "a"}\n{"id": NaN}\n')
    assert result.exit_code == 1
    assert lines(result.stdout)[1]["error"] == "stdin line 2: not valid JSON: NaN is not a JSON number (column 8)"


def test_alertmanager_pack_plans_triggers_without_a_false_no_rules_warning() -> None:
    payload = (ROOT / "tests/fixtures/corpus/alertmanager/firing/prometheus_msteams_firing_warning_single.json")
    result = invoke(["process", "--dry-run", "--packs", "alertmanager", "--type", "alertmanager"],
                    payload.read_text())
    assert any(o["action"] == "trigger" for o in lines(result.stdout)), result.output
    assert "no rules handle event type" not in result.stderr


def test_migrate_says_what_it_did_to_a_sqlite_state(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    State(str(path), MIGRATIONS[:1]).close()  # a state written by a release that knew migration 1 only
    first = invoke(["migrate", "--state", str(path)])
    later = ", ".join(str(v) for v in range(2, LATEST + 1))
    assert (first.exit_code, first.stdout) == (0, f"state {path}: schema version 1 -> {LATEST} (applied {later})\n")
    again = invoke(["migrate", "--state", str(path)])
    assert (again.exit_code, again.stdout) == (0, f"state {path}: schema version {LATEST}, up to date\n")
    assert "a file or a postgresql:// URL" in invoke(["migrate", "--help"]).stdout


def test_migrate_refuses_a_state_newer_than_this_release_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    future = Migration(LATEST + 1, "from the future", ("CREATE TABLE future (x TEXT)",), ("DROP TABLE future",))
    State(str(path), (*MIGRATIONS, future)).close()
    result = invoke(["migrate", "--state", str(path)])
    assert result.exit_code == 2
    assert f"has schema version {LATEST + 1}, newer than this pagerules knows ({LATEST})" in result.stderr
    assert "Traceback" not in result.output


def test_an_event_time_past_the_year_9999_is_ignored_and_every_event_is_still_handled() -> None:
    healthy = {"type": "deploy.health", "id": "h1", "repo": "acme/api", "deploy": {"version": "v1"},
               "error_rate": 0.01, "baseline_error_rate": 0.01, "sustained_minutes": 0,
               "checks": {"passed": 10, "total": 10}, "time": "9999-12-31T23:59:59-01:00"}
    failed = {"type": "build", "id": "b1", "repo": "acme/api", "branch": "main", "build_number": 1,
              "status": "failed", "url": "https://ci.example.com/b/1"}
    result = invoke(["process", "--dry-run"], "\n".join(json.dumps(e) for e in (healthy, failed)))
    assert result.exit_code == 0, result.output
    assert [(o["action"], o["event_id"]) for o in lines(result.stdout)] == [
        ("resolve", "h1"), ("change", "h1"), ("trigger", "b1")]


def test_validate_warns_of_a_route_no_rules_labels_can_reach(tmp_path: Path) -> None:
    config = tmp_path / "pd.yaml"
    config.write_text(f"rules_dir: {ROOT / 'rules'}\nroutes:\n  - match: {{repo: acme/pay}}\n    service_id: PPAY001\n"
                      "  - match: {team: payments}\n    service_id: PTEAM01\n")
    result = invoke(["validate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"{config}:5: warning: routes[1]: can never be taken: no rule's labels include 'team'" in result.stdout
    assert "routes[0]" not in result.stdout  # repo is a label the rules set
    assert invoke(["validate", "--strict", "--config", str(config)]).exit_code == 1


def test_a_dry_run_imports_no_http_web_daemon_or_database_library() -> None:
    # They cost a dry run about a third of its start-up (requests alone ~0.2 s), and a dry run calls nobody.
    code = ("import sys, runpy\nsys.argv = ['cli.py', 'process', '--dry-run']\n"
            "sys.stdin = open('examples/events.jsonl')\n"
            "try:\n    runpy.run_path('cli.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('requests', 'flask', 'watchdog', 'psycopg', 'prometheus_client') "
            "if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert '"action": "trigger"' in done.stdout  # it did the dry run
    assert done.stderr.rstrip().splitlines()[-1] == "[]"
