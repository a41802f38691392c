"""The `match:` block: dotted field path -> matcher, compiled into Conditions.

A scalar means equality, a list means any of, a mapping is a set of operators
from OPERATORS that must all hold. Equality is strict about types: ``true``
does not equal ``1`` and ``"349"`` does not equal ``349``.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import re2

from engine.names import unknown_name

_MISSING = object()


class MatcherError(ValueError):
    """A matcher written wrong; ``path`` is where inside ``match`` (for the line)."""

    def __init__(self, message: str, path: tuple[str, ...] = ()):
        super().__init__(message)
        self.path = path


class ConditionError(Exception):
    """A condition that cannot be evaluated on this event (missing field, wrong type)."""


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def strict_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and a == b


_ORDERED = {(int, int), (int, float), (float, int), (float, float), (str, str)}  # bool is not a number here


def _compare(symbol: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def test(seen: Any, expected: Any) -> bool:
        if (type(seen), type(expected)) not in _ORDERED:
            raise ConditionError(f"cannot compare {_show(seen)} {symbol} {_show(expected)}: expected a number")
        return compare(seen, expected)
    return test


# RE2 matches in time linear in the text: `^(a+)+$` against "aaaa…b" takes microseconds, where Python's
# backtracking `re` takes seconds per event, doubling with each character (README: Matchers).
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # it would print to stderr; the refusal is a Problem instead


def _regex(seen: Any, pattern: Any) -> bool:
    if not _is_scalar(seen) or seen is None or isinstance(seen, bool):
        raise ConditionError(f"regex needs text or a number, got {_show(seen)}")
    return pattern.search(str(seen)) is not None


def _check_scalar(value: Any) -> Any:
    if not _is_scalar(value):
        raise MatcherError(f"expected a single value, got {_show(value)}")
    return value


def _check_number(value: Any) -> Any:
    if not (_is_number(value) or isinstance(value, str)):
        raise MatcherError(f"expected a number, got {_show(value)}")
    return value


def _check_list(value: Any) -> Any:
    if not isinstance(value, list) or not all(_is_scalar(v) for v in value):
        raise MatcherError(f"expected a list of values, got {_show(value)}")
    return tuple(value)


def _check_regex(value: Any) -> Any:
    """The pattern compiled by RE2. Python's ``re`` checks the syntax first, for its familiar messages."""
    if not isinstance(value, str):
        raise MatcherError(f"expected a regular expression, got {_show(value)}")
    try:
        re.compile(value)
    except re.error as exc:
        raise MatcherError(f"invalid regular expression {value!r}: {exc}") from None
    try:
        return re2.compile(value, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise MatcherError(f"regular expression {value!r} is not supported ({reason}): patterns are matched by RE2, "
                           "in time linear in the text, which has no backreferences (\\1) or lookarounds "
                           "((?=...), (?<=...)); write it without them") from None


def _check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise MatcherError(f"expected true or false, got {_show(value)}")
    return value


@dataclass(frozen=True)
class Operator:
    check_arg: Callable[[Any], Any]
    test: Callable[[Any, Any], bool]
    explain: Callable[[Any], str]


# The matcher operators, one entry each; README documents every one (a test checks).
OPERATORS: dict[str, Operator] = {
    "eq": Operator(_check_scalar, strict_equal, lambda e: f"{_show(e)}"),
    "ne": Operator(_check_scalar, lambda s, e: not strict_equal(s, e), lambda e: f"anything but {_show(e)}"),
    "gt": Operator(_check_number, _compare(">", lambda s, e: s > e), lambda e: f"> {_show(e)}"),
    "gte": Operator(_check_number, _compare(">=", lambda s, e: s >= e), lambda e: f">= {_show(e)}"),
    "lt": Operator(_check_number, _compare("<", lambda s, e: s < e), lambda e: f"< {_show(e)}"),
    "lte": Operator(_check_number, _compare("<=", lambda s, e: s <= e), lambda e: f"<= {_show(e)}"),
    "in": Operator(_check_list, lambda s, e: any(strict_equal(s, x) for x in e),
                   lambda e: f"one of {_show(list(e))}"),
    "not_in": Operator(_check_list, lambda s, e: not any(strict_equal(s, x) for x in e),
                       lambda e: f"none of {_show(list(e))}"),
    "regex": Operator(_check_regex, _regex, lambda e: f"a match for /{e.pattern}/"),
    "exists": Operator(_check_bool, lambda s, e: (s is not _MISSING) == e,
                       lambda e: "the field to exist" if e else "the field to be absent"),
}


@dataclass(frozen=True)
class Condition:
    """One operator applied to one field of the event."""

    field: str
    path: tuple[str, ...]
    op: str
    arg: Any
    test: Callable[[Any, Any], bool] = dataclasses.field(repr=False, compare=False)

    def check(self, event: Mapping[str, Any]) -> tuple[bool, Any]:
        """(holds, value seen). Raises ConditionError when it cannot be evaluated."""
        path = self.path
        seen = event.get(path[0], _MISSING) if len(path) == 1 else lookup(event, path)
        if seen is _MISSING and self.op != "exists":
            raise ConditionError(f"match.{self.field}: missing field '{self.field}'")
        return self.test(seen, self.arg), seen

    def why_not(self, seen: Any) -> str:
        shown = "nothing (the field is missing)" if seen is _MISSING else _show(seen)
        return f"match.{self.field}: expected {OPERATORS[self.op].explain(self.arg)}, got {shown}"


def lookup(event: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a dotted path; digits index lists. ``_MISSING`` when absent."""
    value: Any = event
    for part in path:
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def compile_match(match: Mapping[str, Any]) -> tuple[Condition, ...]:
    """Conditions in the order written, ``exists`` first within a field. Raises MatcherError."""
    conditions: list[Condition] = []
    for field_path, spec in match.items():
        path = tuple(field_path.split("."))
        if not all(path):
            raise MatcherError(f"'{field_path}' is not a dotted field path", (field_path,))
        for op, arg in _operators(field_path, spec):
            if op not in OPERATORS:
                raise MatcherError(unknown_name("matcher", op, OPERATORS), (field_path, op))
            try:
                checked = OPERATORS[op].check_arg(arg)
            except MatcherError as exc:
                raise MatcherError(f"{op}: {exc}", (field_path, op)) from None
            conditions.append(Condition(field_path, path, op, checked, OPERATORS[op].test))
    return tuple(conditions)


def _operators(field_path: str, spec: Any) -> list[tuple[str, Any]]:
    if isinstance(spec, list):
        return [("in", spec)]
    if not isinstance(spec, Mapping):
        return [("eq", spec)]
    if not spec:
        raise MatcherError("an empty matcher matches nothing; give a value or an operator", (field_path,))
    if spec.get("exists") is False and len(spec) > 1:
        raise MatcherError("exists: false cannot be combined with other operators", (field_path,))
    return sorted(spec.items(), key=lambda item: item[0] != "exists")

