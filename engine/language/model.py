"""The compiled rule model: frozen triggers, recoveries and the ruleset evaluation reads."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem
from engine.events.types import EventType
from engine.language.index import RuleIndex, build_index
from engine.language.matchers import Condition
from engine.language.templates import Compiled


@dataclass(frozen=True)
class Rule:
    """What triggers and recoveries share: where they are, what they match."""

    id: str
    on: str
    description: str
    conditions: tuple[Condition, ...]
    vars: tuple[tuple[str, Compiled], ...]
    when: Compiled | None
    filename: str
    line: int
    field_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, name: str) -> int:
        """The line of one of the rule's keys (``incident_key``), else of the rule."""
        return self.field_lines.get(name, self.line)


LINK_SCHEMES = ("http", "https")  # what PagerDuty shows as a link; anything else is left out


def link_problem(href: str) -> str | None:
    """Why a rendered href is not kept as a link (it is not an http(s) URL), or None."""
    scheme, colon, rest = href.partition(":")
    if colon and scheme.lower() in LINK_SCHEMES and rest.startswith("//") and len(rest) > 2:
        return None
    return f"not an http(s) URL (its scheme is {scheme.lower()!r})" if colon else "not an http(s) URL (no scheme)"


@dataclass(frozen=True)
class Link:
    """One ``links:`` entry: an href template and an optional text template."""

    href: Compiled
    text: Compiled | None = None


@dataclass(frozen=True)
class Flap:
    """A trigger's ``flap:`` (README "Flap control"): a key that opened ``opens`` times within ``within``
    seconds is flapping; its recoveries are held so it stays one open incident, noted on each flap."""

    opens: int
    within: float


@dataclass(frozen=True)
class Trigger(Rule):
    severity: str | Compiled = "high"
    title: Compiled | None = None
    incident_key: Compiled | None = None
    labels: tuple[tuple[str, Compiled], ...] = ()
    details: tuple[tuple[str, Compiled], ...] = ()
    links: tuple[Link, ...] = ()
    pending_for: float | None = None  # ``for:`` in seconds (README "Pending triggers"); None: page at once
    renotify: float | None = None  # ``renotify:`` in seconds (README "Repeat control"); None: the dedup window
    flap: Flap | None = None  # ``flap:`` (README "Flap control"); None: every recovery resolves


@dataclass(frozen=True)
class Selector:
    """Which open incidents a recovery resolves: labels (a value list means any of) or one key."""

    labels: tuple[tuple[str, tuple[Compiled, ...]], ...] = ()
    incident_key: Compiled | None = None
    line: int = 1


@dataclass(frozen=True)
class Recovery(Rule):
    resolves: tuple[Selector, ...] = ()
    message: Compiled | None = None


@dataclass(frozen=True)
class Change(Rule):
    """A change event (a deploy, a rollback): shown in PagerDuty beside incidents, never paging."""

    summary: Compiled | None = None
    labels: tuple[tuple[str, Compiled], ...] = ()  # choose the route, as a trigger's labels do
    details: tuple[tuple[str, Compiled], ...] = ()
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class RuleSet:
    """Compiled rules indexed by event type, with the settings evaluation needs."""

    triggers: Mapping[str, tuple[Trigger, ...]]
    recoveries: Mapping[str, tuple[Recovery, ...]]
    event_types: Mapping[str, EventType]
    params: Mapping[str, Any]
    prefix: str
    title_format: str
    version: str
    files: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = field(default=())
    changes: Mapping[str, tuple[Change, ...]] = field(default_factory=dict)
    # Compiled with the ruleset (engine/language/index.py): which rules each event must meet.
    trigger_index: Mapping[str, RuleIndex[Trigger]] = field(init=False, repr=False, compare=False)
    recovery_index: Mapping[str, RuleIndex[Recovery]] = field(init=False, repr=False, compare=False)
    change_index: Mapping[str, RuleIndex[Change]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trigger_index", build_index(self.triggers))
        object.__setattr__(self, "recovery_index", build_index(self.recoveries))
        object.__setattr__(self, "change_index", build_index(self.changes))

    def triggers_for(self, event: Mapping[str, Any]) -> list[Trigger] | tuple[Trigger, ...]:
        """The triggers of the event's type that can match it, in the order written (the others cannot)."""
        index = self.trigger_index.get(event["type"])
        return index.candidates(event) if index is not None else ()

    def recoveries_for(self, event: Mapping[str, Any]) -> list[Recovery] | tuple[Recovery, ...]:
        """The recoveries of the event's type that can match it, in the order written."""
        index = self.recovery_index.get(event["type"])
        return index.candidates(event) if index is not None else ()

    def changes_for(self, event: Mapping[str, Any]) -> list[Change] | tuple[Change, ...]:
        """The change rules of the event's type that can match it, in the order written."""
        index = self.change_index.get(event["type"])
        return index.candidates(event) if index is not None else ()

    def ruled_out(self, event: Mapping[str, Any]) -> dict[str, str]:
        """Rule id -> the matcher that ruled it out, for every rule of the event's type the index skips."""
        out: dict[str, str] = {}
        for group in (self.trigger_index, self.recovery_index, self.change_index):
            index = group.get(event["type"])
            if index is not None:
                out.update(index.ruled_out(event))
        return out

    def has_rules(self, event_type: str) -> bool:
        return event_type in self.triggers or event_type in self.recoveries or event_type in self.changes

    @property
    def unhandled_types(self) -> frozenset[str]:
        """Known event types no rule in force handles (their pack may be off)."""
        return frozenset(t for t in self.event_types if not self.has_rules(t))

    def all_rules(self) -> list[Rule]:
        out: list[Rule] = []
        for group in (self.triggers, self.recoveries, self.changes):
            for rules in group.values():
                out.extend(rules)
        return out
