"""Templates: the sandbox, our filters, and compile-time checks."""
from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from engine.language.templates import (
    FILTERS,
    Scope,
    TemplateError,
    compile_expression,
    compile_template,
    decimals,
    make_context,
    slug,
)


def test_slug_keeps_letters_digits_dot_underscore_dash() -> None:
    assert slug("acme/backend-api") == "acme-backend-api"
    assert slug("v2.4.1_rc-1 x") == "v2.4.1_rc-1-x"


def test_decimals_rounds_to_fixed_places() -> None:
    assert decimals(5.799999) == "5.8" and decimals(3, 2) == "3.00"


@pytest.mark.parametrize("source", ["{{ ''.__class__ }}", "{{ event.__class__.__mro__ }}",
                                    "{{ cycler.__init__.__globals__ }}", "{{ [].append(1) }}",
                                    "{{ ''['__class__'] }}"])
def test_what_the_sandbox_always_refuses_is_refused_at_load(source: str) -> None:
    with pytest.raises(TemplateError, match="^refused by the sandbox: access to attribute '.+' .*unsafe"):
        compile_template(source)


def test_a_dict_item_named_like_an_attribute_is_not_refused_at_load() -> None:
    assert compile_template("{{ {'__class__': 1}['__class__'] }}").render(make_context({})) == "1"


@pytest.mark.parametrize("source, message", [
    ("{{ 'a' * 10**9 }}", "repeating a value 1000000000 times makes more than 1000000 items"),
    ("{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
     "range() of 99999 items; at most 1000"),
    ("{{ 'x' | center(10**9) }}", "center: width 1000000000 is more than 1000000"),
    ("{{ '%*d' % (10**9, 1) }}", "format widths of 1000000 or more (or taken from an argument) are not allowed"),
])
def test_a_bomb_made_of_constants_is_refused_at_load(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template(source)
    assert str(caught.value) == f"refused by the sandbox: {message}"


@pytest.mark.parametrize("source, message", [
    ("{{ event.n ** 100000000 }}", "349 ** 100000000 is too large (more than 4096 bits)"),
    ("{{ event.s * event.n * 10000 }}", "repeating a value 10000 times makes more than 1000000 items"),
    ("{% for i in range(event.n * 1000) %}x{% endfor %}", "range() of 349000 items; at most 1000"),
    ("{% for i in range(999) %}{% for j in range(999) %}{% endfor %}{% endfor %}",
     "the template does more than 10000 loop steps and calls"),
    ("{% for i in range(999) %}{{ event.s * 999 }}{% endfor %}",
     "the template's output is longer than 1000000 characters"),
    ("{{ event.s | replace('a', event.s * 999) }}", "replace() would make more than 1000000 characters"),
    ("{{ lipsum(1, false, 10, 10**9) }}", "lipsum(): max 1000000000 is more than 1000"),
])
def test_a_bomb_known_only_at_run_time_is_refused_quickly(source: str, message: str) -> None:
    compiled = compile_template(source)
    with pytest.raises(SecurityError) as caught:
        compiled.render(make_context({"event": {"n": 349, "s": "a" * 999}}))
    assert str(caught.value) == message


def test_limits_leave_ordinary_templates_alone() -> None:
    scope = make_context({"event": {"n": 3, "s": "ab"}})
    assert compile_template("{{ event.s * event.n }} {{ 10 ** 100 > 0 }} {{ range(1000) | length }}").render(
        scope) == "ababab True 1000"


def test_the_sandbox_is_immutable() -> None:
    with pytest.raises(SecurityError):
        compile_expression("event.tags.append(1)").evaluate(make_context({"event": {"tags": []}}))


def test_expressions_keep_their_type() -> None:
    assert compile_expression("event.a / event.b").evaluate(make_context({"event": {"a": 3, "b": 2}})) == 1.5


def test_an_unknown_filter_inside_a_branch_is_caught_at_compile_time() -> None:
    with pytest.raises(TemplateError, match="unknown filter 'slgu' \\(did you mean 'slug'"):
        compile_template("{% if false %}{{ x | slgu }}{% endif %}")


def test_trailing_tokens_after_an_expression_are_an_error() -> None:
    with pytest.raises(TemplateError, match="unexpected 'b' after the expression"):
        compile_expression("a b")


def test_every_filter_of_ours_is_registered() -> None:
    assert set(FILTERS) == {"slug", "decimals", "digest"}


def test_the_fast_path_itself_answers_plain_lookups() -> None:
    # Not only the same text as the sandbox: the fast reader must answer, not raise and fall back
    # (a reader that always raised halved dry-run throughput; bench/bench_process.py).
    event = {"repo": "acme/api", "deploy": {"version": "v1"}, "items": {"a": 1}}
    for source, text in [("{{ event.repo }}", "acme/api"), ("{{ event.deploy.version }}-{{ event.repo | slug }}",
                                                            "v1-acme-api")]:
        compiled = compile_template(source)
        assert compiled._fast is not None and str(compiled._fast({"event": event})) == text
    assert compile_expression("event.deploy.version")._fast({"event": event}) == "v1"  # type: ignore[misc]


def test_a_constant_that_folds_to_undefined_is_not_a_load_crash_but_fails_when_it_runs() -> None:
    """Found by the property test: Jinja folds ``'' | first`` while compiling, and its compiler then
    raised UndefinedError out of compile_template; the template now fails when it runs, like its
    ``{% if %}`` form."""
    folded = compile_template("{{ 'yes' if ('' | first) else 'no' }}")
    in_if = compile_template("{% if ('' | first) %}yes{% else %}no{% endif %}")
    for compiled in (folded, in_if):
        with pytest.raises(UndefinedError, match="No first item"):
            compiled.render(Scope({"event": {}, "params": {}}))
