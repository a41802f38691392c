"""Events: reading them from a stream and checking each against its type's schema.

Input is one JSON object, a JSON array of objects, JSON lines, or a run of
pretty-printed objects, read line by line so a million-line input is never
held in memory. A malformed document is an error naming its line; reading goes
on with the next one.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import fastjsonschema

from engine.schemacheck import SCHEMA_DIR, dotted


@dataclass(slots=True)
class Parsed:
    """One item read from input: an event, or why there is none.

    Slotted, with ``where`` (e.g. ``stdin line 4``) built only when asked: one is
    made per input line.
    """

    source: str
    line: int
    event: dict[str, Any] | None = None
    error: str | None = None
    item: int | None = None
    lines: int = 1

    @property
    def where(self) -> str:
        span = f"lines {self.line}-{self.line + self.lines - 1}" if self.lines > 1 else f"line {self.line}"
        return f"{self.source} {span}" + ("" if self.item is None else f" item {self.item}")


@dataclass(frozen=True)
class EventType:
    """A type's schema, with a compiled validator for the hot path and jsonschema for the message."""

    name: str
    schema: Mapping[str, Any]
    # A field some senders wrap the payload in (``x-pagerules-unwrap``, e.g. Probot's ``payload``).
    unwrap: str | None = None
    # ``x-pagerules-expand``: {items, as, type}: one event per element of ``items``.
    expand: Mapping[str, str] | None = None

    @cached_property
    def fast(self) -> Any:
        """The compiled check (fastjsonschema), made when the type is first seen."""
        return fastjsonschema.compile(dict(self.schema))

    @cached_property
    def full(self) -> Any:
        """jsonschema's validator: every error with its path. Made when first needed (a rejection)."""
        import jsonschema

        return jsonschema.Draft202012Validator(self.schema)

    def is_valid(self, event: Mapping[str, Any]) -> bool:
        try:
            self.fast(event)
            return True
        except fastjsonschema.JsonSchemaException:
            return False

    @property
    def plain(self) -> bool:
        """Neither unwrapped nor expanded: the input object is the event."""
        return self.unwrap is None and self.expand is None

    def problems(self, event: Mapping[str, Any]) -> tuple[str, ...] | list[str]:
        """Why ``event`` fails the schema; empty when it passes."""
        try:
            self.fast(event)
            return ()
        except fastjsonschema.JsonSchemaException as fast_error:
            errors = sorted(self.full.iter_errors(event), key=lambda e: list(map(str, e.absolute_path)))
            if not errors:  # the two validators disagree: trust the stricter one, say which
                return [f"{self.name}: {fast_error}"]
            return [_message(self.name, e) for e in errors]


def _message(type_name: str, error: Any) -> str:
    path = dotted(error.absolute_path)
    return f"{type_name}: {path}: {error.message}" if path else f"{type_name}: {error.message}"


@cache
def load_event_types(folders: tuple[str, ...] = (str(SCHEMA_DIR / "events"),)) -> dict[str, EventType]:
    """Every ``schemas/events/<type>.json``: the type name is the file name."""
    types: dict[str, EventType] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")):
            name = path.name[: -len(".json")]
            schema = json.loads(path.read_text(encoding="utf-8"))
            types[name] = EventType(name, schema, schema.get("x-pagerules-unwrap"), schema.get("x-pagerules-expand"))
    return types


def prepare(event: dict[str, Any], types: Mapping[str, EventType]) -> Iterator[dict[str, Any]]:
    """The events one input object stands for: itself; its unwrapped payload; or, for a type that
    expands (an Alertmanager payload), one event per item, each with the outer fields beside it.
    An input that fails its schema is passed on as it is, to be rejected with the reason."""
    kind = event.get("type")
    event_type = types.get(kind) if isinstance(kind, str) else None
    if event_type is None:
        yield event
        return
    wrapped = event.get(event_type.unwrap) if event_type.unwrap else None
    if isinstance(wrapped, dict) and not event_type.is_valid(event):
        event = {**wrapped, "type": kind, **({"id": event["id"]} if "id" in event else {})}
    spec = event_type.expand
    if spec is None or event_type.problems(event):
        yield event
        return
    outer = {k: v for k, v in event.items() if k not in (spec["items"], "type", "id")}
    parent = event_id(event)
    for index, item in enumerate(event[spec["items"]]):
        yield {**outer, "type": spec["type"], "id": f"{parent}#{index}", spec["as"]: item}


def events_of(event: dict[str, Any], types: Mapping[str, EventType], default_type: str | None = None
              ) -> Iterable[dict[str, Any]]:
    """The events one input object stands for, after giving an untyped one ``default_type``
    (``--type``, a file name's NAME.TYPE.json). Plain types skip ``prepare``: this runs per event."""
    if default_type and "type" not in event:
        event["type"] = default_type
    kind = event.get("type")
    event_type = types.get(kind) if type(kind) is str else None
    return (event,) if event_type is None or event_type.plain else prepare(event, types)


def event_id(event: Mapping[str, Any]) -> Any:
    """The event's own ``id``, else a stable one derived from its content."""
    given = event.get("id")
    if given is not None and given != "":
        return given
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def read_events(lines: Iterable[str], source: str) -> Iterator[Parsed]:
    """Events from lines of text; see the module docstring for what is accepted."""
    buffer: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        if buffer:
            if _starts_complete_document(line):
                yield _broken(buffer, start, source)
                buffer = []
            else:
                buffer.append(line)
                if line[:1] in "}]":  # a document that opened at column 0 closes at column 0
                    done = _try_document(buffer, start, source)
                    if done is not None:
                        yield from done
                        buffer = []
                continue
        try:
            value = _decode(line)
        except ValueError as exc:
            if not line.strip():
                continue
            if _incomplete(exc, line):
                buffer, start = [line], number
            else:
                yield Parsed(source, number, error=f"{source} line {number}: not valid JSON: "
                             f"{exc.msg} (column {exc.colno})")  # type: ignore[attr-defined]
            continue
        if type(value) is dict:  # the common case, without a nested generator
            yield Parsed(source, number, value)
        else:
            yield from _items(value, source, number)
    if buffer:
        done = _try_document(buffer, start, source)
        yield from done if done is not None else [_broken(buffer, start, source)]


_decode = json.JSONDecoder().decode


def _starts_complete_document(line: str) -> bool:
    if not (line.startswith("{") and line.rstrip().endswith("}")):
        return False
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def _try_document(buffer: list[str], start: int, source: str) -> list[Parsed] | None:
    text = "".join(buffer)
    try:
        value = json.loads(text)
    except ValueError as exc:
        if _incomplete(exc, text):
            return None
        return [_broken(buffer, start, source, exc)]
    return list(_items(value, source, start))


def _broken(buffer: list[str], start: int, source: str, exc: ValueError | None = None) -> Parsed:
    end = start + len(buffer) - 1
    if exc is None:
        reason = "incomplete JSON: the document never closes"
    else:
        reason = f"{exc.msg} at line {start + exc.lineno - 1} column {exc.colno}"  # type: ignore[attr-defined]
    parsed = Parsed(source, start, lines=end - start + 1)
    parsed.error = f"{parsed.where}: not valid JSON: {reason}"
    return parsed


def _incomplete(exc: ValueError, text: str) -> bool:
    return getattr(exc, "pos", -1) >= len(text.rstrip())


def _items(value: Any, source: str, line: int) -> Iterator[Parsed]:
    if type(value) is dict:
        yield Parsed(source, line, value)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            parsed = Parsed(source, line, item=index)
            if isinstance(item, dict):
                parsed.event = item
            else:
                parsed.error = f"{parsed.where}: expected a JSON object, got {json.dumps(item)[:60]}"
            yield parsed
    else:
        yield Parsed(source, line, error=f"{source} line {line}: expected a JSON object, got {json.dumps(value)[:60]}")
