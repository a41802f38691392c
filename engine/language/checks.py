"""Checks across rules and files: unique ids, and recoveries that can select something."""
from __future__ import annotations

from collections.abc import Sequence

from engine.errors import Problem
from engine.language.model import Recovery, Trigger
from engine.names import dotted


def check_ruleset(triggers: Sequence[Trigger], recoveries: Sequence[Recovery]) -> list[Problem]:
    """Problems that only show when all rule files are seen together."""
    return _unreachable_selectors(triggers, recoveries)


def duplicate_ids(entries: Sequence[tuple[str, str, int]]) -> list[Problem]:
    """(id, file, line) of every rule, valid or not -> a problem for each id seen before."""
    first: dict[str, tuple[str, int]] = {}
    problems = []
    for rule_id, filename, line in entries:
        if rule_id in first:
            where = "{}:{}".format(*first[rule_id])
            problems.append(Problem(filename, line, f"duplicate rule id (first defined at {where})", rule_id))
        else:
            first[rule_id] = (filename, line)
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
                where = dotted(("resolves", number, "labels", name))
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
