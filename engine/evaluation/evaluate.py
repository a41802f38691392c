"""evaluate(event, ruleset, view) -> actions. Pure: no file, clock, environment or network.

A rule that cannot be evaluated gives an ErrorAction naming it and the event;
the other rules go on. A trigger whose conditions hold always yields a
TriggerAction: a template that fails at run time gets a fallback value and an
ErrorAction beside it, so a page is never lost to a template bug. A change rule
likewise always yields its ChangeAction. Actions carry the event's own time (its
``time`` field, ISO 8601) when it gives one that parses.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from engine import severity as sev
from engine.evaluation.actions import (
    Action,
    ChangeAction,
    ErrorAction,
    Extras,
    IncidentView,
    PendingLabels,
    ResolveAction,
    TriggerAction,
    full_key,
    full_title,
)
from engine.events.types import event_id
from engine.language.matchers import Condition, ConditionError
from engine.language.model import Change, Link, Recovery, Rule, RuleSet, Selector, Trigger, link_problem
from engine.language.templates import MAX_TEXT, Compiled, Scope, describe_failure
from engine.names import dotted, unknown_name

FALLBACK_SEVERITY = "critical"


# judge() answers (scope when matched, (condition, value seen) of the first miss, error text).
Judgement = tuple[Scope | None, tuple[Condition, Any] | None, str | None]


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


def judge(rule: Rule, event: Mapping[str, Any], params: Mapping[str, Any],
          memo: dict[str, Any] | None = None) -> Judgement:
    """Run a rule's match, vars and when on an event. The one place conditions are evaluated.

    A plain tuple rather than an object: this runs for every rule of every event.
    ``memo`` shares, between the rules of one event, vars that read only ``event``
    and ``params`` (the two deploy rules both compute the same ratio).
    """
    try:
        for condition in rule.conditions:
            holds, seen = condition.check(event)
            if not holds:
                return None, (condition, seen), None
    except ConditionError as exc:
        return None, None, str(exc)
    scope = Scope({"event": event, "params": params})
    for name, expression in rule.vars:
        try:
            if memo is not None and expression.pure:
                value = memo[expression.source] if expression.source in memo else \
                    memo.setdefault(expression.source, expression.evaluate(scope))
            else:
                value = expression.evaluate(scope)
            scope.set(name, value)
        except Exception as exc:  # a rule bug must not stop other rules: say where it happened
            return None, None, f"vars.{name}: {describe_failure(exc)}"
    when = rule.when
    if when is not None:
        try:
            fast = when._fast  # Compiled.evaluate inlined: every candidate rule of every event runs this
            if fast is None:
                holds = when.evaluate_sandboxed(scope)
            else:
                try:
                    holds = fast(scope.values)
                except Exception:  # not a plain lookup after all: the sandbox answers, or raises the error
                    holds = when.evaluate_sandboxed(scope)
            if not holds:
                return None, None, None
        except Exception as exc:  # as above
            return None, None, f"when: {describe_failure(exc)}"
    return scope, None, None


LAST_TIME = 253402300800.0  # 10000-01-01T00:00:00Z: past it, a four-digit year cannot say the moment


def event_time(value: Any) -> float | None:
    """An event's ``time`` as epoch seconds: ISO 8601 text, with an offset or ``Z`` (none: UTC).
    Anything else is None, as if the event gave no time: the time it is handled stands in for it; so is a
    time outside 1970 to 9999 UTC, which could not be written back as ISO 8601 (``pending_until``)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        seconds = (moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)).timestamp()
    except (ValueError, OverflowError):
        return None
    return seconds if 0 <= seconds < LAST_TIME else None


def evaluate(event: Mapping[str, Any], ruleset: RuleSet, view: IncidentView) -> list[Action]:
    """The actions one event calls for, given the incidents currently open."""
    eid = event_id(event)
    kind = event.get("type")
    event_type = ruleset.event_types.get(kind) if type(kind) is str else None
    if event_type is None or not event_type.is_valid(event):  # the reasons are worded only for a rejection
        rejected = check_event(event, ruleset)
        if rejected:
            return [ErrorAction(eid, rejected)]
    written = event.get("time")
    at = None if written is None else event_time(written)  # an event without time pays one lookup
    actions: list[Action] = []
    triggers: dict[str, TriggerAction] = {}
    memo: dict[str, Any] = {}
    errors: list[ErrorAction] = []  # template failures, reported before the action they belong to
    for trigger in ruleset.triggers_for(event):  # the index: only the rules that can match
        scope, _, error = judge(trigger, event, ruleset.params, memo)
        if error:
            actions.append(ErrorAction(eid, f"rule {trigger.id}: {error}", trigger.id))
        elif scope is not None:
            action = _fire(trigger, scope, eid, ruleset, errors, at)
            triggers[action.incident_key] = _merge(triggers.get(action.incident_key), action)
            actions.extend(errors)
            errors.clear()
    actions.extend(_finish(t, ruleset) for t in triggers.values())
    resolved: set[str] = set(triggers)  # an event never resolves what it triggers
    for recovery in ruleset.recoveries_for(event):
        scope, _, error = judge(recovery, event, ruleset.params, memo)
        if error:
            actions.append(ErrorAction(eid, f"rule {recovery.id}: {error}", recovery.id))
        elif scope is not None:
            found = _recover(recovery, scope, eid, ruleset, view, resolved, errors, at)
            actions.extend(errors)
            errors.clear()
            actions.extend(found)
    for change in ruleset.changes_for(event):
        scope, _, error = judge(change, event, ruleset.params, memo)
        if error:
            actions.append(ErrorAction(eid, f"rule {change.id}: {error}", change.id))
        elif scope is not None:
            made = _change(change, scope, eid, event, errors, at)
            actions.extend(errors)
            errors.clear()
            actions.append(made)
    return actions


def _render(template: Compiled, scope: Scope, rule: Rule, eid: Any, where: tuple[Any, ...],
            errors: list[ErrorAction]) -> str | None:
    """Render, or report an error line and return None so the caller substitutes a fallback.

    ``where`` is a path such as ("labels", "repo"), turned into text only on failure.
    """
    fast = template._fast  # Compiled.render's fast path inlined: this runs for every template of every match
    if fast is not None:
        try:
            text = str(fast(scope.values))
        except Exception:  # not a plain lookup after all: the sandbox answers below, or raises the error
            pass
        else:
            if len(text) <= MAX_TEXT:  # else the sandbox refuses it, with its message
                return text
    try:
        return template.render_sandboxed(scope)
    except Exception as exc:  # reported as an error line; the caller substitutes a fallback
        errors.append(ErrorAction(eid, f"rule {rule.id}: {dotted(where)}: {describe_failure(exc)}", rule.id))
        return None


def _fire(rule: Trigger, scope: Scope, eid: Any, ruleset: RuleSet, errors: list[ErrorAction],
          at: float | None = None) -> TriggerAction:
    severity = rule.severity
    if not isinstance(severity, str):
        rendered = _render(severity, scope, rule, eid, ("severity",), errors)
        severity = (rendered or "").strip().lower()
        if rendered is not None and not sev.is_severity(severity):
            errors.append(ErrorAction(eid, f"rule {rule.id}: severity: {sev.unknown_severity(rendered)}", rule.id))
        if not sev.is_severity(severity):
            severity = FALLBACK_SEVERITY
    key = _render(rule.incident_key, scope, rule, eid, ("incident_key",), errors) if rule.incident_key else None
    title = _render(rule.title, scope, rule, eid, ("title",), errors) if rule.title else None
    if title is None:
        title = f"rule {rule.id} fired but its title failed: {errors[-1].error if errors else 'no title'}"
    links = _links(rule.links, scope, rule, eid, errors) if rule.links else ()
    return TriggerAction(rule.id, eid, full_key(ruleset.prefix, key or f"{rule.id}-template-error"),
                         title, severity, lambda: _extras(rule, scope, eid), links=links, at=at,
                         pending_for=rule.pending_for, renotify=rule.renotify, flap=rule.flap)


def _links(links: tuple[Link, ...], scope: Scope, rule: Rule, eid: Any, errors: list[ErrorAction]
           ) -> tuple[dict[str, str], ...]:
    """The rendered links: an empty href is no link; one that is not http(s) is an error line and left out."""
    out = []
    for number, link in enumerate(links):
        href = _render(link.href, scope, rule, eid, ("links", number, "href"), errors)
        href = (href or "").strip()
        if not href:
            continue
        problem = link_problem(href)
        if problem:
            errors.append(ErrorAction(eid, f"rule {rule.id}: links[{number}].href: {problem}; the link is left out",
                                      rule.id))
            continue
        item = {"href": href}
        text = _render(link.text, scope, rule, eid, ("links", number, "text"), errors) if link.text else None
        if text:
            item["text"] = text
        out.append(item)
    return tuple(out)


def _change(rule: Change, scope: Scope, eid: Any, event: Mapping[str, Any], errors: list[ErrorAction],
            at: float | None) -> ChangeAction:
    """A change event, always: a summary that fails gets a fallback naming the rule and the error."""
    summary = _render(rule.summary, scope, rule, eid, ("summary",), errors) if rule.summary else None
    if summary is None:
        summary = f"rule {rule.id} matched but its summary failed: {errors[-1].error if errors else 'no summary'}"
    labels = {name: _render(t, scope, rule, eid, ("labels", name), errors) or "" for name, t in rule.labels}
    details = {name: _value(_render(t, scope, rule, eid, ("details", name), errors)) for name, t in rule.details}
    links = _links(rule.links, scope, rule, eid, errors) if rule.links else ()
    repo = event.get("repo")
    return ChangeAction(rule.id, eid, summary, labels, details, links,
                        source=repo if isinstance(repo, str) and repo else None,
                        timestamp=None if at is None else iso_time(at))


def iso_time(at: float) -> str:
    """Epoch seconds as ISO 8601 in UTC (``2026-12-03T14:00:00Z``), the form PagerDuty's timestamps take."""
    return datetime.fromtimestamp(at, timezone.utc).isoformat().replace("+00:00", "Z")


def _extras(rule: Trigger, scope: Scope, eid: Any) -> Extras:
    errors: list[ErrorAction] = []
    labels = {name: _render(t, scope, rule, eid, ("labels", name), errors) or "" for name, t in rule.labels}
    details = {name: _value(_render(t, scope, rule, eid, ("details", name), errors)) for name, t in rule.details}
    return Extras(labels, details, errors)


def _value(rendered: str | None) -> str:
    return "(template error: see the error line)" if rendered is None else rendered


def _merge(current: TriggerAction | None, new: TriggerAction) -> TriggerAction:
    """Two triggers, one key: one action at the higher severity, with that rule's title."""
    if current is None:
        return new
    high, low = (new, current) if sev.rank(new.severity) > sev.rank(current.severity) else (current, new)

    def merged() -> Extras:
        a, b = low.extras(), high.extras()
        return Extras({**a.labels, **b.labels}, {**a.details, **b.details}, a.errors + b.errors)
    hrefs = {link["href"] for link in high.links}
    links = high.links + tuple(link for link in low.links if link["href"] not in hrefs)
    return TriggerAction(high.rule, high.event_id, high.incident_key, high.title, high.severity, merged,
                         high.also_matched + (low.rule,) + low.also_matched, links, high.at,
                         _shorter_hold(high.pending_for, low.pending_for),
                         _shorter_hold(high.renotify, low.renotify), high.flap if low.flap else None)


def _shorter_hold(a: float | None, b: float | None) -> float | None:
    """One key, two rules: the shorter ``for:`` (or ``renotify:``); a rule without one pages at once (or
    after the dedup window), so the key does: a missed page is worse than an early one."""
    return None if a is None or b is None else min(a, b)


def _finish(action: TriggerAction, ruleset: RuleSet) -> TriggerAction:
    action.title = full_title(ruleset.title_format, action.severity, action.title)
    return action


def _recover(rule: Recovery, scope: Scope, eid: Any, ruleset: RuleSet, view: IncidentView,
             resolved: set[str], errors: list[ErrorAction], at: float | None = None) -> list[Action]:
    message = _render(rule.message, scope, rule, eid, ("message",), errors) if rule.message else None
    if message is None:
        message = f"resolved by rule {rule.id} (its message template failed)"
    out: list[Action] = []
    for number, selector in enumerate(rule.resolves):
        if selector.incident_key is not None:
            rendered = _render(selector.incident_key, scope, rule, eid, ("resolves", number, "incident_key"), errors)
            if rendered is None:
                continue
            key = full_key(ruleset.prefix, rendered)
            if key not in resolved:
                resolved.add(key)
                out.append(ResolveAction(rule.id, eid, key, message, at))  # the backend looks it up
            continue
        for key in _select(selector, scope, rule, eid, number, view, errors):
            if key not in resolved:
                resolved.add(key)
                out.append(ResolveAction(rule.id, eid, key, message, at))
    if not out:
        out.append(ResolveAction(rule.id, eid, None, message, at))
    return out


def _select(selector: Selector, scope: Scope, rule: Rule, eid: Any, number: int, view: IncidentView,
            errors: list[ErrorAction]) -> list[str]:
    """Keys of the open incidents whose labels match, rendering one label at a time and stopping once none
    can; and of the triggers held pending (README "Pending triggers") that match, so a recovery cancels them."""
    wanted: dict[str, tuple[str, ...]] = {}
    holds: PendingLabels | None = view if hasattr(view, "pending_keys") else None  # type: ignore[assignment]
    held = holds is not None and holds.pending_any()
    some_open = True
    for name, templates in selector.labels:
        if len(templates) == 1:  # the usual case, without building a list per label
            value = _render(templates[0], scope, rule, eid, ("resolves", number, "labels", name), errors)
            values: tuple[str, ...] = () if value is None else (value,)
        else:
            rendered = [_render(t, scope, rule, eid, ("resolves", number, "labels", name), errors) for t in templates]
            values = tuple(v for v in rendered if v is not None)
        if some_open and not view.any_with(name, values):
            if not held:
                return []
            some_open = False  # none open: only a pending trigger can still match
        wanted[name] = values
    keys = [i.incident_key for i in view.select(wanted)] if some_open else []
    if held and holds is not None:
        keys += [k for k in holds.pending_keys(wanted) if k not in keys]
    return keys
