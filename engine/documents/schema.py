"""JSON Schema errors as messages a person can act on, each at its YAML line."""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import fastjsonschema

from engine import resources
from engine.documents.source import Document
from engine.errors import Problem
from engine.names import dotted, unknown_name

SCHEMA_DIR = resources.SCHEMAS

# Names a part of a document for a message, e.g. ("triggers", 2) -> ("build-failed", ["match"]).
RuleNamer = Callable[[tuple[Any, ...]], tuple[str | None, tuple[Any, ...]]]


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema from ``schemas/`` by file name."""
    with open(SCHEMA_DIR / name, encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


def describe(error: Any) -> tuple[tuple[Any, ...], str]:
    """(path to point at, message) for one jsonschema error."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        if extra:
            key = extra[0]
            return path + (key,), unknown_name("key", key, allowed)
    if error.validator == "enum":
        return path, f"{error.instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
    if error.validator == "type":
        wanted = error.validator_value
        wanted = wanted if isinstance(wanted, list) else [wanted]
        return path, f"expected {' or '.join(map(_article, wanted))}, got {_short(error.instance)}"
    return path, error.message


@cache
def _fast(schema_id: str) -> Callable[[Any], Any]:
    # Without "$id": fastjsonschema would take it as a base URL and try to fetch the (local) $refs.
    return fastjsonschema.compile({k: v for k, v in load_schema(schema_id).items() if k != "$id"})


def check_document(doc: Document, schema: dict[str, Any], namer: RuleNamer) -> list[Problem]:
    """Every schema error of ``doc`` as a Problem with file, line and rule.

    A compiled check runs first; jsonschema (slower to import and run, but it lists every error
    with its path) only when that check fails, so a valid file costs little at start-up.
    """
    name = str(schema.get("$id", "")).rsplit("/", 1)[-1]
    if (SCHEMA_DIR / name).exists() and load_schema(name) is schema:
        try:
            _fast(name)(doc.data)
            return []
        except fastjsonschema.JsonSchemaException:
            pass
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
        path, message = describe(error)
        rule, inner = namer(path)
        prefix = f"{dotted(inner)}: " if inner else ""
        problems.append(Problem(doc.filename, doc.line(path), prefix + message, rule, path=path))
    return problems


def _article(type_name: str) -> str:
    return {"object": "a mapping", "array": "a list", "integer": "an integer",
            "string": "a string", "number": "a number", "boolean": "true or false"}.get(type_name, type_name)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
