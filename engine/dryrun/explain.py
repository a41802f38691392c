"""Why each rule did or did not match an event: the same judge() evaluation uses; for each
incident and change it would send, which route takes it and why the routes before it did not; and,
for a trigger a silence mutes, which silence (its matchers, end, maker and comment)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from engine.dispatch.dispatcher import MemoryView
from engine.dispatch.outcomes import Outcome, Status
from engine.dispatch.pipeline import Pipeline
from engine.evaluation.actions import ChangeAction, TriggerAction
from engine.evaluation.evaluate import check_event, event_time, judge
from engine.events.stream import Parsed
from engine.events.types import event_id
from engine.language.routes import Route, route_name, route_trace
from engine.language.silences import Silence

KINDS = (("trigger", "triggers"), ("recovery", "recoveries"), ("change", "changes"))


def explain_all(items: Iterable[Parsed], pipeline: Pipeline, default_type: str | None = None
                ) -> Iterator[dict[str, Any]]:
    """A report for each event the input stands for (an unreadable input is reported rejected)."""
    for item in items:
        if item.event is None:
            yield {"event_id": None, "type": None, "rejected": item.error}
            continue
        for event in pipeline.events(item.event, default_type):
            yield explain_event(event, pipeline)


def explain_event(event: dict[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    """{event_id, type, rejected | rules: [{rule, kind, verdict, reason}], outcomes, routes, silenced}.

    The outcomes are the pipeline's, so a dry-run dispatcher carries open incidents
    from one event to the next exactly as `process --dry-run` does.
    """
    ruleset = pipeline.ruleset
    report: dict[str, Any] = {"event_id": event_id(event), "type": event.get("type")}
    rejected = check_event(event, ruleset)
    if rejected:
        report["rejected"] = rejected
        return report
    if event.get("time") is not None and event_time(event["time"]) is None:
        report["time"] = (f"time: {event['time']!r} is not ISO 8601 (e.g. 2026-12-03T14:00:00Z); ignored, "
                          "so the time it is handled stands in for it")
    rules: list[dict[str, Any]] = []
    skipped = ruleset.ruled_out(event)  # rules the index never lets this event meet, with the matcher why
    for kind, section in KINDS:
        for rule in getattr(ruleset, section).get(event["type"], ()):
            if rule.id in skipped:
                rules.append({"rule": rule.id, "kind": kind, "verdict": "no match", "reason": skipped[rule.id]})
                continue
            scope, missed, error = judge(rule, event, ruleset.params)
            if error:
                rules.append({"rule": rule.id, "kind": kind, "verdict": "error", "reason": error})
            elif scope is None:
                reason = missed[0].why_not(missed[1]) if missed else f"when: `{rule.when.source}` is false"  # type: ignore[union-attr]
                rules.append({"rule": rule.id, "kind": kind, "verdict": "no match", "reason": reason})
            else:
                rules.append({"rule": rule.id, "kind": kind, "verdict": "matched", "reason": None})
    report["rules"] = rules
    outcomes = pipeline.outcomes(event)
    report["outcomes"] = [outcome.to_line() for outcome in outcomes]
    traces = (_route_trace(outcome, pipeline.dispatcher.routes) for outcome in outcomes)
    report["routes"] = [trace for trace in traces if trace is not None]
    report["silenced"] = [_silence_note(o, pipeline.dispatcher.view) for o in outcomes
                          if o.status is Status.SILENCED]
    return report


def _silence_note(outcome: Outcome, view: object) -> dict[str, Any]:
    """The silence that muted a trigger, as `silence list --json` shows it (no more than its id when the
    view does not hold it)."""
    silence_id = outcome.result.silence_id
    known: tuple[Silence, ...] = view.silences if isinstance(view, MemoryView) else ()
    silence = next((s for s in known if s.id == silence_id), None)
    note: dict[str, Any] = {"incident_key": outcome.incident_key, "silence_id": silence_id}
    if silence is not None:
        shown = silence.to_json()
        note.update({k: shown[k] for k in ("match", "starts_at", "ends_at", "weekly", "created_by", "comment")})
    return note


def _route_trace(outcome: Outcome, routes: tuple[Route, ...]) -> dict[str, Any] | None:
    """For a trigger or a change: every route tried with why it did not match, and the one taken
    (``default``: none matched). Routes are chosen by the labels, as the dispatcher chooses them."""
    cause = outcome.cause
    if not isinstance(cause, (TriggerAction, ChangeAction)):
        return None
    trace = route_trace(routes, cause.labels)
    taken = trace[-1][0] if trace and trace[-1][1] is None else None
    return {"action": cause.kind, "rule": cause.rule, "incident_key": getattr(cause, "incident_key", None),
            "tried": [{"route": route.index, "where": f"{route.filename}:{route.line}", "target": _target(route),
                       "reason": reason} for route, reason in trace],
            "taken": route_name(taken)}


def _target(route: Route) -> str:
    """What a route sends to, never a routing key (a secret)."""
    if not route.events_api:
        return f"service {route.service_id}"
    if route.routing_key_env:
        return f"Events API v2 (key in {route.routing_key_env})"
    return "Events API v2 (key in the file)"


def _describe(line: Mapping[str, Any]) -> str:
    if line["action"] == "trigger":
        return f"trigger {line['status']}: {line['incident_key']} ({line['severity']}) {line['title']}"
    if line["action"] == "resolve":
        target = line["incident_key"] or f"nothing open matching {line.get('selector')}"
        return f"resolve {line['status']}: {target}: {line['message']}"
    if line["action"] == "change":
        error = f" ({line['error']})" if line.get("error") else ""
        return f"change {line['status']}: {line['summary']}{error}"
    return f"error: {line['error']}"


def _describe_routes(trace: Mapping[str, Any]) -> list[str]:
    about = trace["incident_key"] or f"change from {trace['rule']}"
    lines = [f"  route for {about}:"]
    for tried in trace["tried"]:
        verdict = f"no match: {tried['reason']}" if tried["reason"] is not None else "taken"
        lines.append(f"    routes[{tried['route']}] ({tried['where']}, {tried['target']}): {verdict}")
    if trace["taken"] == "default":
        lines.append("    default: no route matched; the global settings")
    return lines


def format_report(report: Mapping[str, Any]) -> str:
    """The human-readable form printed by `pagerules explain`."""
    lines = [f"event {report['event_id']} ({report['type']})"]
    if "rejected" in report:
        lines.append(f"  rejected: {report['rejected']}")
        return "\n".join(lines)
    if "time" in report:
        lines.append(f"  {report['time']}")
    if not report["rules"]:
        lines.append(f"  no rules for event type {report['type']}")
    width = max((len(r["rule"]) for r in report["rules"]), default=0)
    for row in report["rules"]:
        reason = f": {row['reason']}" if row["reason"] else ""
        lines.append(f"  {row['rule']:<{width}}  {row['kind']:<8}  {row['verdict']}{reason}")
    for trace in report.get("routes", ()):
        if trace["tried"]:  # with no routes configured, everything takes the global settings: nothing to say
            lines.extend(_describe_routes(trace))
    for line in report["outcomes"]:
        lines.append(f"  -> {_describe(line)}")
    for note in report.get("silenced", ()):
        lines.append(f"  {_describe_silence(note)}")
    return "\n".join(lines)


def _describe_silence(note: Mapping[str, Any]) -> str:
    text = f"silenced: {note['incident_key']} by silence {note['silence_id']}"
    if "match" not in note:
        return text
    weekly = note["weekly"]
    window = f", {','.join(weekly['weekdays'])} {weekly['between']} {weekly['tz']}" if weekly else ""
    match = ", ".join(f"{k}={v}" if isinstance(v, str) else f"{k}: {v}" for k, v in note["match"].items())
    return (f"{text} ({match}; until {note['ends_at']}{window}; by {note['created_by']}: {note['comment']}); "
            "nothing would be sent, a resolve still goes through")
