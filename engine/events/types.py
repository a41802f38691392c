"""Event types: each a JSON Schema under schemas/events/, with how it unwraps or expands into events."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
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
    def quick(self) -> Callable[[Any], bool] | None:
        """A plain-Python check for the schema's common keywords (see `quick_check`), or None."""
        return quick_check(self.schema)

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
        quick = self.quick
        if quick is not None and quick(event):
            return True
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
        quick = self.quick
        if quick is not None and quick(event):
            return ()
        try:
            self.fast(event)
            return ()
        except fastjsonschema.JsonSchemaException as fast_error:
            errors = sorted(self.full.iter_errors(event), key=lambda e: list(map(str, e.absolute_path)))
            if not errors:  # the two validators disagree: trust the stricter one, say which
                return [f"{self.name}: {fast_error}"]
            return [_message(self.name, e) for e in errors]


_MISSING = object()
# Keywords that say nothing about validity, and the Python types each JSON Schema type stands for.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples", "default"})
_QUICK_TYPES = {"object": ("dict",), "string": ("str",), "integer": ("int",), "number": ("int", "float"),
                "boolean": ("bool",), "null": ("NoneType",), "array": ("list",)}


class _NotQuick(Exception):
    """A keyword or form the quick check does not translate: the schema gets none."""


def quick_check(schema: Mapping[str, Any]) -> Callable[[Any], bool] | None:
    """A generated function that answers True only for a value the schema accepts (False: ask the validator).

    fastjsonschema's code checks keys through sets and builds a message for each keyword; for the
    keywords event schemas use (type, properties, required, const, enum, minLength, minimum) this
    reads each field once. It is conservative, never lenient: a float where an integer is due, a dict
    subclass, a missing optional field's odd value all answer False, and the compiled validator then
    decides. Any other keyword gives no quick check at all. tests/test_events_types.py checks that
    whatever it accepts, fastjsonschema accepts too."""
    lines: list[str] = []
    try:
        _quick_lines(schema, "v0", "    ", lines, [0])
    except _NotQuick:
        return None
    namespace: dict[str, Any] = {"_M": _MISSING, "NoneType": type(None)}
    code = "def quick(v0):\n" + "\n".join(lines) + "\n    return True\n"
    exec(compile(code, "<pagerules quick schema check>", "exec"), namespace)
    return namespace["quick"]  # type: ignore[no-any-return]


def _quick_lines(schema: Any, var: str, indent: str, out: list[str], counter: list[int]) -> None:
    if not isinstance(schema, Mapping):
        raise _NotQuick("not an object schema")
    keys = {k for k in schema if k not in _ANNOTATIONS and not str(k).startswith("x-")}
    if keys - {"type", "properties", "required", "const", "enum", "minLength", "minimum", "additionalProperties"}:
        raise _NotQuick("keyword")
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds is not None:
        if not isinstance(kinds, list) or not kinds or any(k not in _QUICK_TYPES for k in kinds):
            raise _NotQuick("type")
        names = ", ".join(n for k in kinds for n in _QUICK_TYPES[k])
        out.append(f"{indent}if type({var}) not in ({names},): return False")
    if "const" in schema:
        const = schema["const"]
        if type(const) is str:
            out.append(f"{indent}if type({var}) is not str or {var} != {const!r}: return False")
        elif const is None or type(const) is bool:
            out.append(f"{indent}if {var} is not {const!r}: return False")
        else:
            raise _NotQuick("const")
    if "enum" in schema:
        options = schema["enum"]
        if not isinstance(options, list) or not options or any(type(o) is not str for o in options):
            raise _NotQuick("enum")
        out.append(f"{indent}if type({var}) is not str or {var} not in {tuple(options)!r}: return False")
    if "minLength" in schema:
        if kinds != ["string"] or type(schema["minLength"]) is not int:
            raise _NotQuick("minLength")
        out.append(f"{indent}if len({var}) < {schema['minLength']}: return False")
    if "minimum" in schema:
        least = schema["minimum"]
        if not kinds or any(k not in ("integer", "number") for k in kinds) or type(least) not in (int, float) \
                or least != least or least in (float("inf"), float("-inf")):
            raise _NotQuick("minimum")
        out.append(f"{indent}if {var} < {least!r}: return False")
    if schema.get("additionalProperties", True) is not True:
        raise _NotQuick("additionalProperties")
    properties, required = schema.get("properties", {}), schema.get("required", [])
    if not properties and not required:
        return
    if kinds != ["object"] or not isinstance(properties, Mapping) or not isinstance(required, list) \
            or any(type(r) is not str for r in required):
        raise _NotQuick("properties")
    for name in required:
        if name not in properties:
            out.append(f"{indent}if {name!r} not in {var}: return False")
    for name, sub in properties.items():
        counter[0] += 1
        child = f"v{counter[0]}"
        out.append(f"{indent}{child} = {var}.get({name!r}, _M)")
        if name in required:
            out.append(f"{indent}if {child} is _M: return False")
            _quick_lines(sub, child, indent, out, counter)
        else:
            inner: list[str] = []
            _quick_lines(sub, child, indent + "    ", inner, counter)
            if inner:
                out.append(f"{indent}if {child} is not _M:")
                out.extend(inner)


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
