"""The rule index (engine/language/index.py) gives exactly the scan's answers, in the scan's order."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builders import build, deploy, escalation, make_config, rollback, sentry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.dispatch.dispatcher import MemoryView
from engine.evaluation.evaluate import evaluate
from engine.language.index import RuleIndex
from engine.language.matchers import Condition, ConditionError, MatcherError, compile_match
from engine.language.rules import load_ruleset_text

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class FakeRule:
    id: str
    conditions: tuple[Condition, ...]


def scan_verdict(rule: FakeRule, event: dict[str, Any]) -> str:
    """What judge() does with the match block: an error, a miss or a match."""
    try:
        for condition in rule.conditions:
            holds, _ = condition.check(event)
            if not holds:
                return "miss"
    except ConditionError:
        return "error"
    return "match"


# Values that are equal in Python but not to the matcher (3, 3.0, "3", True), and ones that are never keys.
VALUES = st.sampled_from(["3", 3, 3.0, True, False, 1, 0, 1.0, None, "x", "y", "", float("nan"), float("inf")])
EVENT_VALUES = st.one_of(VALUES, st.lists(VALUES, max_size=2), st.fixed_dictionaries({"d": VALUES}))
PATHS = st.sampled_from(["a", "b", "c.d", "e.0"])
SPECS = st.one_of(
    VALUES,
    st.lists(VALUES, max_size=3),
    st.builds(lambda v: {"eq": v}, VALUES),
    st.builds(lambda v: {"in": v}, st.lists(VALUES, max_size=3)),
    st.builds(lambda v: {"ne": v}, VALUES),
    st.builds(lambda v: {"not_in": v}, st.lists(VALUES, max_size=2)),
    st.builds(lambda v: {"exists": v}, st.booleans()),
    st.builds(lambda v, w: {"exists": True, "eq": v, "ne": w}, VALUES, VALUES),
    st.just({"gt": 2}),
    st.just({"regex": "^x"}),
)


@st.composite
def rules(draw: st.DrawFn) -> list[FakeRule]:
    out = []
    for number in range(draw(st.integers(0, 12))):
        match = draw(st.dictionaries(PATHS, SPECS, max_size=3))
        try:
            out.append(FakeRule(f"r{number}", compile_match(match)))
        except MatcherError:
            continue
    return out


EVENTS = st.fixed_dictionaries({}, optional={"a": EVENT_VALUES, "b": EVENT_VALUES,
                                             "c": st.one_of(EVENT_VALUES, st.fixed_dictionaries({"d": VALUES})),
                                             "e": st.lists(VALUES, max_size=2)})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), st.lists(EVENTS, min_size=1, max_size=4))
def test_index_never_skips_a_rule_the_scan_would_not_miss(ruleset: list[FakeRule], events: list[dict[str, Any]]):
    index = RuleIndex(ruleset)
    for event in events:
        candidates = index.candidates(event)
        positions = [ruleset.index(rule) for rule in candidates]
        assert positions == sorted(set(positions)), "candidates keep the order the rules were written"
        skipped = [rule for rule in ruleset if rule not in candidates]
        for rule in ruleset:
            if rule not in candidates:
                assert scan_verdict(rule, event) == "miss", (rule, event)
        # explain: every skipped rule, and only those, named with a matcher that does not hold on the event
        reasons = index.ruled_out(event)
        assert set(reasons) == {rule.id for rule in skipped}
        for rule in skipped:
            condition = index.indexed[ruleset.index(rule)].condition
            assert condition in rule.conditions
            assert scan_verdict(FakeRule("one", (condition,)), event) == "miss"
            assert reasons[rule.id].startswith(f"match.{condition.field}: expected ")


def test_eq_3_is_not_the_text_3_nor_true_but_is_3_point_0():
    rule = FakeRule("three", compile_match({"n": 3}))
    index = RuleIndex([rule, FakeRule("other", compile_match({"n": "z"}))])
    assert [r.id for r in index.candidates({"n": 3.0})] == ["three"]
    assert [r.id for r in index.candidates({"n": 3})] == ["three"]
    assert [r.id for r in index.candidates({"n": "3"})] == []
    assert [r.id for r in index.candidates({"n": True})] == []
    assert [r.id for r in index.candidates({})] == ["three", "other"], "a missing field is the scan's error"
    assert index.ruled_out({"n": "3"}) == {"three": 'match.n: expected 3, got "3"',
                                           "other": 'match.n: expected "z", got "3"'}


def test_thousand_rules_one_bucket_each_and_a_missing_earlier_field_keeps_them():
    many = [FakeRule(f"r{n}", compile_match({"status": "failed", "repo": f"acme/x{n}"})) for n in range(1000)]
    index = RuleIndex(many)
    assert [r.id for r in index.candidates({"status": "failed", "repo": "acme/x7"})] == ["r7"]
    assert index.candidates({"status": "passed", "repo": "nope"}) == []
    # no status: the scan raises "missing field" for every rule before it reads repo, so none may be skipped
    assert len(index.candidates({"repo": "acme/x7"})) == 1000


def test_rules_without_a_constant_matcher_stay_in_the_scan_list():
    rules_ = [FakeRule("regex", compile_match({"repo": {"regex": "^acme/"}})),
              FakeRule("list-value", compile_match({"repo": ["acme/x1", "acme/x2"]})),
              FakeRule("nan", compile_match({"repo": float("nan")})),
              FakeRule("after-gt", compile_match({"n": {"gt": 1}, "repo": "acme/x1"}))]
    index = RuleIndex(rules_)
    assert [r.id for r in index.candidates({"repo": "other", "n": 5})] == ["regex", "nan", "after-gt"]


def _scan_only(ruleset: Any) -> Any:
    """The same ruleset with an index that returns every rule: the plain scan."""
    scan = dataclasses.replace(ruleset)
    for name, group in (("trigger_index", ruleset.triggers), ("recovery_index", ruleset.recoveries),
                        ("change_index", ruleset.changes)):
        indexes = {}
        for kind, members in group.items():
            index = RuleIndex(members)
            index.paths = ()
            indexes[kind] = index
        object.__setattr__(scan, name, indexes)
    return scan


def test_shipped_rules_plus_many_give_the_scans_actions(ruleset: Any):
    extra = "triggers:\n" + "".join(
        f"  - id: extra-{n}\n    on: build\n    match: {{status: failed, repo: acme/x{n}}}\n"
        f"    severity: low\n    title: 'x{n} failed'\n    incident_key: 'x-{{{{ event.repo }}}}'\n"
        for n in range(50))
    texts = {str(p): p.read_text() for p in sorted((ROOT / "rules").glob("*.yaml"))}
    indexed = load_ruleset_text({**texts, "rules/extra.yaml": extra}, make_config())
    scan = _scan_only(indexed)
    events = [build(), build(status="passed"), build(branch="dev"), build(repo="acme/x7"),
              build(repo="acme/x49", status="passed"), deploy(), deploy(rate=0.001), sentry(), sentry(level="info"),
              escalation(), escalation("low"), {k: v for k, v in build(repo="acme/x3").items() if k != "status"},
              deploy(passed=10, total=10, rate=0.01), rollback(), rollback(status="failed")]
    view = MemoryView()
    for event in events:
        assert repr(evaluate(event, indexed, view)) == repr(evaluate(event, scan, view)), event
    assert [r.id for r in indexed.triggers_for(build(repo="acme/x7")) if r.id.startswith("extra")] == ["extra-7"]
