"""Properties over random input: evaluation never crashes, and the fast path never disagrees with Jinja."""
from __future__ import annotations

import math
from typing import Any

from builders import dry_run, make_config, shipped_rules
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import Undefined

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
                   "upper", "format", "append", "title", "split", "real", "mro", "__class__", "_private", "repo", "a"]
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


# Every form a rule writes, generated from a small grammar over those names (issue 13 item 5): paths read by
# attribute and by item, `when`-style comparisons and logic, `~`, arithmetic, conditionals, list literals and
# the filters the fast path calls itself. Each template is compared three ways with the sandbox alone: as a
# title or key (`{{ e }}`), as an expression (`when`, vars), and as an `{% if %}` test.
FORM_NAMES = ATTRIBUTE_NAMES + ["__init__", "0"]
plain_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5) | st.text(max_size=4),
                            lambda inner: st.lists(inner, max_size=2)
                            | st.dictionaries(st.sampled_from(FORM_NAMES), inner, max_size=3), max_leaves=8)
form_events = st.dictionaries(st.sampled_from(FORM_NAMES), plain_values, max_size=6)
_accessor = st.sampled_from(FORM_NAMES).flatmap(lambda n: st.sampled_from([f".{n}", f"['{n}']"])) \
    | st.sampled_from([".0", "[1]"])
paths = st.tuples(st.sampled_from(["event", "params"]), st.lists(_accessor, min_size=1, max_size=3)) \
    .map(lambda t: t[0] + "".join(t[1]))
constants = st.sampled_from(["1", "2.5", "'x'", "''", "none", "true", "false", "[]"])
FILTER_FORMS = ["default('d')", "upper", "lower", "slug", "length", "string", "round(1)", "list", "abs", "int",
                "decimals(1)", "digest(4)", "first", "trim", "title"]


def _forms(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    two = st.tuples(inner, inner)
    return st.one_of(
        st.tuples(inner, st.sampled_from(["==", "!=", "<", ">=", "in", "not in"]), inner).map(" ".join),
        two.map(lambda t: f"{t[0]} and {t[1]}"), two.map(lambda t: f"{t[0]} or {t[1]}"),
        inner.map(lambda e: f"not {e}"), two.map(lambda t: f"{t[0]} ~ {t[1]}"),
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//"]), inner).map(" ".join),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} if {t[1]} else {t[2]}"),
        two.map(lambda t: f"[{t[0]}, {t[1]}]"), inner.map(lambda e: f"-{e}"),
        st.tuples(inner, st.sampled_from(FILTER_FORMS)).map(lambda t: f"{t[0]} | {t[1]}"),
    ).map(lambda e: f"({e})")


expressions = st.recursive(paths | constants, _forms, max_leaves=4)


def _outcome(run: Any) -> tuple[str, Any]:
    try:
        value = run()
    except Exception as exc:  # noqa: BLE001 - any error is an answer here
        return "error", (type(exc), str(exc))
    return "ok", _comparable(value)


def _comparable(value: Any) -> Any:
    """``value`` with what `==` cannot compare made comparable: Jinja's undefined (an expression's value may be
    one: `event.items.items`, `[1, event.0]`), and NaN."""
    if isinstance(value, Undefined):
        return "undefined", value._undefined_message
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, (list, tuple)):
        return type(value), [_comparable(v) for v in value]
    return type(value), value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form_events, st.dictionaries(st.sampled_from(FORM_NAMES), plain_values, max_size=3), expressions)
def test_the_fast_path_agrees_with_the_sandbox_on_every_generated_form(event: dict[str, Any],
                                                                      params: dict[str, Any], source: str) -> None:
    try:
        title = compile_template("{{ " + source + " }}")
        expression = compile_expression(source)
    except TemplateError:
        return  # refused at load, as the sandbox would refuse it on every run: nothing runs
    in_if = compile_template("{% if " + source + " %}yes{% else %}no{% endif %}")  # no fast reader for an `if`
    as_test = compile_template("{{ 'yes' if " + source + " else 'no' }}")
    assert in_if._fast is None
    values = {"event": event, "params": params}
    scope = lambda: Scope(dict(values))  # noqa: E731 - a fresh scope per run, as each rule and event gets
    assert _outcome(lambda: title.render(scope())) == _outcome(
        lambda: "".join(title._root(scope().context()))), source
    assert _outcome(lambda: expression.evaluate(scope())) == _outcome(
        lambda: _jinja_value(expression, values)), source
    assert _outcome(lambda: as_test.render(scope())) == _outcome(lambda: in_if.render(scope())), source


def _jinja_value(compiled: Compiled, values: dict[str, Any]) -> Any:
    context = Scope(dict(values)).context()
    for _ in compiled._root(context):
        pass
    return context.vars["_pagerules_result"]
