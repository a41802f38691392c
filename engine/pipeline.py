"""Parsed input -> evaluation -> dispatch -> outcome lines. The one path `process`,
`watch`, `test` and `replay` all run, so none of them can disagree with another."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.actions import ErrorAction
from engine.dispatch import Dispatcher, error_line
from engine.evaluate import evaluate
from engine.events import Parsed
from engine.rules import RuleSet


@dataclass
class Tally:
    """Counts for the summary line and the exit status."""

    events: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> bool:
        return self.outcomes["error"] > 0 or any(k.endswith(":failed") for k in self.outcomes)

    def count(self, line: dict[str, Any]) -> None:
        self.outcomes[line["action"]] += 1
        if line["action"] != "error":
            self.outcomes[f"{line['action']}:{line['status']}"] += 1

    def summary(self) -> str:
        parts = [f"{self.events} events"]
        for action in ("trigger", "resolve"):
            statuses = sorted((k.split(":", 1)[1], n) for k, n in self.outcomes.items() if k.startswith(action + ":"))
            detail = ", ".join(f"{n} {s}" for s, n in statuses)
            parts.append(f"{self.outcomes[action]} {action}s" + (f" ({detail})" if detail else ""))
        parts.append(f"{self.outcomes['error']} errors")
        return ", ".join(parts)


def run(items: Iterable[Parsed], ruleset: RuleSet, dispatcher: Dispatcher, tally: Tally,
        default_type: str | None = None) -> Iterator[dict[str, Any]]:
    """Outcome lines for each parsed item, in input order."""
    for item in items:
        tally.events += 1
        if item.event is None:
            line = error_line(ErrorAction(None, item.error or f"{item.where}: unreadable"))
            tally.count(line)
            yield line
            continue
        event = item.event
        if default_type and "type" not in event:
            event["type"] = default_type
        for action in evaluate(event, ruleset, dispatcher.view):
            line = dispatcher.handle(action)
            tally.count(line)
            yield line
