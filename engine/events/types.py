"""Event types: each a JSON Schema under schemas/events/, with how it unwraps or expands into events."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import fastjsonschema

from engine.documents.schema import SCHEMA_DIR
from engine.names import dotted


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
    return "sha-" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16]
