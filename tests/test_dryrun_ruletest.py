"""`pagerules test` and `pagerules replay`, and the dedup-key lint."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from builders import ROOT, rules_from
from click.testing import CliRunner

from cli import main

RECORDED = str(ROOT / "tests" / "data" / "recorded.ndjson")
HEALTHY = "health checks passed"


def invoke(args: list[str], stdin: str = ""):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, args, input=stdin)


def test_the_shipped_rule_cases_pass() -> None:
    result = invoke(["test"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == f"{len(lines) - 1} passed, 0 failed" and len(lines) > 25


def test_every_shipped_rule_is_exercised_by_a_case() -> None:
    named = set()
    for path in (ROOT / "rules" / "tests").glob("*.yaml"):
        for case in yaml.safe_load(path.read_text())["cases"]:
            named |= {outcome.get("rule") for outcome in case["expect"]}
    shipped = {r["id"] for p in (ROOT / "rules").glob("*.yaml")
               for section in ("triggers", "recoveries") for r in yaml.safe_load(p.read_text()).get(section, [])}
    assert shipped <= named, shipped - named


def test_a_failing_case_prints_a_readable_diff(tmp_path: Path) -> None:
    case = tmp_path / "mine.yaml"
    case.write_text("""cases:
  - name: build failure is critical
    events:
      - {type: build, id: b1, repo: acme/api, branch: main, build_number: 5, status: failed}
    expect:
      - {action: trigger, severity: critical, incident_key: codespar-acme-api-build-5}
      - {action: resolve}
""")
    result = invoke(["test", str(case)])
    assert result.exit_code == 1
    assert result.output.splitlines()[1:] == [
        "    outcome 1 (trigger): severity: expected 'critical', got 'high'",
        "    expected 2 outcomes, got 1",
        "      missing outcome 2: action='resolve'",
        "0 passed, 1 failed"]
    assert result.output.splitlines()[0].endswith(":2 build failure is critical FAILED")


def test_an_unexpected_outcome_is_shown(tmp_path: Path) -> None:
    case = tmp_path / "mine.yaml"
    case.write_text("""cases:
  - name: nothing pages
    events: [{type: build, id: b1, repo: acme/api, branch: main, build_number: 5, status: failed}]
    expect: []
""")
    assert invoke(["test", str(case)]).output.splitlines()[1:3] == [
        "    expected 0 outcomes, got 1",
        "      unexpected outcome 1: action='trigger', status='planned', incident_key='codespar-acme-api-build-5', "
        "severity='high', title='[CodeSpar] High: acme/api CI build #5 failed on main', rule='build-failed'"]


def test_a_broken_test_file_is_reported_at_its_line(tmp_path: Path) -> None:
    case = tmp_path / "mine.yaml"
    case.write_text("cases:\n  - name: x\n    events: []\n    expekt: []\n")
    result = invoke(["test", str(case)])
    assert result.exit_code == 2 and "mine.yaml:4: cases[0].expekt: unknown key 'expekt'" in result.output


def test_events_can_come_from_a_file(tmp_path: Path) -> None:
    case = tmp_path / "mine.yaml"
    case.write_text(f"""cases:
  - name: recorded traffic
    events: [{{file: {RECORDED}}}]
    expect:
      - {{action: trigger, incident_key: codespar-acme-api-build-10}}
      - {{action: trigger, incident_key: codespar-acme-api-deploy-v1}}
      - {{action: trigger, incident_key: codespar-acme-api-sentry-I-1}}
      - {{action: resolve, incident_key: codespar-acme-api-deploy-v1}}
      - {{action: resolve, incident_key: codespar-acme-api-sentry-I-1}}
      - {{action: change, rule: rollback-succeeded-change, summary: "acme/api rolled back from v1 to v0: {HEALTHY}"}}
      - {{action: resolve, incident_key: codespar-acme-api-build-10}}
""")
    assert invoke(["test", str(case)]).exit_code == 0


def changed_rules(tmp_path: Path) -> Path:
    """The shipped rules with four edits: release builds page, build failures are critical, Sentry
    fatal errors no longer page, rollbacks no longer resolve nor send a change."""
    new = tmp_path / "new"
    shutil.copytree(ROOT / "rules", new, ignore=shutil.ignore_patterns("tests", "packs"))
    build = new / "build.yaml"
    build.write_text(build.read_text().replace(
        "when: event.branch in params.build_branches",
        "when: event.branch in params.build_branches or event.branch == 'release'")
        .replace("    severity: high\n", "    severity: critical\n"))
    sentry = new / "sentry.yaml"
    sentry.write_text(sentry.read_text().replace("new_count: {gte: 1}", "new_count: {gte: 5}"))
    deploy = new / "deploy.yaml"
    deploy.write_text(deploy.read_text().replace("health_passed: true", "health_passed: false"))
    return new


def test_replay_shows_added_removed_changed_and_lost_resolutions(tmp_path: Path) -> None:
    result = invoke(["replay", "--rules", str(changed_rules(tmp_path)), "--against", str(ROOT / "rules"), RECORDED])
    assert result.exit_code == 1
    where = f"{RECORDED} line"
    assert result.output.splitlines() == [
        f"{where} 1: event r1: changed: codespar-acme-api-build-10 [build-failed] severity: 'high' -> 'critical'; "
        "title: '[CodeSpar] High: acme/api CI build #10 failed on main' -> "
        "'[CodeSpar] Critical: acme/api CI build #10 failed on main'",
        f"{where} 2: event r2: now pages: codespar-acme-api-build-3 [build-failed] (critical) "
        "[CodeSpar] Critical: acme/api CI build #3 failed on release",
        f"{where} 4: event r4: no longer pages: codespar-acme-api-sentry-I-1 [sentry-new-fatal] (critical) "
        "[CodeSpar] Critical: acme/api — 2 new fatal Sentry errors post-deploy",
        f"{where} 5: event r5: resolution lost: codespar-acme-api-deploy-v1 [rollback-recovered] "
        "Rolled back v1 to v0; health checks passed",
        f"{where} 5: event r5: change lost: [rollback-succeeded-change] acme/api rolled back from v1 to v0: "
        f"{HEALTHY}",
        "5 differences (build-failed: 1 changed, 1 now pages; rollback-recovered: 1 resolution lost; "
        "rollback-succeeded-change: 1 change lost; sentry-new-fatal: 1 no longer pages)"]


def test_replay_of_identical_rules_prints_no_difference(tmp_path: Path) -> None:
    result = invoke(["replay", "--rules", str(ROOT / "rules"), "--against", str(ROOT / "rules"), RECORDED])
    assert (result.exit_code, result.output) == (0, "0 differences\n")


def test_replay_reads_folders_and_stdin_and_speaks_json(tmp_path: Path) -> None:
    folder = tmp_path / "processed"
    folder.mkdir()
    shutil.copy(RECORDED, folder / "a.ndjson")
    new = str(changed_rules(tmp_path))
    from_folder = invoke(["replay", "--rules", new, str(folder), "--json"])
    from_stdin = invoke(["replay", "--rules", new, "-", "--json"], Path(RECORDED).read_text())
    assert from_folder.exit_code == from_stdin.exit_code == 1
    assert from_folder.output.splitlines()[-1] == from_stdin.output.splitlines()[-1] == (
        '{"summary": {"build-failed": {"changed": 1, "now pages": 1}, "rollback-recovered": {"resolution lost": 1}, '
        '"rollback-succeeded-change": {"change lost": 1}, "sentry-new-fatal": {"no longer pages": 1}}, '
        '"differences": 5}')


def test_lint_warns_of_keys_that_change_every_event_or_merge_types() -> None:
    ruleset = rules_from("""
triggers:
  - id: per-event
    on: sentry.errors
    severity: high
    title: x
    incident_key: "{{ event.repo | slug }}-{{ event.new_count }}"
  - id: builds
    on: build
    severity: high
    title: x
    incident_key: "{{ event.repo | slug }}-{{ event.branch }}"
""")
    assert [str(w) for w in ruleset.warnings] == [
        "rules/test.yaml:7: warning: rule per-event: incident_key uses event.new_count, which changes on every "
        "event of the same problem: each event would open a new incident",
        "rules/test.yaml:12: warning: rule builds: incident_key has the same shape as rule per-event's "
        "(sentry.errors, rules/test.yaml:7): build and sentry.errors events could merge into one incident"]


def test_strict_makes_warnings_fail(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("triggers:\n  - id: t\n    on: build\n    severity: high\n    title: x\n"
                                  "    incident_key: \"{{ event.id }}\"\n")
    assert invoke(["validate", "--rules", str(rules)]).exit_code == 0
    strict = invoke(["validate", "--rules", str(rules), "--strict"])
    assert strict.exit_code == 1 and "r.yaml:6: warning: rule t: incident_key uses event.id" in strict.output
    case = tmp_path / "c.yaml"
    case.write_text("cases:\n  - name: c\n    events: [{type: build, id: b, repo: a/b, branch: main, build_number: 1, "
                    "status: failed}]\n    expect: [{action: trigger}]\n")
    assert invoke(["test", "--rules", str(rules), str(case)]).exit_code == 0
    strict = invoke(["test", "--rules", str(rules), "--strict", str(case)])
    assert strict.output.splitlines()[-1] == "1 passed, 1 failed"


def test_a_change_summary_past_pagerdutys_limit_is_a_warning_naming_rule_line_and_case(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("changes:\n  - id: long\n    on: build\n    summary: \"{{ 'x' * 1100 }}\"\n")
    case = tmp_path / "c.yaml"
    case.write_text("cases:\n  - name: c\n    events: [{type: build, id: b, repo: a/b, branch: main, build_number: 1, "
                    "status: passed}]\n    expect: [{action: change, status: planned, rule: long}]\n")
    result = invoke(["test", "--rules", str(rules), str(case)])
    assert result.exit_code == 0, result.output
    assert f"{rules / 'r.yaml'}:4: warning: rule long: summary over 1024 characters in case 'c': cut" in result.output
    assert invoke(["test", "--rules", str(rules), "--strict", str(case)]).exit_code == 1


# ---- time in rule tests (README "Pending triggers") ---------------------------------------------
EXAMPLES = ROOT / "rules" / "examples"
HELD = ("{type: deploy.health, id: d1, %srepo: acme/api, deploy: {version: v1}, error_rate: 0.03, "
        "baseline_error_rate: 0.01, sustained_minutes: 0, checks: {passed: 1, total: 2}}")


def test_the_for_example_cases_pass_on_event_time() -> None:
    result = invoke(["test", "--rules", str(EXAMPLES), str(EXAMPLES / "tests" / "deploy-for.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "6 passed, 0 failed"


def test_a_wrong_expectation_of_a_held_trigger_fails_with_its_pending_until(tmp_path: Path) -> None:
    case = tmp_path / "held.yaml"
    case.write_text(f"""cases:
  - name: held
    until: +10m
    events:
      - {HELD % "at: +1m, "}
    expect:
      - {{action: trigger, status: planned, pending_until: "2026-01-01T00:10:00Z"}}
""")
    result = invoke(["test", "--rules", str(EXAMPLES), str(case)])
    assert result.exit_code == 1
    assert result.output.splitlines()[1:] == [
        "    outcome 1 (trigger): status: expected 'planned', got 'pending'",
        "    outcome 1 (trigger): pending_until: expected '2026-01-01T00:10:00Z', got '2026-01-01T00:11:00Z'",
        "0 passed, 1 failed"]  # until +10m is before +11m: the wake-up pages nothing


def test_a_bad_offset_or_time_and_at_together_are_named(tmp_path: Path) -> None:
    case = tmp_path / "bad.yaml"
    case.write_text(f"""cases:
  - name: bad at
    events:
      - {HELD % "at: soon, "}
    expect: []
  - name: both
    events:
      - {HELD % "at: +1m, time: '2026-01-01T00:00:00Z', "}
    expect: []
  - name: bad until
    until: later
    events:
      - {HELD % "at: +0s, "}
    expect: []
""")
    lines = invoke(["test", "--rules", str(EXAMPLES), str(case)]).output.splitlines()
    assert lines[1] == ("    events[0].at: 'soon' is not a duration: write a number and a unit, s m h d or w "
                        "(30m, 2h, 1h30m) (an offset from the case's start, such as +10m)")
    assert lines[3] == "    events[0]: give time or at, not both"
    assert lines[5].startswith("    until: 'later' is not a duration")
    assert lines[-1] == "0 passed, 3 failed"


def test_a_case_without_times_runs_from_its_start_not_the_wall_clock(tmp_path: Path) -> None:
    case = tmp_path / "untimed.yaml"
    case.write_text(f"""cases:
  - name: no times
    until: +10m
    events:
      - {HELD % ""}
    expect:
      - {{action: trigger, status: pending, pending_until: "2026-01-01T00:10:00Z"}}
      - {{action: trigger, status: planned}}
""")
    result = invoke(["test", "--rules", str(EXAMPLES), str(case)])
    assert result.exit_code == 0, result.output


def test_the_wake_up_between_events_pages_a_hold_that_passed_before_a_later_recovery(tmp_path: Path) -> None:
    """As the daemon would: a hold due at +10m pages then, so a recovery at +15m resolves it (not cancels)."""
    case = tmp_path / "later.yaml"
    recovered = HELD.replace("error_rate: 0.03", "error_rate: 0.01").replace("id: d1", "id: d2")
    case.write_text(f"""cases:
  - name: paged by the wake-up, then resolved
    events:
      - {HELD % "at: +0s, "}
      - {recovered % "at: +15m, "}
    expect:
      - {{action: trigger, status: pending, event_id: d1}}
      - {{action: trigger, status: planned, event_id: d1, incident_key: codespar-acme-api-deploy-v1-error-rate}}
      - {{action: resolve, status: planned, event_id: d2, incident_key: codespar-acme-api-deploy-v1-error-rate}}
  - name: a recovery at the due time itself still cancels
    events:
      - {HELD % "at: +0s, "}
      - {recovered % "at: +10m, "}
    expect:
      - {{action: trigger, status: pending}}
      - {{action: resolve, status: cancelled_pending}}
""")
    result = invoke(["test", "--rules", str(EXAMPLES), str(case)])
    assert result.exit_code == 0, result.output


# ---- silences and hand resolves in rule test cases -----------------------------------------------
FAILED_BUILD = "{type: build, id: b%d, %srepo: acme/api, branch: main, build_number: %d, status: failed}"
PASSED_BUILD = "{type: build, id: b%d, %srepo: acme/api, branch: main, build_number: %d, status: passed}"
KEY5 = "codespar-acme-api-build-5"


def run_case(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    case = tmp_path / "case.yaml"
    case.write_text(text)
    result = invoke(["test", str(case)])
    return result.exit_code, result.output.splitlines()


def test_a_case_silence_mutes_a_trigger_with_its_id_and_lets_the_resolve_through(tmp_path: Path) -> None:
    code, lines = run_case(tmp_path, f"""cases:
  - name: opened, silenced, resolved
    silences:
      - {{match: {{repo: acme/api}}, at: +5m, for: 1h, comment: db upgrade}}
      - {{id: other, match: {{repo: acme/web}}, until: +1h}}
    events:
      - {FAILED_BUILD % (5, "at: +1m, ", 5)}
      - {FAILED_BUILD % (6, "at: +10m, ", 5)}
      - {FAILED_BUILD % (7, "at: +20m, ", 7)}
      - {PASSED_BUILD % (8, "at: +30m, ", 8)}
      - {FAILED_BUILD % (9, "at: +65m, ", 9)}
    expect:
      - {{action: trigger, status: planned, incident_key: {KEY5}}}
      - {{action: trigger, status: silenced, silence_id: case-1, incident_key: {KEY5}}}
      - {{action: trigger, status: silenced, silence_id: case-1, incident_key: codespar-acme-api-build-7}}
      - {{action: resolve, status: planned, incident_key: {KEY5}}}
      - {{action: trigger, status: planned, incident_key: codespar-acme-api-build-9}}
""")
    assert code == 0, lines


def test_a_wrong_silence_id_is_a_difference(tmp_path: Path) -> None:
    code, lines = run_case(tmp_path, f"""cases:
  - name: named
    silences: [{{id: maint, match: {{repo: acme/api}}, for: 1h}}]
    events: [{FAILED_BUILD % (5, "", 5)}]
    expect: [{{action: trigger, status: silenced, silence_id: case-1}}]
""")
    assert code == 1
    assert lines[1] == "    outcome 1 (trigger): silence_id: expected 'case-1', got 'maint'"


def test_a_weekly_case_silence_mutes_only_inside_its_window(tmp_path: Path) -> None:
    # 2026-01-01 is a Thursday; the window is Thursdays 01:00-02:00 in Berlin (00:00-01:00 UTC in winter).
    code, lines = run_case(tmp_path, f"""cases:
  - name: a window
    silences:
      - {{match: {{repo: acme/api}}, until: "2026-02-01T00:00:00Z",
         weekly: {{weekdays: thu, between: "01:00-02:00", tz: Europe/Berlin}}}}
    events:
      - {FAILED_BUILD % (1, "at: +30m, ", 1)}
      - {FAILED_BUILD % (2, "at: +90m, ", 2)}
    expect:
      - {{action: trigger, status: silenced, silence_id: case-1}}
      - {{action: trigger, status: planned}}
""")
    assert code == 0, lines


def test_a_case_silence_given_wrong_names_the_file_line_and_field(tmp_path: Path) -> None:
    code, lines = run_case(tmp_path, f"""cases:
  - name: bad silences
    silences:
      - {{match: {{repo: acme/api}}, at: +2h, until: +1h}}
      - {{match: {{}}, for: 1h}}
      - match: {{repo: acme/api}}
        for: 1h
        weekly: {{between: "22:00-23:00", tz: Mars/Base}}
      - {{match: {{repo: acme/api}}, for: soon}}
      - {{match: {{repo: {{regex: "("}}}}, for: 1h}}
      - {{match: {{repo: acme/api}}, at: tomorrow, for: 1h}}
      - {{match: {{repo: acme/api}}}}
    events: [{FAILED_BUILD % (5, "", 5)}]
    expect: []
""")
    where = str(tmp_path / "case.yaml")
    assert code == 1
    assert lines[1:8] == [
        f"    {where}:4: silences[0].until: 2026-01-01T01:00:00Z is not after starts_at 2026-01-01T02:00:00Z",
        f"    {where}:5: silences[1].match: no matchers: a silence without any would mute every page; "
        "give at least one",
        f"    {where}:8: silences[2].weekly.tz: unknown time zone 'Mars/Base': give an IANA name such as "
        "Europe/Berlin or UTC",
        f"    {where}:9: silences[3].for: 'soon' is not a duration: write a number and a unit, s m h d or w "
        "(30m, 2h, 1h30m)",
        lines[5],
        f"    {where}:11: silences[5].at: 'tomorrow' is neither an offset from the case's start (+10m) nor an "
        "ISO 8601 time (2026-01-01T00:10:00Z)",
        lines[7]]
    assert lines[5].startswith(f"    {where}:10: silences[4].match.repo: ")
    assert lines[7].startswith(f"    {where}:12: silences[6].ends_at: say how long it lasts")
    assert lines[-1] == "0 passed, 1 failed"


def test_an_unknown_silence_field_is_a_broken_test_file(tmp_path: Path) -> None:
    case = tmp_path / "case.yaml"
    case.write_text(f"""cases:
  - name: typo
    silences:
      - {{match: {{repo: acme/api}}, for: 1h, edns_at: +2h}}
    events: [{FAILED_BUILD % (5, "", 5)}]
    expect: []
""")
    result = invoke(["test", str(case)])
    assert result.exit_code == 2 and "case.yaml:4: cases[0].silences[0].edns_at: unknown key 'edns_at'" \
        in result.output


def test_resolve_by_hand_closes_the_incident_so_the_next_trigger_pages_again(tmp_path: Path) -> None:
    code, lines = run_case(tmp_path, f"""cases:
  - name: resolved by a person, then failing again
    events:
      - {FAILED_BUILD % (1, "at: +0s, ", 5)}
      - {FAILED_BUILD % (2, "at: +1m, ", 5)}
      - {{resolve_by_hand: {KEY5}, at: +2m}}
      - {FAILED_BUILD % (3, "at: +3m, ", 5)}
      - {PASSED_BUILD % (4, "at: +4m, ", 6)}
      - {FAILED_BUILD % (5, "at: +5m, ", 5)}
      - {{resolve_by_hand: {KEY5}, time: "2026-01-01T00:06:00Z"}}
      - {PASSED_BUILD % (6, "at: +7m, ", 6)}
    expect:
      - {{action: trigger, status: planned, event_id: b1}}
      - {{action: trigger, status: deduplicated, event_id: b2}}
      - {{action: trigger, status: planned, event_id: b3}}
      - {{action: resolve, status: planned, event_id: b4}}
      - {{action: trigger, status: planned, event_id: b5}}
      - {{action: resolve, status: nothing_open, event_id: b6}}
""")
    assert code == 0, lines


def test_resolve_by_hand_of_a_key_with_nothing_open_or_given_wrong_fails_the_case(tmp_path: Path) -> None:
    code, lines = run_case(tmp_path, f"""cases:
  - name: a typo in the key
    events:
      - {FAILED_BUILD % (1, "", 5)}
      - {{resolve_by_hand: codespar-acme-api-build-55, at: +1m}}
    expect: [{{action: trigger, status: planned}}]
  - name: times given wrong
    events:
      - {FAILED_BUILD % (1, "", 5)}
      - {{resolve_by_hand: {KEY5}, at: +1m, time: "2026-01-01T00:01:00Z"}}
      - {{resolve_by_hand: {KEY5}, time: yesterday}}
      - {{resolve_by_hand: {KEY5}, at: later}}
    expect: [{{action: trigger, status: planned}}]
""")
    assert code == 1
    assert lines[1] == ("    events[1]: resolve_by_hand: nothing open for 'codespar-acme-api-build-55' at "
                        "2026-01-01T00:01:00Z")
    assert lines[3:6] == [
        "    events[1]: give time or at, not both",
        "    events[2].time: 'yesterday' is not ISO 8601 (e.g. 2026-01-01T00:00:00Z)",
        "    events[3].at: 'later' is not a duration: write a number and a unit, s m h d or w (30m, 2h, 1h30m) "
        "(an offset from the case's start, such as +10m)"]
    assert lines[-1] == "0 passed, 2 failed"


def test_replay_until_runs_the_last_wake_up_later_and_a_bad_one_exits_2(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "deploy-for.yaml").write_text((EXAMPLES / "deploy-for.yaml").read_text().replace("    for: 10m\n", ""))
    recorded = tmp_path / "r.ndjson"
    recorded.write_text('{"type": "deploy.health", "id": "d1", "time": "2026-01-01T00:00:00Z", "repo": "acme/api", '
                        '"deploy": {"version": "v1"}, "error_rate": 0.03, "baseline_error_rate": 0.01, '
                        '"sustained_minutes": 0, "checks": {"passed": 1, "total": 2}}\n')
    args = ["replay", "--rules", str(EXAMPLES), "--against", str(old), str(recorded)]
    assert invoke(args).output.splitlines()[-1] == "1 differences (deploy-error-rate-held: 1 no longer pages)"
    for until in ("+15m", "2026-01-01T00:10:00Z"):
        result = invoke([*args, "--until", until])
        assert result.output.splitlines()[-1] == (
            "2 differences (deploy-error-rate-held: 1 no longer pages, 1 now pages)"), result.output
        assert result.output.splitlines()[1].startswith("wake-up at 2026-01-01T00:10:00Z: event d1: now pages: ")
    bad = invoke([*args, "--until", "soon"])
    assert bad.exit_code == 2 and "--until: 'soon' is not an ISO 8601 time" in bad.output


def test_unquoted_yaml_timestamps_are_taken_as_the_times_they_say(tmp_path: Path) -> None:
    code, lines = run_case(tmp_path, """cases:
  - name: unquoted
    start: 2026-01-01T00:00:00Z
    silences:
      - {match: {repo: acme/api}, starts_at: 2026-01-01T00:00:00Z, until: 2026-01-01T01:00:00+00:00}
    events:
      - {type: build, id: b1, time: 2026-01-01T00:30:00Z, repo: acme/api, branch: main, build_number: 5, status: failed}
      - {type: build, id: b2, time: 2026-01-01T02:00:00Z, repo: acme/api, branch: main, build_number: 5, status: failed}
      - {resolve_by_hand: codespar-acme-api-build-5, time: 2026-01-01T02:10:00Z}
      - {type: build, id: b3, time: 2026-01-01T02:20:00Z, repo: acme/api, branch: main, build_number: 5, status: failed}
    expect:
      - {action: trigger, status: silenced, event_id: b1}
      - {action: trigger, status: planned, event_id: b2}
      - {action: trigger, status: planned, event_id: b3}
""")
    assert code == 0, lines
