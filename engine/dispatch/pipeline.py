"""Parsed input -> evaluation -> dispatch -> outcome lines. The one path `process`,
`watch`, `test` and `replay` all run, so none of them can disagree with another."""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.dispatch.dispatcher import Dispatcher, error_line
from engine.evaluation.actions import ErrorAction
from engine.evaluation.evaluate import evaluate
from engine.events.stream import Parsed
from engine.events.types import prepare
from engine.language.model import RuleSet

log = logging.getLogger("pagerules")


@dataclass
class Tally:
    """Counts for the summary line and the exit status."""

    events: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (action, status)

    @property
    def failed(self) -> bool:
        """Exit status 1: an event was rejected, a rule failed, or an action failed."""
        return any(action == "error" or status == "failed" for action, status in self.outcomes)

    def count(self, line: dict[str, Any]) -> None:
        self.outcomes[(line["action"], line["status"])] += 1

    def total(self, action: str) -> int:
        return sum(n for (a, _), n in self.outcomes.items() if a == action)

    def summary(self) -> str:
        parts = [f"{self.events} events"]
        for action in ("trigger", "resolve"):
            detail = ", ".join(f"{n} {s}" for (a, s), n in sorted(self.outcomes.items()) if a == action)
            parts.append(f"{self.total(action)} {action}s" + (f" ({detail})" if detail else ""))
        parts.append(f"{self.total('error')} errors")
        return ", ".join(parts)


def run(items: Iterable[Parsed], ruleset: RuleSet, dispatcher: Dispatcher, tally: Tally,
        default_type: str | None = None) -> Iterator[dict[str, Any]]:
    """Outcome lines for each parsed item, in input order."""
    count = tally.outcomes  # counted inline: this loop runs once per event
    types = ruleset.event_types
    unhandled = ruleset.unhandled_types
    special = frozenset(name for name, t in types.items() if not t.plain)  # types that unwrap or expand
    view = dispatcher.view
    handle = dispatcher.handle
    for item in items:
        tally.events += 1
        if item.event is None:
            line = error_line(ErrorAction(None, item.error or f"{item.where}: unreadable"))
            tally.count(line)
            yield line
            continue
        # events_of() inlined: a call per event here measurably costs throughput (bench_process.py).
        if default_type and "type" not in item.event:
            item.event["type"] = default_type
        kind = item.event.get("type")
        if type(kind) is not str:  # no type, or not text: evaluate rejects it with the reason
            kind = None
        for event in prepare(item.event, types) if kind in special else (item.event,):
            inner = event["type"] if kind in special else kind  # alertmanager -> alertmanager.alert
            if inner in unhandled:
                warn_unhandled(inner)
            for action in evaluate(event, ruleset, view):
                for line in handle(action):
                    count[(line["action"], line["status"])] += 1
                    yield line


_warned: set[str] = set()


def warn_unhandled(kind: str, warned: set[str] = _warned) -> None:
    """An event type no rule handles: say so once per ``warned`` set (its rule pack may be off), instead of nothing."""
    if kind not in warned:
        warned.add(kind)
        log.warning("no rules handle event type %s: nothing will page for it (is its rule pack on? --packs %s)",
                    kind, kind.split(".")[0])
