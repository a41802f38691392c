"""Checks across rules and files: unique ids, and recoveries that can select something."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.errors import Problem

if TYPE_CHECKING:
    from engine.rules import Recovery, Trigger


def check_ruleset(triggers: Sequence[Trigger], recoveries: Sequence[Recovery]) -> list[Problem]:
    """Problems that only show when all rule files are seen together."""
    return _duplicate_ids([*triggers, *recoveries]) + _unreachable_selectors(triggers, recoveries)


def _duplicate_ids(rules: Sequence[Trigger | Recovery]) -> list[Problem]:
    first: dict[str, Trigger | Recovery] = {}
    problems = []
    for rule in rules:
        if rule.id in first:
            seen = first[rule.id]
            problems.append(Problem(rule.filename, rule.line,
                                    f"duplicate rule id (first defined at {seen.filename}:{seen.line})", rule.id))
        else:
            first[rule.id] = rule
    return problems


def _unreachable_selectors(triggers: Sequence[Trigger], recoveries: Sequence[Recovery]) -> list[Problem]:
    """A label selector must name labels some trigger sets, with values some trigger can produce."""
    set_by: dict[str, set[str | None]] = {}
    for trigger in triggers:
        for name, value in trigger.labels:
            # None stands for "any value": the label is a template.
            set_by.setdefault(name, set()).add(None if "{" in value.source else value.source)
    problems = []
    for recovery in recoveries:
        for number, selector in enumerate(recovery.resolves):
            for name, values in selector.labels:
                where = f"resolves[{number}].labels.{name}"
                if name not in set_by:
                    known = ", ".join(sorted(set_by)) or "none"
                    problems.append(Problem(recovery.filename, selector.line,
                                            f"{where}: no trigger sets the label '{name}' (labels set: {known}), "
                                            "so this recovery can never resolve anything", recovery.id))
                    continue
                literals = [v.source for v in values if "{" not in v.source]
                if None in set_by[name] or not literals or set(literals) & set_by[name]:
                    continue
                problems.append(Problem(recovery.filename, selector.line,
                                        f"{where}: no trigger sets '{name}' to {' or '.join(map(repr, literals))} "
                                        f"(triggers set {', '.join(sorted(map(repr, set_by[name] - {None})))})",
                                        recovery.id))
    return problems
