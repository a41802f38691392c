"""`pagerules replay`: what a rule change would have done to recorded events.

Both rulesets run in dry run over the same events, in lockstep (one event at a
time, so a week of traffic is never held in memory), each with its own view
of open incidents, exactly as `process --dry-run` would. Only differences in
paging are reported: incidents that would now page or no longer page, whose
severity, title or key changes, resolutions gained or lost, change events
gained, lost or changed (summary or route, paired by rule), and errors.

Time is the events' (README "Pending triggers"): the replay's clock is the latest event ``time`` seen
(the wall clock only until an event gives one). As in the daemon, the wake-up runs for both rulesets
before each event, paging the ``for:`` holds due strictly before that event's time, and once more at
the end (the last event's time, or ``until``); what it pages is compared like an event's outcomes.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.daemon.inbox import backlog, type_from_name
from engine.dispatch.outcomes import Outcome, Status
from engine.dispatch.pipeline import Pipeline
from engine.evaluation.actions import TriggerAction
from engine.evaluation.evaluate import event_time, iso_time
from engine.events.stream import Parsed, read_events
from engine.events.types import event_id

log = logging.getLogger("pagerules")
PAGES = (Status.PLANNED, Status.DEDUPLICATED)  # an incident exists or would be opened


@dataclass(frozen=True)
class Difference:
    # now pages | no longer pages | changed | resolution gained | resolution lost
    # | change gained | change lost | change changed | error gained | error lost
    kind: str
    rule: str
    event_id: Any
    where: str
    incident_key: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        key = f" {self.incident_key}" if self.incident_key else ""
        return f"{self.where}: event {self.event_id}: {self.kind}:{key} [{self.rule}] {self.detail}".rstrip()


def recorded_events(sources: list[str], stdin: Iterable[str] | None = None) -> Iterator[Parsed]:
    """Events from files, folders (their *.json and *.ndjson, oldest first, like processed/) or '-'."""
    for source in sources:
        if source == "-":
            yield from read_events(sys.stdin if stdin is None else stdin, "stdin")
            continue
        path = Path(source)
        for file in backlog(path) if path.is_dir() else [path]:
            try:
                with file.open(encoding="utf-8", errors="replace") as lines:
                    yield from read_events(lines, str(file))
            except OSError as exc:  # a folder or unreadable file among the recorded events
                yield Parsed(str(file), 1, error=f"{file}: cannot read it: {exc.strerror or exc}")


class ReplayClock:
    """A replay's time, shared by both rulesets' dispatchers: the latest event ``time`` seen, never going
    back; before any event gives one, the wall clock."""

    def __init__(self) -> None:
        self.latest: float | None = None

    def __call__(self) -> float:
        return self.latest if self.latest is not None else time.time()

    def see(self, event: Any) -> None:
        at = event_time(event.get("time")) if isinstance(event, dict) else None
        if at is not None and (self.latest is None or at > self.latest):
            self.latest = at


def replay(items: Iterable[Parsed], new: Pipeline, old: Pipeline, clock: ReplayClock | None = None,
           until: float | None = None, past_end: float = 0.0) -> Iterator[Difference]:
    """The differences, event by event; each event is expanded as the new rules expand it. The wake-up
    runs before each event and at the end: at the last event's time plus ``past_end``, or at ``until``
    when that is later."""
    clock = clock if clock is not None else ReplayClock()
    for item in items:
        if item.event is None:  # unreadable either way: not a difference between rulesets, but say so
            log.warning("%s; skipped", item.error or f"{item.where}: unreadable")
            continue
        clock.see(item.event)
        if clock.latest is not None:
            yield from wake(new, old, math.nextafter(clock.latest, -math.inf))
        default = type_from_name(Path(item.source).name, new.ruleset.event_types)
        for one in new.events(item.event, default):
            yield from _compare_one(one, item.where, new, old)
    ends = [t for t in (until, None if clock.latest is None else clock.latest + past_end) if t is not None]
    if ends:
        clock.see({"time": iso_time(max(ends))})  # a hold paged at the end is timed then, not by the wall clock
        yield from wake(new, old, max(ends))


def wake(new: Pipeline, old: Pipeline, at: float) -> Iterator[Difference]:
    """What the daemon's wake-up pages at ``at`` under each ruleset (holds due at or before it), compared
    per held event; ``where`` says it was the wake-up, and when the holds fell due."""
    after, before = new.dispatcher.fire_due(at), old.dispatcher.fire_due(at)
    if not after and not before:
        return
    eids: list[Any] = []
    for outcome in (*after, *before):
        if outcome.event_id not in eids:
            eids.append(outcome.event_id)
    for eid in eids:
        mine, theirs = [o for o in after if o.event_id == eid], [o for o in before if o.event_id == eid]
        due = [o.cause.at for o in (*mine, *theirs) if isinstance(o.cause, TriggerAction) and o.cause.at is not None]
        where = f"wake-up at {iso_time(min(due) if due else at)}"
        yield from diff(theirs, mine, eid, where)


def _compare_one(event: dict[str, Any], where: str, new: Pipeline, old: Pipeline) -> Iterator[Difference]:
    before = old.outcomes(event)
    after = new.outcomes(event)
    for difference in diff(before, after, event_id(event), where):
        # A resolution only counts as lost when the new rules leave that incident open (not when
        # they never opened it: that difference was reported already), and gained likewise.
        key = difference.incident_key or ""
        if difference.kind == "resolution lost" and new.dispatcher.view.get(key) is None:
            continue
        if difference.kind == "resolution gained" and old.dispatcher.view.get(key) is None:
            continue
        yield difference


def diff(before: list[Outcome], after: list[Outcome], eid: Any, where: str) -> Iterator[Difference]:
    """The differences between one event's outcomes under the old and the new rules."""
    old_pages = {o.incident_key or "": o for o in before if o.action == "trigger" and o.status in PAGES}
    new_pages = {o.incident_key or "": o for o in after if o.action == "trigger" and o.status in PAGES}
    # A trigger whose key moved is a change, not an add and a remove: pair leftovers by rule.
    only_old = {k: o for k, o in old_pages.items() if k not in new_pages}
    only_new = {k: o for k, o in new_pages.items() if k not in old_pages}
    for key, new in list(only_new.items()):
        twin = next((k for k, o in only_old.items() if o.rule == new.rule), None)
        if twin is not None:
            old_pages[key] = only_old.pop(twin)
            del only_new[key]
    for key, new in only_new.items():
        yield Difference("now pages", new.rule or "-", eid, where, key, f"({new.severity}) {new.title}")
    for key, gone in only_old.items():
        yield Difference("no longer pages", gone.rule or "-", eid, where, key, f"({gone.severity}) {gone.title}")
    for key, new in new_pages.items():
        if key not in old_pages or key in only_new:
            continue
        old = old_pages[key]
        changes = [f"{name}: {getattr(old, name)!r} -> {getattr(new, name)!r}"
                   for name in ("incident_key", "severity", "title") if getattr(old, name) != getattr(new, name)]
        if changes:
            yield Difference("changed", new.rule or "-", eid, where, key, "; ".join(changes))
    yield from _resolutions(before, after, eid, where)
    yield from _changes(before, after, eid, where)
    yield from _errors(before, after, eid, where)


def _resolutions(before: list[Outcome], after: list[Outcome], eid: Any, where: str) -> Iterator[Difference]:
    old = {o.incident_key: o for o in before if o.action == "resolve" and o.status is Status.PLANNED}
    new = {o.incident_key: o for o in after if o.action == "resolve" and o.status is Status.PLANNED}
    for key in sorted(set(new) - set(old), key=str):
        yield Difference("resolution gained", new[key].rule or "-", eid, where, key, new[key].message or "")
    for key in sorted(set(old) - set(new), key=str):
        yield Difference("resolution lost", old[key].rule or "-", eid, where, key, old[key].message or "")


def _changes(before: list[Outcome], after: list[Outcome], eid: Any, where: str) -> Iterator[Difference]:
    """Change events by the rule that sends them (one per rule and event)."""
    old = {o.rule or "": o for o in before if o.action == "change"}
    new = {o.rule or "": o for o in after if o.action == "change"}
    for rule in sorted(set(new) - set(old)):
        yield Difference("change gained", rule, eid, where, None, _summary(new[rule]))
    for rule in sorted(set(old) - set(new)):
        yield Difference("change lost", rule, eid, where, None, _summary(old[rule]))
    for rule in sorted(set(old) & set(new)):
        was, now = old[rule], new[rule]
        changes = [f"{name}: {a!r} -> {b!r}" for name, a, b in (("summary", _summary(was), _summary(now)),
                                                                 ("route", was.route, now.route)) if a != b]
        if changes:
            yield Difference("change changed", rule, eid, where, None, "; ".join(changes))


def _summary(outcome: Outcome) -> str:
    return str(getattr(outcome.cause, "summary", ""))


def _errors(before: list[Outcome], after: list[Outcome], eid: Any, where: str) -> Iterator[Difference]:
    old = {o.error or "": o for o in before if o.action == "error"}
    new = {o.error or "": o for o in after if o.action == "error"}
    for text in sorted(set(new) - set(old)):
        yield Difference("error gained", new[text].rule or "-", eid, where, None, text)
    for text in sorted(set(old) - set(new)):
        yield Difference("error lost", old[text].rule or "-", eid, where, None, text)


def summary(differences: list[Difference]) -> dict[str, dict[str, int]]:
    """rule -> kind -> count."""
    counts: dict[str, Counter[str]] = {}
    for d in differences:
        counts.setdefault(d.rule, Counter())[d.kind] += 1
    return {rule: dict(sorted(c.items())) for rule, c in sorted(counts.items())}

