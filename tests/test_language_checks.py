"""Checks across rules and files (engine/language/checks.py): duplicate ids, selectors that can select nothing."""
from __future__ import annotations

from pathlib import Path

import pytest
from builders import ROOT, make_config

from engine.errors import InvalidFiles
from engine.language.checks import duplicate_ids
from engine.language.rules import load_ruleset_text


def trigger(rule_id: str, labels: str = "{kind: build}") -> str:
    return (f"  - id: {rule_id}\n    on: build\n    severity: high\n    title: x\n    incident_key: k\n"
            f"    labels: {labels}\n")


def recovery(rule_id: str, resolves: str) -> str:
    return f"  - id: {rule_id}\n    on: build\n    resolves:\n{resolves}    message: m\n"


def problems(files: dict[str, str]) -> list[str]:
    with pytest.raises(InvalidFiles) as caught:
        load_ruleset_text(files, make_config())
    return [str(p) for p in caught.value.problems]


def loads(text: str) -> bool:
    return bool(load_ruleset_text({"rules/x.yaml": text}, make_config()).all_rules())


def test_an_id_used_in_three_files_names_the_first_place_each_time() -> None:
    text = "triggers:\n" + trigger("same")
    assert problems({"rules/a.yaml": text, "rules/b.yaml": text, "rules/c.yaml": text}) == [
        "rules/b.yaml:2: rule same: duplicate rule id (first defined at rules/a.yaml:2)",
        "rules/c.yaml:2: rule same: duplicate rule id (first defined at rules/a.yaml:2)"]


def test_a_trigger_and_a_recovery_may_not_share_an_id() -> None:
    text = "triggers:\n" + trigger("same") + "recoveries:\n" + recovery("same", "      - labels: {kind: build}\n")
    assert problems({"rules/x.yaml": text}) == [
        "rules/x.yaml:9: rule same: duplicate rule id (first defined at rules/x.yaml:2)"]


def test_a_duplicate_id_is_found_even_in_a_rule_that_fails_the_schema() -> None:
    text = "triggers:\n" + trigger("same") + trigger("same").replace("severity: high", "severity: urgent")
    assert problems({"rules/x.yaml": text}) == [
        "rules/x.yaml:8: rule same: duplicate rule id (first defined at rules/x.yaml:2)",
        "rules/x.yaml:10: rule same: severity: 'urgent' is not a severity (known: low, medium, high, critical)"]


def test_duplicate_ids_on_their_own() -> None:
    found = duplicate_ids([("a", "r/1.yaml", 2), ("b", "r/1.yaml", 9), ("a", "r/2.yaml", 4)])
    assert [str(p) for p in found] == ["r/2.yaml:4: rule a: duplicate rule id (first defined at r/1.yaml:2)"]


def test_a_selector_naming_a_label_no_trigger_sets_is_an_error() -> None:
    text = "triggers:\n" + trigger("t") + "recoveries:\n" + recovery("r", "      - labels: {team: api}\n")
    assert problems({"rules/x.yaml": text}) == [
        "rules/x.yaml:12: rule r: resolves[0].labels.team: no trigger sets the label 'team' (labels set: kind), "
        "so this recovery can never resolve anything"]


def test_a_selector_with_no_trigger_at_all_says_no_labels_are_set() -> None:
    text = "recoveries:\n" + recovery("r", "      - labels: {kind: build}\n")
    assert problems({"rules/x.yaml": text}) == [
        "rules/x.yaml:5: rule r: resolves[0].labels.kind: no trigger sets the label 'kind' (labels set: none), "
        "so this recovery can never resolve anything"]


def test_a_selector_value_no_trigger_produces_is_an_error_naming_the_values_set() -> None:
    text = ("triggers:\n" + trigger("a") + trigger("b", "{kind: deploy}") + "recoveries:\n"
            + recovery("r", "      - labels: {kind: [rollback, sentry]}\n"))
    assert problems({"rules/x.yaml": text}) == [
        "rules/x.yaml:18: rule r: resolves[0].labels.kind: no trigger sets 'kind' to 'rollback' or 'sentry' "
        "(triggers set 'build', 'deploy')"]


def test_a_selector_may_name_a_label_a_trigger_in_another_file_sets() -> None:
    assert load_ruleset_text({"rules/a.yaml": "triggers:\n" + trigger("t"),
                              "rules/b.yaml": "recoveries:\n" + recovery("r", "      - labels: {kind: build}\n")},
                             make_config()).all_rules()


@pytest.mark.parametrize("trigger_labels, selector", [
    ("{kind: \"{{ event.status }}\"}", "{kind: anything}"),  # a templated label may take any value
    ("{kind: build}", "{kind: \"{{ event.status }}\"}"),  # a templated selector: known only per event
    ("{kind: build}", "{kind: [deploy, build]}"),  # any of: one is enough
])
def test_a_selector_that_can_match_some_trigger_is_fine(trigger_labels: str, selector: str) -> None:
    assert loads("triggers:\n" + trigger("t", trigger_labels) + "recoveries:\n"
                 + recovery("r", f"      - labels: {selector}\n"))


def test_a_selector_by_incident_key_is_not_checked_against_labels() -> None:
    assert loads("triggers:\n" + trigger("t") + "recoveries:\n" + recovery("r", "      - incident_key: nope\n"))


def test_a_typo_in_a_trigger_is_one_problem_not_followed_by_selectors_that_seem_to_select_nothing() -> None:
    """Found by a new user: `sevirity: high` in the shipped build rules gave the right problem, then
    "no trigger sets the label 'kind'" (and 'branch', 'repo') for the recovery that resolves it: the broken
    trigger was left out of the check across files, so one typo read as four problems."""
    text = (ROOT / "rules" / "build.yaml").read_text()
    typo = text.replace("severity:", "sevirity:", 1)
    found = problems({"rules/build.yaml": typo, **{f"rules/{p.name}": p.read_text()
                                                   for p in (ROOT / "rules").glob("*.yaml") if p.name != "build.yaml"}})
    assert [p for p in found if "no trigger sets" in p] == []
    assert any("unknown key 'sevirity' (did you mean 'severity'?" in p for p in found)
    fixed = problems({"rules/x.yaml": "triggers:\n" + trigger("t") + "recoveries:\n"
                      + recovery("r", "      - labels: {team: api}\n")})
    assert [p for p in fixed if "no trigger sets the label 'team'" in p]  # once the triggers compile, checked


def test_a_rule_file_that_cannot_be_read_is_one_problem_not_followed_by_selectors_that_seem_to_select_nothing(
        tmp_path: Path) -> None:
    """Sixth review, item 5: the same follow-on for a rule file that is not UTF-8 (its triggers unknown)."""
    from engine.language.loading import load_ruleset
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "build.yaml").write_bytes((ROOT / "rules" / "build.yaml").read_bytes() + b"# \xff\n")
    (rules / "fixed.yaml").write_text("recoveries:\n" + recovery("r", "      - labels: {kind: build}\n"))
    with pytest.raises(InvalidFiles) as caught:
        load_ruleset(make_config(f"rules_dir: {rules}"))
    found = [str(p) for p in caught.value.problems]
    assert [p for p in found if "not UTF-8" in p] and [p for p in found if "no trigger sets" in p] == [], found
