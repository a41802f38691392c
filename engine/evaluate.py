"""evaluate(event, ruleset, view) -> actions. Pure: no file, clock, environment or network.

A rule that cannot be evaluated gives an ErrorAction naming it and the event;
the other rules go on. A trigger whose conditions hold always yields a
TriggerAction: a template that fails at run time gets a fallback value and an
ErrorAction beside it, so a page is never lost to a template bug.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2.runtime import Context

from engine import severity as sev
from engine.actions import (Action, ErrorAction, IncidentView, ResolveAction, TriggerAction, full_key,
                            full_title)
from engine.events import event_id
from engine.matchers import ConditionError
from engine.rules import Recovery, Rule, RuleSet, Trigger
from engine.schemacheck import unknown_name
from engine.templates import Compiled, describe_failure, make_context

FALLBACK_SEVERITY = "critical"


class RuleFailed(Exception):
    """A rule's condition could not be evaluated; ``where`` is e.g. ``vars.ratio``."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Verdict:
    """Whether one rule matched one event, and if not, the first reason."""

    rule: Rule
    context: Context | None = None
    why_not: str | None = None
    error: str | None = None


def check_event(event: Mapping[str, Any], ruleset: RuleSet) -> str | None:
    """Why the event is rejected (no type, unknown type, schema), or None."""
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        return "event has no 'type' (set it in the event, or use --type for raw webhook payloads)"
    event_type = ruleset.event_types.get(kind)
    if event_type is None:
        return unknown_name("event type", kind, ruleset.event_types)
    problems = event_type.problems(event)
    return "; ".join(problems) if problems else None


def judge(rule: Rule, event: Mapping[str, Any], params: Mapping[str, Any]) -> Verdict:
    """Run a rule's match, vars and when on an event. The one place conditions are evaluated."""
    try:
        for condition in rule.conditions:
            holds, seen = condition.check(event)
            if not holds:
                return Verdict(rule, why_not=condition.why_not(seen))
        context = make_context({"event": event, "params": params})
        for name, expression in rule.vars:
            _guard(f"vars.{name}", expression.assign, context, name)
        if rule.when is not None and not _guard("when", lambda c: bool(rule.when.evaluate(c)), context):
            return Verdict(rule, why_not=f"when: `{rule.when.source}` is false")
        return Verdict(rule, context=context)
    except ConditionError as exc:
        return Verdict(rule, error=str(exc))
    except RuleFailed as exc:
        return Verdict(rule, error=str(exc))


def _guard(where: str, func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except Exception as exc:  # a rule bug must not stop other rules: report it with where it happened
        raise RuleFailed(where, describe_failure(exc)) from None


def evaluate(event: Mapping[str, Any], ruleset: RuleSet, view: IncidentView) -> list[Action]:
    """The actions one event calls for, given the incidents currently open."""
    eid = event_id(event)
    rejected = check_event(event, ruleset)
    if rejected:
        return [ErrorAction(eid, rejected)]
    kind = event["type"]
    actions: list[Action] = []
    triggers: dict[str, TriggerAction] = {}
    for trigger in ruleset.triggers.get(kind, ()):
        verdict = judge(trigger, event, ruleset.params)
        if verdict.error:
            actions.append(ErrorAction(eid, f"rule {trigger.id}: {verdict.error}", trigger.id))
        elif verdict.context is not None:
            action = _fire(trigger, verdict.context, eid, ruleset, actions)
            triggers[action.incident_key] = _merge(triggers.get(action.incident_key), action)
    actions.extend(_finish(t, ruleset) for t in triggers.values())
    resolved: set[str] = set(triggers)  # an event never resolves what it triggers
    for recovery in ruleset.recoveries.get(kind, ()):
        verdict = judge(recovery, event, ruleset.params)
        if verdict.error:
            actions.append(ErrorAction(eid, f"rule {recovery.id}: {verdict.error}", recovery.id))
        elif verdict.context is not None:
            actions.extend(_recover(recovery, verdict.context, eid, ruleset, view, resolved, actions))
    return actions


def _render(template: Compiled, context: Context, rule: Rule, eid: Any, where: str,
            errors: list[Action]) -> str | None:
    try:
        return template.render(context)
    except Exception as exc:  # reported as an error line; the caller substitutes a fallback
        errors.append(ErrorAction(eid, f"rule {rule.id}: {where}: {describe_failure(exc)}", rule.id))
        return None


def _fire(rule: Trigger, context: Context, eid: Any, ruleset: RuleSet, errors: list[Action]) -> TriggerAction:
    severity = rule.severity
    if not isinstance(severity, str):
        rendered = _render(severity, context, rule, eid, "severity", errors)
        severity = (rendered or "").strip().lower()
        if rendered is not None and not sev.is_severity(severity):
            errors.append(ErrorAction(eid, f"rule {rule.id}: severity: {sev.unknown_severity(rendered)}", rule.id))
        if not sev.is_severity(severity):
            severity = FALLBACK_SEVERITY
    key = _render(rule.incident_key, context, rule, eid, "incident_key", errors) if rule.incident_key else None
    title = _render(rule.title, context, rule, eid, "title", errors) if rule.title else None
    if title is None:
        title = f"rule {rule.id} fired but its title failed: {errors[-1].error if errors else 'no title'}"
    labels = {name: _render(t, context, rule, eid, f"labels.{name}", errors) or "" for name, t in rule.labels}
    details = {name: _value(_render(t, context, rule, eid, f"details.{name}", errors))
               for name, t in rule.details}
    return TriggerAction(rule.id, eid, full_key(ruleset.prefix, key or f"{rule.id}-template-error"),
                         title, severity, labels, details)


def _value(rendered: str | None) -> str:
    return "(template error: see the error line)" if rendered is None else rendered


def _merge(current: TriggerAction | None, new: TriggerAction) -> TriggerAction:
    """Two triggers, one key: one action at the higher severity, with that rule's title."""
    if current is None:
        return new
    high, low = (new, current) if sev.rank(new.severity) > sev.rank(current.severity) else (current, new)
    return TriggerAction(high.rule, high.event_id, high.incident_key, high.title, high.severity,
                         {**low.labels, **high.labels}, {**low.details, **high.details},
                         high.also_matched + (low.rule,) + low.also_matched)


def _finish(action: TriggerAction, ruleset: RuleSet) -> TriggerAction:
    title = full_title(ruleset.title_format, action.severity, action.title)
    return TriggerAction(action.rule, action.event_id, action.incident_key, title, action.severity,
                         action.labels, action.details, action.also_matched)


def _recover(rule: Recovery, context: Context, eid: Any, ruleset: RuleSet, view: IncidentView,
             resolved: set[str], errors: list[Action]) -> list[Action]:
    message = _render(rule.message, context, rule, eid, "message", errors) if rule.message else None
    if message is None:
        message = f"resolved by rule {rule.id} (its message template failed)"
    out: list[Action] = []
    selectors: dict[str, Any] = {}
    for number, selector in enumerate(rule.resolves):
        where = f"resolves[{number}]"
        if selector.incident_key is not None:
            rendered = _render(selector.incident_key, context, rule, eid, f"{where}.incident_key", errors)
            if rendered is None:
                continue
            key = full_key(ruleset.prefix, rendered)
            selectors["incident_key"] = key
            if key not in resolved:
                resolved.add(key)
                out.append(ResolveAction(rule.id, eid, key, message, view.get(key) is not None, {"incident_key": key}))
            continue
        wanted: dict[str, frozenset[str]] = {}
        for name, templates in selector.labels:
            values = [_render(t, context, rule, eid, f"{where}.labels.{name}", errors) for t in templates]
            wanted[name] = frozenset(v for v in values if v is not None)
        selectors.update({name: sorted(values) for name, values in wanted.items()})
        for incident in sorted(view.select(wanted), key=lambda i: i.incident_key):
            if incident.incident_key not in resolved:
                resolved.add(incident.incident_key)
                out.append(ResolveAction(rule.id, eid, incident.incident_key, message, True,
                                         {n: sorted(v) for n, v in wanted.items()}))
    if not out:
        out.append(ResolveAction(rule.id, eid, None, message, False, selectors))
    return out
