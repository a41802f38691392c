"""Templates: the sandbox, our filters, and compile-time checks."""
from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError

from engine.templates import (FILTERS, TemplateError, compile_expression, compile_template, decimals,
                              make_context, slug)


def test_slug_keeps_letters_digits_dot_underscore_dash() -> None:
    assert slug("acme/backend-api") == "acme-backend-api"
    assert slug("v2.4.1_rc-1 x") == "v2.4.1_rc-1-x"


def test_decimals_rounds_to_fixed_places() -> None:
    assert decimals(5.799999) == "5.8" and decimals(3, 2) == "3.00"


@pytest.mark.parametrize("source", ["{{ ''.__class__ }}", "{{ event.__class__.__mro__ }}",
                                    "{{ cycler.__init__.__globals__ }}"])
def test_the_sandbox_refuses_attribute_access(source: str) -> None:
    with pytest.raises(SecurityError):
        compile_template(source).render(make_context({"event": {}}))


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
