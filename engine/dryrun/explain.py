"""Why each rule did or did not match an event: the same judge() evaluation uses."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from engine.dispatch.pipeline import Pipeline
from engine.evaluation.evaluate import check_event, judge
from engine.events.stream import Parsed
from engine.events.types import event_id


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
    """{event_id, type, rejected | rules: [{rule, kind, verdict, reason}], outcomes}.

    The outcomes are the pipeline's, so a dry-run dispatcher carries open incidents
    from one event to the next exactly as `process --dry-run` does.
    """
    ruleset = pipeline.ruleset
    report: dict[str, Any] = {"event_id": event_id(event), "type": event.get("type")}
    rejected = check_event(event, ruleset)
    if rejected:
        report["rejected"] = rejected
        return report
    rules: list[dict[str, Any]] = []
    skipped = ruleset.ruled_out(event)  # rules the index never lets this event meet, with the matcher why
    for kind, group in (("trigger", ruleset.triggers), ("recovery", ruleset.recoveries)):
        for rule in group.get(event["type"], ()):
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
    report["outcomes"] = [outcome.to_line() for outcome in pipeline.outcomes(event)]
    return report


def _describe(line: Mapping[str, Any]) -> str:
    if line["action"] == "trigger":
        return f"trigger {line['status']}: {line['incident_key']} ({line['severity']}) {line['title']}"
    if line["action"] == "resolve":
        target = line["incident_key"] or f"nothing open matching {line.get('selector')}"
        return f"resolve {line['status']}: {target}: {line['message']}"
    return f"error: {line['error']}"


def format_report(report: Mapping[str, Any]) -> str:
    """The human-readable form printed by `pagerules explain`."""
    lines = [f"event {report['event_id']} ({report['type']})"]
    if "rejected" in report:
        lines.append(f"  rejected: {report['rejected']}")
        return "\n".join(lines)
    if not report["rules"]:
        lines.append(f"  no rules for event type {report['type']}")
    width = max((len(r["rule"]) for r in report["rules"]), default=0)
    for row in report["rules"]:
        reason = f": {row['reason']}" if row["reason"] else ""
        lines.append(f"  {row['rule']:<{width}}  {row['kind']:<8}  {row['verdict']}{reason}")
    for line in report["outcomes"]:
        lines.append(f"  -> {_describe(line)}")
    return "\n".join(lines)
