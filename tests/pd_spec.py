"""Request bodies checked against PagerDuty's official OpenAPI files (tests/fixtures/pagerduty-api/REST/openapiv3.json,
and events-v2/openapiv3.json for the Events API v2).

The spec's schemas are OpenAPI 3.0 (draft-4 style) and refer to each other with
"#/components/..." references; the whole file is registered as one resource so
jsonschema resolves them. readOnly is not enforced (the spec marks reference
ids readOnly, tests/fixtures/pagerduty-api/REFERENCE.md §9 item 2). The one conflict the reference documents,
a string `incident.body.details` (§2, §9 item 4), is the only error allowed.

Events API v2 bodies are checked against the events-v2 file, then against the rules
PagerDuty's docs add and the file leaves out (REFERENCE.md §9 item 6, §10, §11):
a trigger needs a payload, acknowledge/resolve need a dedup_key, summary <= 1024
characters, dedup_key <= 255, the body <= 512 KB; `format: date-time` (item 5) is checked too.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_PATH = Path(__file__).resolve().parent / "fixtures" / "pagerduty-api" / "REST" / "openapiv3.json"
EVENTS_SPEC_PATH = SPEC_PATH.parent.parent / "events-v2" / "openapiv3.json"
BASE = "urn:pagerduty-rest"
EVENTS_BASE = "urn:pagerduty-events-v2"
EVENTS_PREFIX = "/v2"  # the spec's server URL ends in /v2 (REFERENCE.md §9 item 7)
SUMMARY_LIMIT, DEDUP_KEY_LIMIT, BODY_LIMIT = 1024, 255, 512 * 1024  # REFERENCE.md §11
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


# ---- Events API v2 ------------------------------------------------------------

@lru_cache(maxsize=1)
def events_spec() -> dict[str, Any]:
    return json.loads(EVENTS_SPEC_PATH.read_text())  # type: ignore[no-any-return]


@cache
def _events_validator(pointer: str) -> jsonschema.Draft4Validator:
    registry = Registry().with_resource(EVENTS_BASE, Resource.from_contents(events_spec(),
                                                                            default_specification=DRAFT4))
    return jsonschema.Draft4Validator({"$ref": f"{EVENTS_BASE}#{pointer}"}, registry=registry,
                                      format_checker=_DATE_TIME)


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE_TIME = jsonschema.FormatChecker(formats=())


@_DATE_TIME.checks("date-time")
def _is_date_time(value: object) -> bool:
    """RFC 3339, as PagerDuty's validator reads the spec (``+0000`` fails, REFERENCE.md §9 item 5)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def events_body_errors(path: str, body: Any) -> list[str]:
    """Errors of an Events API v2 body sent to ``path`` (/v2/enqueue or /v2/change/enqueue):
    the spec's schema, then the documented rules the spec leaves out. Empty when PagerDuty would take it."""
    template = path.removeprefix(EVENTS_PREFIX)
    if template not in events_spec()["paths"]:
        raise AssertionError(f"POST {path} is not in PagerDuty's Events API v2 spec")
    escaped = template.replace("~", "~0").replace("/", "~1")
    pointer = f"/paths/{escaped}/post/requestBody/content/application~1json/schema"
    errors = [f"{'/'.join(map(str, e.absolute_path)) or 'body'}: {e.message}"
              for e in _events_validator(pointer).iter_errors(body)]
    if errors or not isinstance(body, dict):
        return errors
    return _documented_limits(template, body)


def _documented_limits(template: str, body: dict[str, Any]) -> list[str]:
    errors = []
    action = body.get("event_action")
    if template == "/enqueue" and action == "trigger" and "payload" not in body:
        errors.append("'payload' is required for a trigger event")
    if template == "/enqueue" and action in ("acknowledge", "resolve") and not body.get("dedup_key"):
        errors.append(f"'dedup_key' is required for a {action} event")
    summary = (body.get("payload") or {}).get("summary")
    if isinstance(summary, str) and len(summary) > SUMMARY_LIMIT:
        errors.append(f"'summary' is too long (maximum is {SUMMARY_LIMIT} characters)")
    if len(str(body.get("dedup_key") or "")) > DEDUP_KEY_LIMIT:
        errors.append(f"'dedup_key' is too long (maximum is {DEDUP_KEY_LIMIT} characters)")
    if len(json.dumps(body).encode()) > BODY_LIMIT:
        errors.append(f"the event is larger than {BODY_LIMIT} bytes")
    return errors
