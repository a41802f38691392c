"""`pagerules test`: rule test cases (events in, expected outcomes out) on the dry-run pipeline.

A case runs its events through exactly what `process --dry-run` runs, with
its config overrides, and compares each outcome line with the expected one,
field by field, for the fields the case names.

Time in a case is the events' (README "Pending triggers"), never the wall clock: an event's ``time``
(ISO 8601), or ``at: +10m``, an offset from the case's ``start`` (default CASE_START), which becomes
its ``time``. An event with neither is handled at the latest time seen. Before each event the daemon's
wake-up runs for the holds due strictly before that event's time (a repeat at the due time pages on
its own, and a recovery then cancels), and ``until: +15m`` runs it once more at that time; its
outcome lines come in between, where the daemon would print them.

A case's ``silences:`` are made as `silence add` and ``POST /api/silences`` make them (the same
checks), timed by offsets or ISO 8601, with ids ``case-1``, ``case-2``... unless given. A
``- resolve_by_hand: KEY`` step closes the key's open incident as a person resolving it in PagerDuty
would; it prints nothing, and a key with nothing open fails the case (a typo would test nothing).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from engine import resources
from engine.config import Config, load_config
from engine.dispatch.dispatcher import Dispatcher, DryRun, MemoryView
from engine.dispatch.pipeline import Pipeline
from engine.documents.schema import check_document, load_schema
from engine.documents.source import Document, load_yaml_text
from engine.errors import InvalidFiles, Problem
from engine.evaluation.actions import MAX_INCIDENT_KEY, MAX_TITLE, is_shortened_key
from engine.evaluation.evaluate import event_time, iso_time
from engine.events.stream import Parsed, read_events
from engine.language.loading import display, load_ruleset
from engine.language.model import RuleSet
from engine.language.silences import Silence, SilenceError, parse_duration, silence_from_request

DEFAULT_TESTS = "tests"  # inside the rules folder: rules/tests/*.yaml
CASE_START = "2026-01-01T00:00:00Z"  # a case's time zero when it gives no start: fixed, so runs repeat
CASE_SILENCER = "pagerules test"  # who made a case's silences (created_by)


class CaseClock:
    """A case's time: its start, then each event's own time as the events arrive (never the wall clock)."""

    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def see(self, event: Mapping[str, Any]) -> None:
        at = event_time(event.get("time"))
        if at is not None:
            self.now = at


def offset(text: Any, where: str) -> float:
    """``+10m`` (or ``10m``, ``+0s``) as seconds from the case's start; raises ValueError naming ``where``."""
    written = str(text).strip()
    bare = written.removeprefix("+")
    if re.fullmatch(r"0[smhdw]?", bare):
        return 0.0
    try:
        return parse_duration(bare, where)
    except SilenceError as exc:
        raise ValueError(f"{where}: {exc.reason} (an offset from the case's start, such as +10m)") from None


def moment(text: Any, start: float, where: str) -> float:
    """An offset from the case's start (``+10m``) or an ISO 8601 time, as epoch seconds."""
    at = event_time(text) if isinstance(text, str) and not text.strip().startswith("+") else None
    return at if at is not None else start + offset(text, where)


@dataclass(frozen=True)
class HandResolve:
    """A ``resolve_by_hand`` step: a person resolves the key's incident at ``at`` (None: the latest time)."""

    incident_key: str
    at: float | None
    where: str  # events[N], for the case's diff


@dataclass
class CaseResult:
    where: str
    name: str
    diffs: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.diffs


def test_files(paths: list[str], config: Config) -> list[Path]:
    """The files named (folders give their *.yaml), or the rules folder's tests/ and those of the
    enabled packs (rules/packs/NAME/tests/)."""
    rules = Path(config.rules_dir)
    packs = resources.pack_folders(rules)
    pack_tests = [packs[pack] / DEFAULT_TESTS for pack in config.packs if pack in packs]
    roots = [Path(p) for p in paths] or [rules / DEFAULT_TESTS] + [p for p in pack_tests if p.is_dir()]
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found += sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml"))
        elif root.exists():
            found.append(root)
        else:
            raise InvalidFiles([Problem(str(root), 1, "no such test file or folder")])
    return found


class RuleTestRun:
    """One `pagerules test` run: its config file and overrides, and the rulesets it has loaded
    (cases that differ only in dispatch settings share one)."""

    def __init__(self, config_path: str | None, base: Mapping[str, Any]):
        self.config_path, self.base = config_path, dict(base)
        self._rulesets: dict[str, RuleSet] = {}

    def run_file(self, path: Path) -> Iterator[CaseResult]:
        """Every case of one test file."""
        doc, problems = load_yaml_text(path.read_text(encoding="utf-8"), display(path))
        doc = replace(doc, data=_iso_texts(doc.data))
        problems += check_document(doc, load_schema("ruletest.schema.json"), lambda p: (None, p))
        if problems:
            raise InvalidFiles(problems)
        for index, case in enumerate(doc.data["cases"]):
            yield self.run_case(case, doc, index, path)

    def run_case(self, case: Mapping[str, Any], doc: Document, index: int, path: Path) -> CaseResult:
        result = CaseResult(f"{display(path)}:{doc.line(('cases', index))}", case["name"])
        config = load_config(self.config_path, overrides={**self.base, **case.get("config", {})})
        ruleset = self._ruleset(config)
        start = event_time(case.get("start", CASE_START))
        if start is None:
            result.diffs.append(f"start: {case['start']!r} is not ISO 8601 (e.g. {CASE_START})")
            return result
        clock = CaseClock(start)
        silences = list(_silences(case, path, doc, index, result, start))
        items = list(_events(case["events"], path, doc, index, result, start))
        if result.diffs:  # a silence or a step given wrong: running the rest would test something else
            return result
        view = MemoryView(silences=silences)
        dispatcher = Dispatcher(config, DryRun(view), clock)
        pipeline = Pipeline(ruleset, dispatcher)
        actual: list[dict[str, Any]] = []
        for item, default_type in items:
            if isinstance(item, HandResolve):
                if item.at is not None:
                    clock.now = max(clock.now, item.at)
                actual += _wake(dispatcher, clock.now)
                if not view.resolve_by_hand(item.incident_key, clock.now):
                    result.diffs.append(f"{item.where}: resolve_by_hand: nothing open for {item.incident_key!r} "
                                        f"at {iso_time(clock.now)}")
                continue
            if item.event is not None:
                clock.see(item.event)
            actual += _wake(dispatcher, clock.now)
            actual += [o.to_line() for o in pipeline.item(item, default_type)]
        if "until" in case:
            try:
                clock.now = max(clock.now, start + offset(case["until"], "until"))
            except ValueError as exc:
                result.diffs.append(str(exc))
                return result
            actual += [o.to_line() for o in dispatcher.fire_due(clock.now)]
        result.diffs += compare(case["expect"], actual)
        result.warnings += _limits(actual, ruleset, case["name"])
        return result

    def _ruleset(self, config: Config) -> RuleSet:
        key = json.dumps([config.rules_dir, config.packs, config.params, config.dedup_key_prefix,
                          config.title_format], sort_keys=True, default=str)
        if key not in self._rulesets:
            self._rulesets[key] = load_ruleset(config)
        return self._rulesets[key]


def _iso_texts(value: Any) -> Any:
    """YAML reads an unquoted ``2026-01-01T00:10:00Z`` as a timestamp: make it the ISO 8601 text it was
    written as, as a JSON event would carry it, so ``start``, ``time`` and a silence's times take it
    rather than refusing it (or an event's time being ignored)."""
    if isinstance(value, dict):
        return {k: _iso_texts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso_texts(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _wake(dispatcher: Dispatcher, now: float) -> list[dict[str, Any]]:
    """What the daemon's wake-up would have paged before ``now``: the holds due strictly before it (one due
    at ``now`` is the next event's to page or cancel, as a repeat or recovery at the due time does)."""
    return [o.to_line() for o in dispatcher.fire_due(math.nextafter(now, -math.inf))]


def _silences(case: Mapping[str, Any], path: Path, doc: Document, index: int, result: CaseResult, start: float
              ) -> Iterator[Silence]:
    """The case's silences, checked as `silence add` and the API check theirs; each error names the test
    file, the line and the field."""
    for number, spec in enumerate(case.get("silences", ())):
        where = ("cases", index, "silences", number)
        name = f"silences[{number}]"
        try:
            request = _silence_request(spec, start, name, case["name"])
            silence = silence_from_request(request, CASE_SILENCER, start)
        except SilenceError as exc:
            first = exc.field.split(".")[0]
            field_name = {"ends_at": _end_key(spec), "starts_at": _start_key(spec)}.get(first, first)
            line = doc.line((*where, field_name, *exc.field.split(".")[1:]))
            result.diffs.append(f"{display(path)}:{line}: {name}.{field_name}"
                                f"{exc.field[len(first):]}: {exc.reason}")
            continue
        yield replace(silence, id=str(spec.get("id") or f"case-{number + 1}"))


def _start_key(spec: Mapping[str, Any]) -> str:
    return "at" if "at" in spec else "starts_at"


def _end_key(spec: Mapping[str, Any]) -> str:
    return next((k for k in ("until", "ends_at", "for") if k in spec), "ends_at")


def _silence_request(spec: Mapping[str, Any], start: float, name: str, case_name: str) -> dict[str, Any]:
    """A case's silence in the request shape of `silence add` and ``POST /api/silences``: ``starts_at``
    or ``at`` and ``ends_at`` or ``until`` may be offsets from the case's start (``+10m``) or ISO 8601,
    ``for`` a duration; the comment defaults to the case's name."""
    given = [k for k in ("starts_at", "at") if k in spec]
    ends = [k for k in ("ends_at", "until") if k in spec]
    if len(given) > 1:
        raise SilenceError("starts_at", "give starts_at or at, not both")
    if len(ends) > 1:
        raise SilenceError("ends_at", "give ends_at or until, not both")
    request: dict[str, Any] = {"match": spec.get("match"), "comment": spec.get("comment", f"rule test: {case_name}")}
    if "weekly" in spec:
        request["weekly"] = spec["weekly"]
    begin = start
    if given:
        begin = _when(spec[given[0]], start, "starts_at")
        request["starts_at"] = iso_time(begin)
    if ends:
        request["ends_at"] = iso_time(_when(spec[ends[0]], start, "ends_at"))
    if "for" in spec:
        request["for"] = spec["for"]
    return request


def _when(value: Any, start: float, field_name: str) -> float:
    if not isinstance(value, str):
        raise SilenceError(field_name, f"expected an offset from the case's start (+10m) or an ISO 8601 time, "
                           f"got {type(value).__name__}")
    try:
        return moment(value, start, field_name)
    except ValueError:
        raise SilenceError(field_name, f"{value!r} is neither an offset from the case's start (+10m) nor an "
                           "ISO 8601 time (2026-01-01T00:10:00Z)") from None


def _events(specs: list[Any], path: Path, doc: Document, index: int, result: CaseResult, start: float
            ) -> Iterator[tuple[Parsed | HandResolve, str | None]]:
    """Each case event with the type it takes when it has none (an event file's ``type``); ``at`` becomes
    the event's ``time``. A ``resolve_by_hand`` step is a HandResolve."""
    for number, spec in enumerate(specs):
        if "resolve_by_hand" in spec:
            step = _hand_resolve(spec, number, start, result)
            if step is not None:
                yield step, None
            continue
        if "file" not in spec:
            event = dict(spec)
            if "at" in event:
                if "time" in event:
                    result.diffs.append(f"events[{number}]: give time or at, not both")
                    continue
                try:
                    event["time"] = iso_time(start + offset(event.pop("at"), f"events[{number}].at"))
                except ValueError as exc:
                    result.diffs.append(str(exc))
                    continue
            yield Parsed(str(path), doc.line(("cases", index, "events", number)), event), None
            continue
        event_file = (path.parent / spec["file"]).resolve()
        try:
            with event_file.open(encoding="utf-8", errors="replace") as lines:
                for item in read_events(lines, spec["file"]):
                    yield item, spec.get("type") or None
        except OSError as exc:
            result.diffs.append(f"events[{number}]: cannot read {spec['file']}: {exc.strerror}")


def _hand_resolve(spec: Mapping[str, Any], number: int, start: float, result: CaseResult) -> HandResolve | None:
    where = f"events[{number}]"
    if "at" in spec and "time" in spec:
        result.diffs.append(f"{where}: give time or at, not both")
        return None
    at: float | None = None
    if "time" in spec:
        at = event_time(spec["time"])
        if at is None:
            result.diffs.append(f"{where}.time: {spec['time']!r} is not ISO 8601 (e.g. {CASE_START})")
            return None
    elif "at" in spec:
        try:
            at = start + offset(spec["at"], f"{where}.at")
        except ValueError as exc:
            result.diffs.append(str(exc))
            return None
    return HandResolve(str(spec["resolve_by_hand"]), at, where)


def compare(expected: Sequence[Mapping[str, Any]], actual: Sequence[Mapping[str, Any]]) -> list[str]:
    """Readable differences: which outcome, which field, expected and got."""
    diffs = []
    for number, (want, got) in enumerate(zip(expected, actual, strict=False), 1):
        for key, value in want.items():
            if key == "error_contains":
                if got.get("action") != "error" or value not in str(got.get("error", "")):
                    diffs.append(f"outcome {number}: error: expected it to contain {value!r}, "
                                 f"got {got.get('error', got.get('action'))!r}")
            elif got.get(key) != value:
                diffs.append(f"outcome {number} ({got.get('action')}): {key}: expected {value!r}, "
                             f"got {got.get(key)!r}")
    if len(actual) != len(expected):
        diffs.append(f"expected {len(expected)} outcomes, got {len(actual)}")
        for number, extra in enumerate(actual[len(expected):], len(expected) + 1):
            diffs.append(f"  unexpected outcome {number}: {_brief(extra)}")
        for number, missing in enumerate(expected[len(actual):], len(actual) + 1):
            diffs.append(f"  missing outcome {number}: {_brief(missing)}")
    return diffs


def _brief(line: Mapping[str, Any]) -> str:
    keys = ("action", "status", "incident_key", "severity", "title", "summary", "rule", "error", "error_contains")
    return ", ".join(f"{k}={line[k]!r}" for k in keys if k in line)


def _limits(lines: Sequence[Mapping[str, Any]], ruleset: RuleSet, case: str) -> list[Problem]:
    """PagerDuty's limits, checked on what the case rendered."""
    rules = {r.id: r for r in ruleset.all_rules()}
    found = []
    for line in lines:
        rule = rules.get(line.get("rule", ""))
        if line["action"] == "change" and rule is not None and len(line["summary"]) > MAX_TITLE:
            found.append(Problem(rule.filename, rule.line_of("summary"), f"summary over {MAX_TITLE} characters "
                                 f"in case '{case}': cut", rule.id, warning=True))
        if line["action"] != "trigger" or rule is None:
            continue
        if is_shortened_key(line["incident_key"]):
            found.append(Problem(rule.filename, rule.line_of("incident_key"), f"incident_key over "
                                 f"{MAX_INCIDENT_KEY} characters in case '{case}': shortened with a hash",
                                 rule.id, warning=True))
        if len(line["title"]) == MAX_TITLE and line["title"].endswith("…"):
            found.append(Problem(rule.filename, rule.line_of("title"), f"title over {MAX_TITLE} characters "
                                 f"in case '{case}': cut", rule.id, warning=True))
    return found
