"""Parsed input -> events -> evaluation -> dispatch -> outcomes: the one path `process`, `watch`,
`test`, `replay` and `explain` all run, so none of them can disagree with another.

An input object stands for one event or several (an Alertmanager payload expands, a Probot
delivery unwraps); an untyped one takes the run's default type (``--type``, a file's NAME.TYPE.json).
Each event is checked against its type's schema and evaluated (engine/evaluation), and each
action goes through the dispatcher's gates to its backend.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.dispatch.dispatcher import Dispatcher
from engine.dispatch.outcomes import STATUS_TEXT as _TEXT
from engine.dispatch.outcomes import Outcome, Status, errored
from engine.evaluation.actions import ErrorAction
from engine.evaluation.evaluate import evaluate
from engine.events.stream import Parsed
from engine.events.types import events_of
from engine.language.model import RuleSet

log = logging.getLogger("pagerules")
UNKNOWN_TYPE = "unknown"  # the type label of an input that has no (text) type


@dataclass
class Tally:
    """Counts for the summary line and the exit status."""

    events: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (action, status)

    @property
    def failed(self) -> bool:
        """Exit status 1: an event was rejected, a rule failed, or an action failed."""
        return any(action == "error" or status == Status.FAILED for action, status in self.outcomes)

    def total(self, action: str) -> int:
        return sum(n for (a, _), n in self.outcomes.items() if a == action)

    def summary(self) -> str:
        parts = [f"{self.events} events"]
        for action in ("trigger", "resolve"):
            detail = ", ".join(f"{n} {s}" for (a, s), n in sorted(self.outcomes.items()) if a == action)
            parts.append(f"{self.total(action)} {action}s" + (f" ({detail})" if detail else ""))
        parts.append(f"{self.total('error')} errors")
        return ", ".join(parts)


class Pipeline:
    """One ruleset and one dispatcher, and what a run of them remembers: its tally, and the types it
    has warned about (once each; a daemon passes its own set, so a reload does not warn again).
    ``on_unhandled`` hears of every event of a type no rule handles."""

    def __init__(self, ruleset: RuleSet, dispatcher: Dispatcher, tally: Tally | None = None,
                 on_unhandled: Callable[[str], None] | None = None, warned: set[str] | None = None,
                 meter: Callable[[str, str], None] | None = None):
        self.ruleset, self.dispatcher = ruleset, dispatcher
        self.meter = meter  # hears (event type, outcome status) of every outcome: the daemon's /metrics
        self.tally = tally if tally is not None else Tally()
        self.on_unhandled = on_unhandled
        self.warned = warned if warned is not None else set()
        self._unhandled = ruleset.unhandled_types

    def events(self, event: dict[str, Any], default_type: str | None = None) -> Iterable[dict[str, Any]]:
        """The events one input object stands for, typed, unwrapped and expanded."""
        return events_of(event, self.ruleset.event_types, default_type)

    def outcomes(self, event: dict[str, Any]) -> list[Outcome]:
        """The outcomes of one event: evaluated (schema check first) and dispatched, in order."""
        kind = event.get("type")
        if type(kind) is str and kind in self._unhandled:
            self._note_unhandled(kind)
        handle = self.dispatcher.handle
        found = [outcome for action in evaluate(event, self.ruleset, self.dispatcher.view)
                 for outcome in handle(action)]
        if self.meter is not None:
            for outcome in found:
                self.meter(kind if type(kind) is str else UNKNOWN_TYPE, _TEXT[outcome.result.status])
        return found

    def item(self, item: Parsed, default_type: str | None = None) -> Iterator[Outcome]:
        """The outcomes of one parsed input (an event, or the error of one that could not be read), counted."""
        return self.run((item,), default_type)

    def run(self, items: Iterable[Parsed], default_type: str | None = None) -> Iterator[Outcome]:
        """The outcomes of each parsed item, in input order, counted in the tally."""
        # One flat loop: this runs once per event, and each layer of generators costs throughput
        # (bench/bench_process.py).
        tally, types, outcomes = self.tally, self.ruleset.event_types, self.outcomes
        count = tally.outcomes
        for item in items:
            tally.events += 1
            if item.event is None:
                error = errored(ErrorAction(None, item.error or f"{item.where}: unreadable"))
                count[("error", _TEXT[error.result.status])] += 1
                if self.meter is not None:
                    self.meter(UNKNOWN_TYPE, _TEXT[error.result.status])
                yield error
                continue
            for event in events_of(item.event, types, default_type):
                for outcome in outcomes(event):
                    count[(outcome.cause.kind, _TEXT[outcome.result.status])] += 1
                    yield outcome

    def lines(self, items: Iterable[Parsed], default_type: str | None = None) -> Iterator[dict[str, Any]]:
        """The output lines of each parsed item, in input order."""
        return map(Outcome.to_line, self.run(items, default_type))

    def _note_unhandled(self, kind: str) -> None:
        """An event type no rule handles: say so once per run (its rule pack may be off), instead of nothing."""
        if kind not in self.warned:
            self.warned.add(kind)
            log.warning("no rules handle event type %s: nothing will page for it (is its rule pack on? --packs %s)",
                        kind, kind.split(".")[0])
        if self.on_unhandled is not None:
            self.on_unhandled(kind)


def run(items: Iterable[Parsed], ruleset: RuleSet, dispatcher: Dispatcher, tally: Tally,
        default_type: str | None = None) -> Iterator[dict[str, Any]]:
    """Output lines for each parsed item, in input order (a Pipeline of its own, counting into ``tally``)."""
    return Pipeline(ruleset, dispatcher, tally).lines(items, default_type)
