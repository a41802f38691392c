"""Properties over random input: evaluation never crashes, and the fast path never disagrees with Jinja."""
from __future__ import annotations

import math
from typing import Any

from conftest import dry_run, make_config, shipped_rules
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.dispatch.dispatcher import MemoryView
from engine.evaluation.evaluate import evaluate
from engine.language.templates import Compiled, Scope, TemplateError, compile_expression, compile_template

CONFIG = make_config()
RULES = shipped_rules(CONFIG)  # loaded once: loading it per example was 0.13 s of each example's 0.2 s
TYPES = sorted(RULES.event_types)

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FIELDS = ["id", "repo", "deploy", "error_rate", "baseline_error_rate", "sustained_minutes", "checks", "level",
          "new_count", "issue_id", "post_deploy", "branch", "build_number", "status", "url", "rolled_back_to",
          "health_passed", "incident_id", "severity", "summary"]


@st.composite
def events(draw: Any) -> dict[str, Any]:
    """Events that are often almost right: a known type, known field names, any values."""
    event = draw(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=10))
    choice = draw(st.integers(0, 3))
    if choice:
        event["type"] = draw(st.sampled_from(TYPES)) if choice < 3 else draw(json_values)
    if draw(st.booleans()):
        event["deploy"] = {"version": draw(st.text(max_size=5) | st.integers())}
        event["checks"] = {"passed": draw(st.integers(0, 12)), "total": draw(st.integers(0, 12))}
    return event


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), max_size=5))
def test_random_events_never_crash_evaluation(batch: list[dict[str, Any]]) -> None:
    view = MemoryView()
    for event in batch:
        for action in evaluate(event, RULES, view):
            assert action.kind in ("trigger", "resolve", "error")
    lines = dry_run(batch, RULES, CONFIG)  # a fresh dispatcher and dry-run state per batch, as `process` has
    assert all(line["action"] in ("trigger", "resolve", "error") and line["status"] for line in lines)


def _jinja(compiled: Compiled, values: dict[str, Any]) -> tuple[str, Any]:
    """The sandboxed answer: ("ok", value) or ("error", exception type)."""
    context = Scope(dict(values)).context()
    try:
        if compiled.kind == "template":
            return "ok", "".join(compiled._root(context))
        for _ in compiled._root(context):
            pass
        return "ok", context.vars["_pagerules_result"]
    except Exception as exc:  # noqa: BLE001 - any error is an answer here
        return "error", type(exc)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


ALL_COMPILED = [c for rule in RULES.all_rules()
                for c in ([v for _, v in rule.vars] + ([rule.when] if rule.when else [])
                          + [getattr(rule, f) for f in ("title", "incident_key", "message") if getattr(rule, f, None)]
                          + [t for _, t in getattr(rule, "labels", ())] + [t for _, t in getattr(rule, "details", ())])]
EXTRA = [compile_expression(e) for e in ("event.a + event.b", "event.a ~ event.b", "-event.a", "[event.a, 1]",
                                         "event.a if event.b else 3", "event.a // event.b", "(event.a, )",
                                         "event.a in event.b", "event.a < event.b < 10", "not event.a or event.b")]
EXTRA += [compile_template(t) for t in ("{{ event.a | round(2) }}", "{{ event.a | default('x') }}",
                                        "{{ event['a'] | slug }}-{{ event.b | decimals(1) }}", "{{ event.a.b }}")]


def test_every_shipped_template_has_a_fast_reader() -> None:
    assert all(c._fast is not None for c in ALL_COMPILED + EXTRA)


@settings(max_examples=300, deadline=None)
@given(events(), st.dictionaries(st.sampled_from(["a", "b"]), json_values, max_size=2))
def test_the_fast_path_answers_only_what_jinja_answers(event: dict[str, Any], ab: dict[str, Any]) -> None:
    event = {**event, **ab}
    values = {"event": event, "params": dict(RULES.params), "ratio": event.get("a")}
    for compiled in ALL_COMPILED + EXTRA:
        assert compiled._fast is not None
        try:
            fast = compiled._fast(values)
        except Exception:  # noqa: BLE001 - the caller then asks Jinja; nothing to compare
            continue
        outcome, value = _jinja(compiled, values)
        assert outcome == "ok", (compiled.source, event, value)
        assert _same(fast if compiled.kind == "expression" else str(fast), value), (compiled.source, event)


# Field names that are also attributes of a dict, list or text in Jinja (issue 13): `event.items` is the dict's
# method in the sandbox, never the `items` field, and the fast path must say the same.
ATTRIBUTE_NAMES = ["items", "keys", "values", "get", "pop", "update", "copy", "setdefault", "count", "index",
                   "upper", "format", "append", "title", "split", "real", "__class__", "_private", "repo", "a"]
attribute_events = st.dictionaries(st.sampled_from(ATTRIBUTE_NAMES), json_values | st.dictionaries(
    st.sampled_from(ATTRIBUTE_NAMES), json_values, max_size=4), max_size=6)
ACCESSES = ["{{ event.%s }}", "{{ event['%s'] }}", "{{ event.a.%s }}", "{{ event.%s.a }}",
            "{{ event.%s | default('d') }}",
            "{{ event.%s ~ '' }}", "{{ event.%s.%s }}"]


def _rendered(compiled: Compiled, values: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", compiled.render(Scope(dict(values)))
    except Exception as exc:  # noqa: BLE001 - any error is an answer here
        return "error", (type(exc), str(exc))


@settings(max_examples=300, deadline=None)
@given(attribute_events, st.sampled_from(ATTRIBUTE_NAMES), st.sampled_from(ATTRIBUTE_NAMES),
       st.sampled_from(ACCESSES))
def test_the_fast_path_reads_attribute_names_as_jinja_does(event: dict[str, Any], name: str, other: str,
                                                           access: str) -> None:
    source = access % ((name, other) if access.count("%s") == 2 else name)
    try:
        compiled = compile_template(source)
    except TemplateError:
        return  # refused at load (`event.__class__`): nothing runs
    jinja_only = compile_template("{% if true %}" + source + "{% endif %}")  # no fast reader for an `if`
    assert jinja_only._fast is None
    values = {"event": event}
    assert _rendered(compiled, values) == _rendered(jinja_only, values), (source, event)
    expression = compile_expression(source[3:-3])
    fast = expression._fast
    if fast is not None:
        try:
            answer = fast(values)
        except Exception:  # noqa: BLE001 - Jinja answers instead
            return
        assert _jinja(expression, values) == ("ok", answer), (source, event)
