"""Rule loading: every problem, each as FILE:LINE: rule ID: message, from inline YAML."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from builders import ROOT, make_config, rules_from
from click.testing import CliRunner

from cli import main
from engine.errors import InvalidFiles
from engine.events.types import load_event_types
from engine.language.model import Flap
from engine.language.rules import load_ruleset_text
from engine.language.templates import make_context

KNOWN_TYPES = ", ".join(sorted(load_event_types()))  # the schemas/events/ folder decides, not this file

GOOD_TRIGGER = """
  - id: build-failed
    on: build
    severity: high
    title: "{{ event.repo }}"
    incident_key: "{{ event.repo | slug }}"
    labels: {kind: build}
"""


def problems(text: str, filename: str = "rules/x.yaml") -> list[str]:
    with pytest.raises(InvalidFiles) as caught:
        rules_from(text, filename=filename)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("snippet, expected", [
    ("    severity: urgent\n",
     "rules/x.yaml:7: rule t: severity: 'urgent' is not a severity (known: low, medium, high, critical)"),
    ("    on: buidl\n",
     f"rules/x.yaml:7: rule t: on: unknown event type 'buidl' (did you mean 'build'? known: {KNOWN_TYPES})"),
    ("    tittle: x\n",
     "rules/x.yaml:7: rule t: tittle: unknown key 'tittle' (did you mean 'title'? known: description, details, flap, "
     "for, id, incident_key, labels, links, match, on, renotify, severity, title, vars, when)"),
    ("    match:\n      branch: {eqq: main}\n",
     "rules/x.yaml:8: rule t: match.branch: unknown matcher 'eqq' (did you mean 'eq'? known: eq, exists, gt, gte, "
     "in, lt, lte, ne, not_in, regex)"),
    ("    match:\n      branch: {regex: '(unclosed'}\n",
     "rules/x.yaml:8: rule t: match.branch: regex: invalid regular expression '(unclosed': missing ), unterminated "
     "subpattern at position 0"),
    ("    match:\n      build_number: {gte: [1]}\n",
     "rules/x.yaml:8: rule t: match.build_number: gte: expected a number, got [1]"),
    ("    match:\n      build_number: {in: 3}\n",
     "rules/x.yaml:8: rule t: match.build_number: in: expected a list of values, got 3"),
    ("    match:\n      status: {exists: false, eq: x}\n",
     "rules/x.yaml:8: rule t: match.status: exists: false cannot be combined with other operators"),
    ("    when: event.branch in params.build_brances\n",
     "rules/x.yaml:7: rule t: when: unknown param 'build_brances' (did you mean 'build_branches'? known: "
     "build_branches) (params come from pagerduty.yaml)"),
    ("    when: evnt.branch == 'main'\n",
     "rules/x.yaml:7: rule t: when: unknown name 'evnt' (did you mean 'event'? known: event, params)"),
    # Issue 13 item 7: Jinja's own globals (cycler, lipsum, ...) are never suggested nor listed as known;
    # a bare event field is suggested as event.FIELD, and the rule's vars are known.
    ("    when: cyclr\n", "rules/x.yaml:7: rule t: when: unknown name 'cyclr' (known: event, params)"),
    ("    when: lipsm(1)\n", "rules/x.yaml:7: rule t: when: unknown name 'lipsm' (known: event, params)"),
    ("    when: repo == 'a/b'\n",
     "rules/x.yaml:7: rule t: when: unknown name 'repo' (did you mean 'event.repo'? known: event, params)"),
    ("    when: buidl_number > 3\n",
     "rules/x.yaml:7: rule t: when: unknown name 'buidl_number' (did you mean 'event.build_number'? known: event, "
     "params)"),
    ("    vars: {ratio: '1', share: ratoi * 2}\n",
     "rules/x.yaml:7: rule t: vars.share: unknown name 'ratoi' (did you mean 'ratio'? known: event, params, ratio)"),
    ("    when: event.branch ==\n",
     "rules/x.yaml:7: rule t: when: template syntax error: unexpected 'end of template'"),
    ("    labels: {kind: '{% if x %}{{ y | nosuch }}{% endif %}'}\n",
     "rules/x.yaml:7: rule t: labels.kind: unknown filter 'nosuch' (known: abs, attr, batch, capitalize, center, "
     "count, d, decimals, default, dictsort, digest, e, escape, filesizeformat, first, float, forceescape, "
     "format, groupby, "
     "indent, int, items, join, last, length, list, lower, map, max, min, pprint, random, reject, rejectattr, "
     "replace, reverse, round, safe, select, selectattr, slice, slug, sort, string, striptags, sum, title, tojson, "
     "trim, truncate, unique, upper, urlencode, urlize, wordcount, wordwrap, xmlattr)"),
    ("    title: 3\n",
     "rules/x.yaml:7: rule t: title: expected a string, got 3"),
    # Bombs and sandbox refusals that are certain at load (issue 11 items 7 and 11):
    ("    title: \"{{ 'a' * 10**9 }}\"\n",
     "rules/x.yaml:7: rule t: title: refused by the sandbox: repeating a value 1000000000 times makes more than "
     "1000000 items"),
    ("    title: \"{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}\"\n",
     "rules/x.yaml:7: rule t: title: refused by the sandbox: range() of 99999 items; at most 1000"),
    ("    title: \"{{ ''.__class__ }}\"\n",
     "rules/x.yaml:7: rule t: title: refused by the sandbox: access to attribute '__class__' of 'str' object is "
     "unsafe."),
    ("    title: \"{{ cycler.__init__.__globals__ }}\"\n",
     "rules/x.yaml:7: rule t: title: refused by the sandbox: access to attribute '__init__' of 'type' object is "
     "unsafe."),
    ("    when: \"event.repo.__str__() != ''\"\n",
     "rules/x.yaml:7: rule t: when: refused by the sandbox: access to attribute '__str__' is unsafe (the sandbox "
     "refuses it on every value)"),
    ("    match:\n      branch: {regex: '(a)\\1'}\n",
     "rules/x.yaml:8: rule t: match.branch: regex: regular expression '(a)\\\\1' is not supported (invalid escape "
     "sequence: \\1): patterns are matched by RE2, in time linear in the text, which has no backreferences (\\1) "
     "or lookarounds ((?=...), (?<=...)); write it without them"),
    ("    for: 10 minutes\n",
     "rules/x.yaml:7: rule t: for: '10 minutes' is not a duration: write a number and a unit, s m h d or w "
     "(30m, 2h, 1h30m)"),
    ("    for: 0s\n", "rules/x.yaml:7: rule t: for: '0s' is no time at all: give a duration above zero"),
])
def test_each_kind_of_mistake_gets_its_own_message(snippet: str, expected: str) -> None:
    base = ["triggers:\n", "  - id: t\n", "    on: build\n", "    severity: high\n", "    title: x\n",
            "    incident_key: k\n"]
    replaced = snippet.split(":")[0] + ":"
    kept = [line for line in base if not line.startswith(replaced)]  # the snippet replaces that key
    line = len(kept) + 1  # where the snippet starts; "7" and "8" in `expected` are relative to 6 kept lines
    expected = expected.replace("x.yaml:7:", f"x.yaml:{line}:").replace("x.yaml:8:", f"x.yaml:{line + 1}:")
    assert problems("".join(kept) + snippet) == [expected]


def test_jinja_globals_still_work_though_never_suggested() -> None:
    ruleset = rules_from("triggers:\n  - id: t\n    on: build\n    severity: high\n    incident_key: k\n"
                         "    title: \"{% for i in range(2) %}{{ i }}{% endfor %}{{ dict(a=1).a }}\"\n")
    [trigger] = ruleset.triggers["build"]
    assert trigger.title is not None and trigger.title.render(make_context({})) == "011"


def test_every_problem_is_reported_not_only_the_first() -> None:
    found = problems("""triggers:
  - id: a
    on: buidl
    severity: urgent
    title: x
    incident_key: k
  - id: a
    on: build
    severity: high
    title: "{{ event.repo"
    incident_key: k
""")
    assert found == [
        f"rules/x.yaml:3: rule a: on: unknown event type 'buidl' (did you mean 'build'? known: {KNOWN_TYPES})",
        "rules/x.yaml:4: rule a: severity: 'urgent' is not a severity (known: low, medium, high, critical)",
        "rules/x.yaml:7: rule a: duplicate rule id (first defined at rules/x.yaml:2)",
        "rules/x.yaml:10: rule a: title: template syntax error: unexpected end of template, expected 'end of print "
        "statement'.",
    ]


def test_duplicate_ids_across_files_name_both_places() -> None:
    text = "triggers:" + GOOD_TRIGGER
    with pytest.raises(InvalidFiles) as caught:
        load_ruleset_text({"rules/a.yaml": text, "rules/b.yaml": text}, make_config())
    assert [str(p) for p in caught.value.problems] == [
        "rules/b.yaml:2: rule build-failed: duplicate rule id (first defined at rules/a.yaml:2)"]


def test_a_recovery_selecting_labels_no_trigger_sets_is_an_error() -> None:
    found = problems("triggers:" + GOOD_TRIGGER + """
recoveries:
  - id: fixed
    on: build
    resolves:
      - labels: {knd: build}
      - labels: {kind: deploy}
    message: m
""")
    assert found == [
        "rules/x.yaml:13: rule fixed: resolves[0].labels.knd: no trigger sets the label 'knd' (labels set: kind), "
        "so this recovery can never resolve anything",
        "rules/x.yaml:14: rule fixed: resolves[1].labels.kind: no trigger sets 'kind' to 'deploy' (triggers set "
        "'build')",
    ]


def test_yaml_syntax_errors_point_at_the_line() -> None:
    assert problems("triggers:\n  - id: a\n    on: [build\n") == [
        "rules/x.yaml:4: invalid YAML: expected ',' or ']', but got '<stream end>'"]


def test_a_repeated_key_is_an_error_not_a_silent_override_and_names_its_rule() -> None:
    found = problems("triggers:" + GOOD_TRIGGER + "    severity: low\n")
    assert found == ["rules/x.yaml:8: rule build-failed: severity: duplicate key 'severity' (first at line 4)"]


def test_a_repeated_key_deeper_in_a_rule_names_the_rule_and_the_path() -> None:
    found = problems("triggers:" + GOOD_TRIGGER + """recoveries:
  - id: fixed
    on: build
    resolves:
      - labels:
          kind: build
          kind: deploy
    message: m
""")
    assert found == ["rules/x.yaml:14: rule fixed: resolves[0].labels.kind: duplicate key 'kind' (first at line 13)"]


def test_a_repeated_key_outside_any_rule_names_no_rule() -> None:
    found = problems("triggers:" + GOOD_TRIGGER + "triggers: []\n")
    assert found == ["rules/x.yaml:8: duplicate key 'triggers' (first at line 1)"]


def test_on_and_no_stay_strings_in_rule_files() -> None:
    ruleset = rules_from("""
triggers:
  - id: t
    on: build
    match: {status: no}
    severity: high
    title: x
    incident_key: k
""")
    [trigger] = ruleset.triggers["build"]
    assert trigger.conditions[0].arg == "no"


def test_top_level_must_be_triggers_recoveries_and_changes() -> None:
    assert problems("trigers: []\n") == [
        "rules/x.yaml:1: trigers: unknown key 'trigers' (did you mean 'triggers'? known: changes, recoveries, "
        "triggers)"]


def test_the_shipped_rules_validate_five_triggers_four_recoveries_two_changes(ruleset) -> None:  # type: ignore[no-untyped-def]
    assert len(ruleset.all_rules()) == 11 and not ruleset.warnings


def test_validate_names_each_unreadable_rule_file_and_its_line(tmp_path: Path) -> None:
    # Issue 11 item 6: these gave "internal error: ReaderError/UnicodeDecodeError/IsADirectoryError" and a traceback.
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "nul.yaml").write_bytes(b"triggers: []\n\x00\n")
    (rules / "e9.yaml").write_bytes(b"triggers: []\n# caf\xe9\n")
    (rules / "bad.yaml").mkdir()
    result = CliRunner().invoke(main, ["validate", "--rules", str(rules)])
    assert result.exit_code == 1 and "Traceback" not in result.output and "internal error" not in result.output
    found = [line.replace(str(rules), "rules") for line in result.output.splitlines() if ".yaml:" in line]
    assert found == [
        "rules/bad.yaml:1: is a folder, not a file: rename or move it",
        "rules/e9.yaml:2: not UTF-8 text (byte 0xe9); save the file as UTF-8",
        "rules/nul.yaml:2: invalid YAML: the character U+0000 is not allowed in YAML text (a control character or "
        "a lone surrogate); remove it",
    ]


CHANGE = """
changes:
  - id: deployed
    on: deploy.health
    when: event.checks.passed == event.checks.total
    summary: "{{ event.repo }} {{ event.deploy.version }} deployed"
"""


def test_a_change_rule_compiles_with_the_event_repo_as_its_default_label() -> None:
    ruleset = rules_from(CHANGE)
    (change,) = ruleset.changes["deploy.health"]
    assert [(name, t.source) for name, t in change.labels] == [("repo", "{{ event.repo }}")]
    assert change.line == 3 and change.filename == "rules/test.yaml"
    assert [r.id for r in ruleset.all_rules()] == ["deployed"] and ruleset.has_rules("deploy.health")


def test_a_change_rule_with_labels_keeps_only_its_own() -> None:
    ruleset = rules_from(CHANGE + '    labels: {team: payments}\n')
    assert [(n, t.source) for n, t in ruleset.changes["deploy.health"][0].labels] == [("team", "payments")]


def test_change_rule_mistakes_name_file_line_rule_and_field_all_at_once() -> None:
    assert problems("""changes:
  - id: c
    on: deploy.health
    summary: "{{ event.repo"
    labels: {team: "{{ nope }}"}
    links:
      - {href: "ftp://example.com/x", txt: deploy}
    severity: high
""") == [
        "rules/x.yaml:4: rule c: summary: template syntax error: unexpected end of template, expected 'end of print "
        "statement'.",
        "rules/x.yaml:5: rule c: labels.team: unknown name 'nope' (known: event, params)",
        "rules/x.yaml:7: rule c: links[0].txt: unknown key 'txt' (did you mean 'text'? known: href, text)",
        "rules/x.yaml:7: rule c: links[0].href: not an http(s) URL (its scheme is 'ftp')",
        "rules/x.yaml:8: rule c: severity: unknown key 'severity' (known: description, details, id, labels, links, "
        "match, on, summary, vars, when)",
    ]


def test_a_change_needs_a_summary() -> None:
    assert problems("changes:\n  - id: c\n    on: deploy.health\n") == [
        "rules/x.yaml:2: rule c: 'summary' is a required property"]


def test_rule_ids_are_unique_across_triggers_recoveries_and_changes() -> None:
    found = problems("triggers:" + GOOD_TRIGGER + """
changes:
  - id: build-failed
    on: build
    summary: x
""")
    assert found == ["rules/x.yaml:10: rule build-failed: duplicate rule id (first defined at rules/x.yaml:2)"]


def test_trigger_links_compile_and_a_constant_non_web_href_is_refused() -> None:
    ruleset = rules_from("triggers:" + GOOD_TRIGGER + '    links:\n      - {href: "{{ event.url }}", text: CI}\n')
    (trigger,) = ruleset.triggers["build"]
    assert [(link.href.source, link.text.source if link.text else None) for link in trigger.links] == [
        ("{{ event.url }}", "CI")]
    assert problems("triggers:" + GOOD_TRIGGER + "    links:\n      - {href: 'javascript:alert(1)'}\n") == [
        "rules/x.yaml:9: rule build-failed: links[0].href: not an http(s) URL (its scheme is 'javascript')"]


@pytest.mark.parametrize("written, seconds", [("30s", 30.0), ("10m", 600.0), ("1h", 3600.0), ("1h30m", 5400.0)])
def test_for_is_a_duration_in_seconds_and_absent_means_page_at_once(written: str, seconds: float) -> None:
    ruleset = rules_from("triggers:\n  - id: t\n    on: build\n    severity: high\n    title: x\n"
                         f"    incident_key: k\n    for: {written}\n  - id: u\n    on: build\n    severity: high\n"
                         "    title: x\n    incident_key: k2\n")
    assert [(t.id, t.pending_for) for t in ruleset.triggers["build"]] == [("t", seconds), ("u", None)]


def test_renotify_and_flap_compile_to_seconds_and_a_bad_one_is_named_at_its_line() -> None:
    ruleset = rules_from("triggers:" + GOOD_TRIGGER + "    renotify: 4h\n    flap: {opens: 3, within: 30m}\n")
    (trigger,) = ruleset.triggers["build"]
    assert (trigger.renotify, trigger.flap) == (14400.0, Flap(3, 1800.0))
    bad = "    renotify: soon\n    flap:\n      opens: 3\n      within: 0m\n"
    assert problems("triggers:" + GOOD_TRIGGER + bad) == [
        "rules/x.yaml:8: rule build-failed: renotify: 'soon' is not a duration: write a number and a unit, "
        "s m h d or w (30m, 2h, 1h30m)",
        "rules/x.yaml:11: rule build-failed: flap.within: '0m' is no time at all: give a duration above zero"]
    assert problems("triggers:" + GOOD_TRIGGER + "    flap: {opens: 1, within: 30m}\n")[0].startswith(
        "rules/x.yaml:8: rule build-failed: flap.opens:")
