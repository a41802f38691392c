"""Every matcher operator: what matches, what does not, and what explain says."""
from __future__ import annotations

import time

import pytest

from engine.language.matchers import ConditionError, MatcherError, compile_match

EVENT = {"branch": "main", "build_number": 349, "post_deploy": True, "ratio": 5.0, "tags": ["a"],
         "deploy": {"version": "v2.4.1"}, "items": [{"name": "x"}]}

TABLE = [
    # (match, holds)
    ({"branch": "main"}, True),
    ({"branch": "dev"}, False),
    ({"branch": ["dev", "main"]}, True),
    ({"branch": {"eq": "main"}}, True),
    ({"branch": {"ne": "main"}}, False),
    ({"build_number": {"gt": 348}}, True),
    ({"build_number": {"gt": 349}}, False),
    ({"build_number": {"gte": 349}}, True),
    ({"build_number": {"lt": 349}}, False),
    ({"build_number": {"lte": 349}}, True),
    ({"build_number": {"gte": 300, "lt": 400}}, True),
    ({"branch": {"in": ["main", "release"]}}, True),
    ({"branch": {"not_in": ["main", "release"]}}, False),
    ({"branch": {"regex": "^ma"}}, True),
    ({"branch": {"regex": "^release/"}}, False),
    ({"build_number": {"regex": "^34"}}, True),
    ({"branch": {"exists": True}}, True),
    ({"missing": {"exists": False}}, True),
    ({"missing": {"exists": True, "eq": 1}}, False),
    ({"deploy.version": "v2.4.1"}, True),
    ({"items.0.name": "x"}, True),
    ({"post_deploy": True}, True),
    ({"post_deploy": 1}, False),           # strict: true is not 1
    ({"build_number": "349"}, False),      # strict: text is not a number
    ({"ratio": 5}, True),                  # 5 == 5.0: both numbers
]


@pytest.mark.parametrize("match, holds", TABLE, ids=[str(m) for m, _ in TABLE])
def test_matcher_table(match: dict, holds: bool) -> None:  # type: ignore[type-arg]
    assert all(c.check(EVENT)[0] for c in compile_match(match)) is holds


@pytest.mark.parametrize("match, reason", [
    ({"branch": "dev"}, 'match.branch: expected "dev", got "main"'),
    ({"build_number": {"gt": 400}}, "match.build_number: expected > 400, got 349"),
    ({"branch": {"in": ["a", "b"]}}, 'match.branch: expected one of ["a", "b"], got "main"'),
    ({"branch": {"regex": "^r"}}, 'match.branch: expected a match for /^r/, got "main"'),
    ({"branch": {"ne": "main"}}, 'match.branch: expected anything but "main", got "main"'),
    ({"missing": {"exists": True}}, "match.missing: expected the field to exist, got nothing (the field is missing)"),
])
def test_a_miss_explains_itself_with_the_value_seen(match: dict, reason: str) -> None:  # type: ignore[type-arg]
    [condition] = compile_match(match)
    holds, seen = condition.check(EVENT)
    assert not holds and condition.why_not(seen) == reason


def test_exists_is_checked_before_other_operators_on_the_field() -> None:
    assert [c.op for c in compile_match({"x": {"eq": 1, "exists": True}})] == ["exists", "eq"]


def test_a_missing_field_cannot_be_evaluated() -> None:
    [condition] = compile_match({"deploy.environment": "production"})
    with pytest.raises(ConditionError, match="match.deploy.environment: missing field 'deploy.environment'"):
        condition.check(EVENT)


def test_comparing_text_with_a_number_cannot_be_evaluated() -> None:
    [condition] = compile_match({"branch": {"gt": 3}})
    with pytest.raises(ConditionError, match='cannot compare "main" > 3: expected a number'):
        condition.check(EVENT)


@pytest.mark.parametrize("match, message", [
    ({"x": {"eqq": 1}}, "unknown matcher 'eqq' (did you mean 'eq'? known: eq, exists, gt, gte, in, lt, lte, ne, "
                        "not_in, regex)"),
    ({"x": {}}, "an empty matcher matches nothing; give a value or an operator"),
    ({"x": {"exists": "yes"}}, 'exists: expected true or false, got "yes"'),
    ({"x..y": 1}, "'x..y' is not a dotted field path"),
    ({"x": {"eq": [1]}}, "eq: expected a single value, got [1]"),
])
def test_matcher_mistakes_are_errors(match: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(MatcherError) as caught:
        compile_match(match)
    assert str(caught.value) == message


def test_a_catastrophic_regex_matches_in_linear_time() -> None:
    # `^(a+)+$` takes seconds in Python's re against 28 a's and a b, doubling with each a; RE2 does not backtrack.
    [condition] = compile_match({"branch": {"regex": "^(a+)+$"}})
    started = time.perf_counter()
    assert condition.check({"branch": "a" * 5000 + "b"})[0] is False
    assert time.perf_counter() - started < 0.5
    assert condition.check({"branch": "a" * 5000})[0] is True


@pytest.mark.parametrize("pattern", [r"(a)\1", r"main(?=x)", r"(?<!re)lease"])
def test_a_regex_re2_cannot_match_is_refused_at_load(pattern: str) -> None:
    with pytest.raises(MatcherError, match=r"is not supported .*: patterns are matched by RE2"):
        compile_match({"branch": {"regex": pattern}})
