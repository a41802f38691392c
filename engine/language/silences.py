"""Silences (README "Silences and maintenance windows"): mute the triggers whose labels match, for a while.

A silence is pure data: matchers over an incident's labels (the rule language's `match` syntax,
engine/language/matchers.py), who made it and why, and the time it holds, ``starts_at <= t < ends_at``
(epoch seconds). A maintenance window adds a weekly recurrence: it then holds only on the given
weekdays between two wall-clock times in an IANA time zone, as Alertmanager's ``time_intervals`` do.
Nothing here reads a clock: the time is always an argument. ``make_silence`` validates what a person
typed and raises SilenceError naming the field.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import ConfigError
from engine.language.matchers import Condition, ConditionError, MatcherError, compile_match

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_COMMENT = 1000
LAST_TIME = 253402300800.0  # 10000-01-01T00:00:00Z: the first moment ISO 8601's four-digit years cannot say
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(?:(\d+)([smhdw]))+$")
_PART = re.compile(r"(\d+)([smhdw])")
_DAY_NAMES = {**{d: n for n, d in enumerate(WEEKDAYS)},
              **{d: n for n, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                              "sunday"))}}
_CLOCK = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


class SilenceError(ConfigError):
    """A silence given wrong, or one that is not there to expire; ``field`` names what (``match``,
    ``ends_at``, ``weekly.tz``, ``id``, ...). The CLI exits 2; the API answers 400 (404 for ``id``)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.reason = field, message


@dataclass(frozen=True)
class Weekly:
    """A weekly window: on ``weekdays`` (0 = Monday) from ``start`` to ``end`` minutes after local midnight
    in ``tz``. An end at or before the start runs past midnight into the next day (22:00-02:00)."""

    weekdays: tuple[int, ...]
    start: int
    end: int
    tz: str

    def covers(self, at: float) -> bool:
        local = datetime.fromtimestamp(at, ZoneInfo(self.tz))  # wall-clock time there, DST included
        minute, day = local.hour * 60 + local.minute, local.weekday()
        if self.start < self.end:
            return day in self.weekdays and self.start <= minute < self.end
        return (day in self.weekdays and minute >= self.start) or \
            ((day - 1) % 7 in self.weekdays and minute < self.end)

    def to_json(self) -> dict[str, Any]:
        return {"weekdays": [WEEKDAYS[d] for d in self.weekdays], "between": f"{_hhmm(self.start)}-{_hhmm(self.end)}",
                "tz": self.tz}

    def describe(self) -> str:
        return f"{_days(self.weekdays)} {_hhmm(self.start)}-{_hhmm(self.end)} {self.tz}"


@dataclass(frozen=True)
class Silence:
    """One silence. ``match`` is kept as written (to store and show it); ``conditions`` are compiled from it."""

    id: str
    match: Mapping[str, Any]
    created_by: str
    comment: str
    starts_at: float
    ends_at: float
    created_at: float
    weekly: Weekly | None = None
    conditions: tuple[Condition, ...] = field(default=(), repr=False, compare=False)

    def active_at(self, at: float) -> bool:
        """Whether it mutes at ``at``: inside [starts_at, ends_at), and inside its weekly window if it has one."""
        return self.starts_at <= at < self.ends_at and (self.weekly is None or self.weekly.covers(at))

    def matches(self, labels: Mapping[str, Any]) -> bool:
        """Whether every matcher holds for these labels; a missing label or a wrong type is no match."""
        for condition in self.conditions:
            try:
                holds, _ = condition.check(labels)
            except ConditionError:
                return False
            if not holds:
                return False
        return True

    def state_at(self, at: float) -> str:
        """``pending`` (not started), ``active``, ``waiting`` (a window between its hours) or ``expired``."""
        if at >= self.ends_at:
            return "expired"
        if at < self.starts_at:
            return "pending"
        return "active" if self.active_at(at) else "waiting"

    def to_json(self, at: float | None = None) -> dict[str, Any]:
        line: dict[str, Any] = {"id": self.id, "match": dict(self.match), "created_by": self.created_by,
                                "comment": self.comment, "starts_at": iso(self.starts_at),
                                "ends_at": iso(self.ends_at), "created_at": iso(self.created_at),
                                "weekly": self.weekly.to_json() if self.weekly else None}
        if at is not None:
            line["state"] = self.state_at(at)
        return line


def make_silence(match: Any, *, created_by: str, comment: Any, starts_at: float, ends_at: float,
                 created_at: float, weekly: Weekly | None = None, silence_id: str | None = None) -> Silence:
    """A validated silence; raises SilenceError for empty matchers (they would mute everything), a bad
    matcher, an empty comment, or an end not after the start."""
    if not isinstance(match, Mapping):
        raise SilenceError("match", f"expected a mapping of label matchers, got {type(match).__name__}")
    if not match:
        raise SilenceError("match", "no matchers: a silence without any would mute every page; give at least one")
    try:
        conditions = compile_match(match)
    except MatcherError as exc:
        raise SilenceError(".".join(("match", *exc.path[:1])), str(exc)) from None
    if all(_matches_nothing_in_particular(c) for c in conditions):
        raise SilenceError("match", "every matcher also holds for a missing or empty label (exists: false, a regex "
                           "that matches ''), so the silence would mute nearly every page; give at least one "
                           "matcher a label must have, e.g. repo=acme/api")
    if not isinstance(comment, str) or not comment.strip():
        raise SilenceError("comment", "say why (who is working on what): a comment is required")
    if len(comment) > MAX_COMMENT:
        raise SilenceError("comment", f"is {len(comment)} characters; at most {MAX_COMMENT}")
    if not created_by.strip():
        raise SilenceError("created_by", "is empty: say who makes the silence")
    for name, at in (("starts_at", starts_at), ("ends_at", ends_at)):
        if not 0 <= at < LAST_TIME:
            raise SilenceError(name, "is outside the years 1970 to 9999")
    if ends_at <= starts_at:
        raise SilenceError("ends_at", f"{iso(ends_at)} is not after starts_at {iso(starts_at)}")
    return Silence(silence_id or str(uuid.uuid4()), dict(match), created_by, comment.strip(), starts_at, ends_at,
                   created_at, weekly, conditions)


def _matches_nothing_in_particular(condition: Condition) -> bool:
    """Whether the condition holds for an incident without its label, or with it empty: Alertmanager
    refuses a silence whose every matcher matches the empty value, and so do we."""
    for labels in ({}, {condition.field: ""}):
        try:
            if condition.check(labels)[0]:
                return True
        except ConditionError:
            continue
    return False


def matchers_from_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``label=value`` strings (the CLI's --match) as an equality match; a label given twice is an error."""
    match: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SilenceError("match", f"{pair!r} is not label=value")
        if name.strip() in match:
            raise SilenceError("match", f"label {name.strip()!r} given twice")
        match[name.strip()] = value
    return match


def parse_duration(text: str, field_name: str = "for") -> float:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1w`` or a sum of them (``1h30m``) in seconds; more than zero."""
    cleaned = text.strip().lower()
    if not _DURATION.match(cleaned):
        raise SilenceError(field_name, f"{text!r} is not a duration: write a number and a unit, s m h d or w "
                           "(30m, 2h, 1h30m)")
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(cleaned))
    if seconds <= 0:
        raise SilenceError(field_name, f"{text!r} is no time at all: give a duration above zero")
    return float(seconds)


def parse_time(value: Any, field_name: str) -> float:
    """ISO 8601 (``2026-12-03T22:00:00Z``, an offset, or none: UTC) as epoch seconds."""
    if not isinstance(value, str):
        raise SilenceError(field_name, f"expected an ISO 8601 time, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SilenceError(field_name, f"{value!r} is not an ISO 8601 time (2026-12-03T22:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def make_weekly(weekdays: Any, between: Any, tz: Any) -> Weekly:
    """A weekly window from ``mon-fri`` (or ``sat,sun``, or a list of names), ``22:00-23:00`` and a zone name."""
    if not isinstance(tz, str) or not tz.strip():
        raise SilenceError("weekly.tz", "give an IANA time zone (Europe/Berlin, UTC)")
    try:
        ZoneInfo(tz.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise SilenceError("weekly.tz", f"unknown time zone {tz!r}: give an IANA name such as Europe/Berlin "
                           "or UTC") from None
    if not isinstance(between, str) or between.count("-") != 1:
        raise SilenceError("weekly.between", f"{between!r} is not HH:MM-HH:MM (22:00-23:00)")
    start, end = (_minutes(part) for part in between.split("-"))
    if start == end:
        raise SilenceError("weekly.between", f"{between!r} is an empty window: the start and end are the same")
    return Weekly(_weekdays(weekdays), start, end, tz.strip())


def _weekdays(value: Any) -> tuple[int, ...]:
    parts = value if isinstance(value, list) else value.split(",") if isinstance(value, str) and value.strip() \
        else None
    if not parts:
        raise SilenceError("weekly.weekdays", f"expected weekdays such as mon-fri or sat,sun, got {value!r}")
    days: set[int] = set()
    for part in parts:
        first, _, last = str(part).strip().lower().partition("-")
        a, b = _day(first), _day(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return tuple(sorted(days))


def _day(name: str) -> int:
    day = _DAY_NAMES.get(name)
    if day is None:
        raise SilenceError("weekly.weekdays", f"unknown weekday {name!r}: use {', '.join(WEEKDAYS)}")
    return day


def _minutes(text: str) -> int:
    found = _CLOCK.match(text.strip())
    if not found or (found.group(1) == "24" and found.group(2) != "00"):
        raise SilenceError("weekly.between", f"{text.strip()!r} is not a time of day HH:MM (00:00 to 24:00)")
    return int(found.group(1)) * 60 + int(found.group(2))


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _days(days: tuple[int, ...]) -> str:
    return ",".join(WEEKDAYS[d] for d in days)


def iso(at: float) -> str:
    """Epoch seconds as ISO 8601 in UTC, to the second: ``2026-12-03T22:00:00Z``."""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def weekly_from_json(data: Mapping[str, Any] | None) -> Weekly | None:
    """The stored form (``Weekly.to_json``) read back."""
    return None if not data else make_weekly(list(data["weekdays"]), data["between"], data["tz"])


def silence_from_stored(values: Mapping[str, Any]) -> Silence:
    """A silence read back from the state: compiled again, not validated again (it was when made)."""
    return Silence(values["id"], dict(values["match"]), values["created_by"], values["comment"],
                   float(values["starts_at"]), float(values["ends_at"]), float(values["created_at"]),
                   weekly_from_json(values.get("weekly")), compile_match(values["match"]))


REQUEST_KEYS = ("match", "comment", "starts_at", "ends_at", "for", "weekly")
WEEKLY_KEYS = ("weekdays", "between", "tz")


def silence_from_request(data: Any, created_by: str, now: float) -> Silence:
    """A new silence from what a person asked for, the CLI's options and the API's JSON body alike:
    ``match``, ``comment``, ``starts_at`` (ISO 8601, default now), one of ``ends_at`` (ISO 8601) and
    ``for`` (a duration from the start), and optionally ``weekly`` {weekdays, between, tz}. Raises
    SilenceError naming the field: an unknown key is an error, as a typo would mute the wrong thing."""
    if not isinstance(data, Mapping):
        raise SilenceError("body", "expected a JSON object with match, comment and ends_at or for")
    for key in data:
        if key not in REQUEST_KEYS:
            raise SilenceError(str(key), f"unknown field; the fields are {', '.join(REQUEST_KEYS)}")
    starts_at = now if data.get("starts_at") is None else parse_time(data["starts_at"], "starts_at")
    ends_at = _end(data, starts_at)
    return make_silence(data.get("match"), created_by=created_by, comment=data.get("comment"), starts_at=starts_at,
                        ends_at=ends_at, created_at=now, weekly=_weekly(data.get("weekly")))


def _end(data: Mapping[str, Any], starts_at: float) -> float:
    given = [key for key in ("ends_at", "for") if data.get(key) is not None]
    if len(given) != 1:
        raise SilenceError("ends_at", "say how long it lasts: an end (ends_at, --until: an ISO 8601 time) or a "
                           "duration (for, --for: 30m, 2h)" if not given else "give an end or a duration, not both")
    if given[0] == "ends_at":
        return parse_time(data["ends_at"], "ends_at")
    if not isinstance(data["for"], str):
        raise SilenceError("for", f"expected a duration such as 2h, got {type(data['for']).__name__}")
    return starts_at + parse_duration(data["for"])


def _weekly(raw: Any) -> Weekly | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SilenceError("weekly", "expected {weekdays, between, tz}")
    for key in raw:
        if key not in WEEKLY_KEYS:
            raise SilenceError(f"weekly.{key}", f"unknown field; the fields are {', '.join(WEEKLY_KEYS)}")
    if raw.get("between") is None:
        raise SilenceError("weekly.between", "give the hours of the window, HH:MM-HH:MM (22:00-23:00)")
    return make_weekly(raw.get("weekdays", "mon-sun"), raw["between"], raw.get("tz", "UTC"))
