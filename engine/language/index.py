"""A discrimination index over the rules of one event type: each event meets only the rules that can match it.

A rule is indexed by one of its constant equality or ``in`` matchers (the field path and its values). For an
event, the index reads each indexed path once and returns the rules whose value is there, plus every rule it
cannot rule out, in the order the rules were written (rule order decides merged outcomes).

The index skips a rule only when the scan would have answered "no match" without an error:

- the event has a value at the path, of a type the matcher compares (a missing field is an error in the
  scan, so the rule stays a candidate);
- that value is none of the rule's values under the matcher's own equality (``"3"``, ``3.0`` and ``true`` are
  told apart exactly as ``strict_equal`` does: a text, a number, a boolean and null are different keys;
  ``3`` and ``3.0`` are the same key, as they are equal to the matcher);
- every condition written before the indexed one could not have raised: only ``eq``, ``ne``, ``in``,
  ``not_in`` and ``exists`` may come first, and the fields they read must be present in the event.

Values of any other type (lists, mappings, NaN, infinities) are never index keys: such a rule stays in the
scan list. tests/test_language_index.py checks index and scan agree on random rulesets and events.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from engine.language.matchers import _MISSING, Condition, lookup


class Rule(Protocol):
    """What the index reads of a rule (engine/language/model.py's Rule)."""

    @property
    def id(self) -> str: ...
    @property
    def conditions(self) -> tuple[Condition, ...]: ...


RuleT = TypeVar("RuleT", bound=Rule)

# Ops that raise ConditionError only for a missing field (exists never raises): safe before the indexed one.
_QUIET_OPS = frozenset({"eq", "ne", "in", "not_in", "exists"})
_NO_KEY = object()


def index_key(value: Any) -> Any:
    """The key two values share exactly when ``strict_equal`` holds between them; ``_NO_KEY`` if unsure."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return ("bool", value)
    if kind is int:
        return ("number", value)
    if kind is float:
        return ("number", value) if math.isfinite(value) else _NO_KEY
    if value is None:
        return ("null",)
    return _NO_KEY


def _values(condition: Condition) -> tuple[Any, ...] | None:
    """The keys of an indexable condition (eq/in with only keyable values), else None."""
    if condition.op == "eq":
        args: tuple[Any, ...] = (condition.arg,)
    elif condition.op == "in":
        args = tuple(condition.arg)
    else:
        return None
    keys = tuple(index_key(a) for a in args)
    if not keys or any(k is _NO_KEY for k in keys):
        return None
    return keys


def _eligible(rule: Rule) -> list[tuple[int, tuple[Any, ...]]]:
    """(position in conditions, keys) of each condition the rule may be indexed by."""
    out = []
    for position, condition in enumerate(rule.conditions):
        keys = _values(condition)
        if keys is not None:
            out.append((position, keys))
        if condition.op not in _QUIET_OPS:
            break  # a later condition would come after one that may raise on a present value
    return out


@dataclass(frozen=True)
class _Path:
    """The rules indexed by one field path."""

    path: tuple[str, ...]
    buckets: Mapping[Any, tuple[int, ...]]  # key -> positions of the rules with that value
    every: tuple[int, ...]  # all positions indexed here: candidates when the field is missing
    guarded: tuple[tuple[tuple[tuple[str, ...], ...], tuple[int, ...]], ...]  # (paths read before, positions)


@dataclass(frozen=True)
class Indexed:
    """Where one rule is indexed: which condition (its matcher is what rules it out)."""

    condition: Condition


class RuleIndex(Generic[RuleT]):
    """The index of one event type's rules (triggers or recoveries), compiled with the ruleset."""

    def __init__(self, rules: Sequence[RuleT]):
        self.rules = tuple(rules)
        eligible = [_eligible(rule) for rule in self.rules]
        distinct: dict[tuple[str, ...], set[Any]] = {}
        for rule, options in zip(self.rules, eligible, strict=True):
            for position, keys in options:
                distinct.setdefault(rule.conditions[position].path, set()).update(keys)
        scan: list[int] = []
        by_path: dict[tuple[str, ...], dict[str, Any]] = {}
        self.indexed: dict[int, Indexed] = {}
        for number, (rule, options) in enumerate(zip(self.rules, eligible, strict=True)):
            if not options:
                scan.append(number)
                continue
            # The most discriminating path: the one with the most distinct values across these rules.
            position, keys = max(options, key=lambda o: (len(distinct[rule.conditions[o[0]].path]), -o[0]))
            condition = rule.conditions[position]
            self.indexed[number] = Indexed(condition)
            entry = by_path.setdefault(condition.path, {"buckets": {}, "every": [], "guarded": {}})
            for key in dict.fromkeys(keys):
                entry["buckets"].setdefault(key, []).append(number)
            entry["every"].append(number)
            guard = tuple(dict.fromkeys(c.path for c in rule.conditions[:position] if c.op != "exists"))
            if guard:
                entry["guarded"].setdefault(guard, []).append(number)
        self.scan = tuple(scan)
        self.paths = tuple(
            _Path(path, {k: tuple(v) for k, v in e["buckets"].items()}, tuple(e["every"]),
                  tuple((g, tuple(p)) for g, p in e["guarded"].items()))
            for path, e in by_path.items())
        # One indexed path, no scan list, no guards (the usual shipped type: `status: failed`): the answer for
        # each key is a tuple made now, so an event costs one lookup and no set, sort or list.
        self.single: tuple[tuple[str, ...], dict[Any, tuple[RuleT, ...]], tuple[RuleT, ...]] | None = None
        if len(self.paths) == 1 and not self.scan and not self.paths[0].guarded:
            only = self.paths[0]
            self.single = (only.path, {k: tuple(self.rules[n] for n in v) for k, v in only.buckets.items()},
                           tuple(self.rules[n] for n in only.every))

    def candidates(self, event: Mapping[str, Any]) -> list[RuleT] | tuple[RuleT, ...]:
        """The rules the event must meet, in the order written; the others cannot match it."""
        if not self.paths:
            return self.rules  # nothing indexed: every rule, without a copy per event
        if self.single is not None:
            path, by_key, every = self.single
            value = event.get(path[0], _MISSING) if len(path) == 1 else lookup(event, path)
            return every if value is _MISSING else by_key.get(index_key(value), ())
        chosen: set[int] = set(self.scan)
        for entry in self.paths:
            path = entry.path
            value = event.get(path[0], _MISSING) if len(path) == 1 else lookup(event, path)
            if value is _MISSING:
                chosen.update(entry.every)
                continue
            found = entry.buckets.get(index_key(value))
            if found:
                chosen.update(found)
            for guard, positions in entry.guarded:
                if any(lookup(event, g) is _MISSING for g in guard):
                    chosen.update(positions)
        rules = self.rules
        return [rules[n] for n in sorted(chosen)]

    def ruled_out(self, event: Mapping[str, Any]) -> dict[str, str]:
        """For each rule the index skips for this event: rule id -> the matcher that ruled it out.

        The text is the condition's own ``why_not`` (``match.repo: expected "acme/x1", got "acme/x2"``),
        exactly what the scan would have reported for it."""
        kept = {id(rule) for rule in self.candidates(event)}
        out: dict[str, str] = {}
        for number, rule in enumerate(self.rules):
            if id(rule) in kept:
                continue
            condition = self.indexed[number].condition
            out[rule.id] = condition.why_not(lookup(event, condition.path))
        return out


def build_index(groups: Mapping[str, Sequence[RuleT]]) -> dict[str, RuleIndex[RuleT]]:
    """One index per event type."""
    return {kind: RuleIndex(rules) for kind, rules in groups.items()}
