"""Request bodies checked against PagerDuty's official OpenAPI file (tests/fixtures/pagerduty-api/REST/openapiv3.json).

The spec's schemas are OpenAPI 3.0 (draft-4 style) and refer to each other with
"#/components/..." references; the whole file is registered as one resource so
jsonschema resolves them. readOnly is not enforced (the spec marks reference
ids readOnly, tests/fixtures/pagerduty-api/REFERENCE.md §9 item 2). The one conflict the reference documents,
a string `incident.body.details` (§2, §9 item 4), is the only error allowed.
"""
from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_PATH = Path(__file__).resolve().parent / "fixtures" / "pagerduty-api" / "REST" / "openapiv3.json"
BASE = "urn:pagerduty-rest"
# PagerDuty's docs: incident creation only supports string bodies; the spec says object.
DOCUMENTED_CONFLICT = (("incident", "body", "details"), "type")


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@cache
def _validator(pointer: str) -> jsonschema.Draft4Validator:
    registry = Registry().with_resource(BASE, Resource.from_contents(spec(), default_specification=DRAFT4))
    return jsonschema.Draft4Validator({"$ref": f"{BASE}#{pointer}"}, registry=registry)


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The spec path template and operation for a concrete request path, e.g. /incidents/P1/notes."""
    for template, item in spec()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not in PagerDuty's REST spec")


def body_errors(method: str, path: str, body: Any) -> list[str]:
    """Schema errors of a request body, less the documented details conflict."""
    template, _ = operation(method, path)
    escaped = template.replace("~", "~0").replace("/", "~1")
    pointer = f"/paths/{escaped}/{method.lower()}/requestBody/content/application~1json/schema"
    errors = []
    for error in _validator(pointer).iter_errors(body):
        if (tuple(error.absolute_path), error.validator) == DOCUMENTED_CONFLICT and isinstance(error.instance, str):
            continue
        errors.append(f"{method} {path}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
    return errors


def required_headers(method: str, path: str) -> set[str]:
    """Header parameters the spec marks required (Accept, Content-Type, From on writes)."""
    _, op = operation(method, path)
    names = set()
    for param in op.get("parameters", []):
        if "$ref" in param:
            param = _resolve(param["$ref"])
        if param.get("in") == "header" and param.get("required"):
            names.add(param["name"].lower())
    return names


def _resolve(ref: str) -> dict[str, Any]:
    node: Any = spec()
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node  # type: ignore[no-any-return]
