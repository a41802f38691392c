"""engine/events/types.py: the quick schema check never accepts what the compiled validator refuses."""
from __future__ import annotations

from typing import Any

import fastjsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events.types import EventType, load_event_types, quick_check

TYPES = load_event_types()
QUICK = {name: t for name, t in TYPES.items() if t.quick is not None}

scalars = (st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-3, 3) | st.just(float("nan"))
           | st.text(max_size=3))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=2)
                           | st.dictionaries(st.text(max_size=2), inner, max_size=2), max_leaves=4)


def near(schema: Any) -> st.SearchStrategy[Any]:
    """Values the schema accepts, mostly, and nearly: a field of another type, off by one, a float where an
    integer is due (the validator takes 10.0, the quick check leaves it to the validator), a field missing."""
    options: list[st.SearchStrategy[Any]] = []
    if "const" in schema:
        options.append(st.just(schema["const"]))
    elif "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    else:
        kinds = schema.get("type", [])
        for kind in [kinds] if isinstance(kinds, str) else kinds:
            least = schema.get("minimum", -2)
            if kind == "string":
                options.append(st.text(min_size=max(0, schema.get("minLength", 0) - 1), max_size=3))
            elif kind == "integer":
                options += [st.integers(least - 1, 12), st.sampled_from([10.0, 0.0, 1.5])]
            elif kind == "number":
                options += [st.integers(least - 1, 12), st.floats(least - 1, 12)]
            elif kind == "boolean":
                options.append(st.booleans())
            elif kind == "null":
                options.append(st.none())
            elif kind == "object":
                fields = {name: st.one_of(near(sub), near(sub), near(sub), json_values)
                          for name, sub in schema.get("properties", {}).items()}
                required = set(schema.get("required", []))
                options.append(st.fixed_dictionaries(
                    {n: f for n, f in fields.items() if n in required},
                    optional={n: f for n, f in fields.items() if n not in required}).flatmap(
                    lambda d: st.dictionaries(st.text(max_size=2), json_values, max_size=1).map(
                        lambda extra: {**extra, **d})))
    return st.one_of(options) if options else json_values


def accepted(event_type: EventType, value: Any) -> bool:
    try:
        event_type.fast(value)
        return True
    except fastjsonschema.JsonSchemaException:
        return False


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(QUICK)).flatmap(lambda name: st.tuples(st.just(name), near(QUICK[name].schema))))
def test_what_the_quick_check_accepts_the_validator_accepts(case: tuple[str, Any]) -> None:
    name, value = case
    event_type = QUICK[name]
    assert event_type.quick is not None
    if event_type.quick(value):
        assert accepted(event_type, value), (name, value)
    assert event_type.is_valid(value) is accepted(event_type, value), (name, value)
    assert (event_type.problems(value) == ()) is accepted(event_type, value), (name, value)


def test_the_usual_events_pass_the_quick_check_alone() -> None:
    build = {"type": "build", "id": "b1", "repo": "acme/api", "branch": "main", "build_number": 1042,
             "status": "failed", "url": "https://ci.example.com/b/1"}
    deploy = {"type": "deploy.health", "id": "d1", "repo": "acme/api",
              "deploy": {"version": "v1.2.0", "environment": "production"}, "error_rate": 0.06,
              "baseline_error_rate": 0.01, "sustained_minutes": 0, "checks": {"passed": 10, "total": 10}}
    for event in (build, deploy):
        quick = TYPES[event["type"]].quick
        assert quick is not None and quick(event)
        assert not quick({**event, "repo": ""})  # minLength
        assert not quick({k: v for k, v in event.items() if k != "repo"})  # required
    quick = TYPES["build"].quick
    assert quick is not None and not quick({**build, "status": "running"})  # enum


def test_a_keyword_it_does_not_translate_gives_no_quick_check() -> None:
    for schema in ({"type": "object", "additionalProperties": False},
                   {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}},
                   {"type": "array", "items": {"type": "string"}},
                   {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}},
                   {"properties": {"a": {"type": "string"}}}):  # properties with no type: object
        assert quick_check(schema) is None, schema
    assert quick_check({"type": "object", "title": "annotations only", "x-pagerules-unwrap": "payload"}) is not None


def test_a_rejected_event_still_gets_every_reason() -> None:
    problems = TYPES["deploy.health"].problems({"type": "deploy.health", "repo": "", "deploy": {},
                                                "error_rate": -1, "baseline_error_rate": 0.01,
                                                "sustained_minutes": 0, "checks": {"passed": 1, "total": 1}})
    assert any("repo" in p for p in problems) and any("version" in p for p in problems), problems
    assert any("error_rate" in p for p in problems), problems
