"""Dedup-key lint: incident keys that would page once per event, or merge unrelated problems.

Warnings, not errors (``--strict`` makes them failures): a key may use such a
field on purpose. Checked at load for `validate` and `test`.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from engine.errors import Problem
from engine.language.model import Trigger
from engine.language.templates import attribute_paths
from engine.names import dotted

# Fields whose value changes from one event of a problem to the next.
# ``id`` only at the top (the event's own id); a nested ``workflow_run.id`` names the thing itself.
VOLATILE = re.compile(r"^(uuid|nonce|seq|sequence)$|(^|_)(at|time|timestamp|date|count|rate|ratio|duration|"
                      r"latency|seconds|minutes|ms|value)$|timestamp|time$")


def _volatile(path: tuple[str, ...]) -> bool:
    return bool(path) and (path == ("id",) or bool(VOLATILE.search(path[-1])))
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def lint_keys(triggers: Sequence[Trigger]) -> list[Problem]:
    return _volatile_fields(triggers) + _cross_type_merges(triggers)


def _volatile_fields(triggers: Sequence[Trigger]) -> list[Problem]:
    problems = []
    for rule in triggers:
        if rule.incident_key is None:
            continue
        read = {dotted(p) for p in attribute_paths(rule.incident_key, "event") if _volatile(p)}
        variables = dict(rule.vars)
        for name in sorted(rule.incident_key.names & set(variables)):  # through a var, one level deep
            read |= {f"{dotted(p)} (via {name})" for p in attribute_paths(variables[name], "event")
                     if _volatile(p)}
        for field in sorted(read):
            problems.append(Problem(rule.filename, rule.line_of("incident_key"),
                                    f"incident_key uses event.{field}, which changes on every event of the same "
                                    "problem: each event would open a new incident", rule.id, warning=True))
    return problems


def _cross_type_merges(triggers: Sequence[Trigger]) -> list[Problem]:
    """Keys of the same shape from different event types would merge two kinds of problem into one
    incident. Triggers of one type sharing a key (the two deploy-health rules) are meant to merge, and
    so are triggers that set the same literal ``kind`` label (a Sentry issue seen by two webhooks)."""
    first_by_shape: dict[str, Trigger] = {}
    problems = []
    for rule in triggers:
        if rule.incident_key is None:
            continue
        shape = _TEMPLATE.sub("{}", rule.incident_key.source)
        first = first_by_shape.setdefault(shape, rule)
        if first.on != rule.on and not _same_kind(first, rule):
            problems.append(Problem(rule.filename, rule.line_of("incident_key"),
                                    f"incident_key has the same shape as rule {first.id}'s ({first.on}, "
                                    f"{first.filename}:{first.line_of('incident_key')}): {rule.on} and {first.on} "
                                    "events could merge into one incident", rule.id, warning=True))
    return problems


def _same_kind(a: Trigger, b: Trigger) -> bool:
    kinds = [dict(r.labels).get("kind") for r in (a, b)]
    return all(k is not None and "{" not in k.source for k in kinds) and kinds[0].source == kinds[1].source  # type: ignore[union-attr]
