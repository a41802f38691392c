"""engine/language/fastpath.py: `| default` over a field the event may lack is answered without the sandbox,
and exactly as the sandbox answers (tests/test_properties.py compares the two on generated forms)."""
from __future__ import annotations

from typing import Any

import pytest

from engine.language.templates import Compiled, Scope, compile_template


def sandboxed(compiled: Compiled, values: dict[str, Any]) -> str:
    return "".join(compiled._root(Scope(dict(values)).context()))


@pytest.mark.parametrize(("source", "event", "expected"), [
    ("{{ event.url | default('') }}", {}, ""),
    ("{{ event.url | default('') }}", {"url": "https://ci/1"}, "https://ci/1"),
    ("{{ event.url | default('none given') }}", {"url": None}, "None"),  # default keeps a null, as Jinja's does
    ("{{ event['url'] | d('-') }}", {}, "-"),
    ("{{ event.deploy.environment | default('unknown') }}", {"deploy": {}}, "unknown"),
    ("{{ event.deploy.environment | default('unknown') }}", {"deploy": {"environment": "prod"}}, "prod"),
    ("{{ event.note | default('empty', true) }}", {"note": ""}, "empty"),
    ("{{ event[3] | default('no 3') }}", {}, "no 3"),
])
def test_a_missing_field_under_default_needs_no_sandbox(source: str, event: dict[str, Any], expected: str) -> None:
    compiled = compile_template(source)
    scope = Scope({"event": event})
    assert compiled.render(scope) == expected
    assert scope._context is None  # the Jinja context is made only when the sandbox runs
    assert sandboxed(compiled, {"event": event}) == expected


@pytest.mark.parametrize(("source", "event"), [
    ("{{ event['items'] | default('x') }}", {}),  # a dict's method in Jinja when the key is missing
    ("{{ event.a.b | default('x') }}", {}),  # `event.a` is undefined: reading `.b` of it is an error
    ("{{ event.a.b | default('x') }}", {"a": "text"}),  # not a dict: Jinja's attribute rules decide
])
def test_what_only_the_sandbox_can_answer_is_left_to_it(source: str, event: dict[str, Any]) -> None:
    compiled = compile_template(source)
    assert compiled._fast is not None
    with pytest.raises(Exception):  # noqa: B017, PT011 - any failure sends the render to the sandbox
        compiled._fast({"event": event})
    scope = Scope({"event": event})
    try:
        answer: tuple[str, Any] = ("ok", compiled.render(scope))
    except Exception as exc:  # noqa: BLE001 - an error is an answer here
        answer = ("error", type(exc))
    try:
        alone: tuple[str, Any] = ("ok", sandboxed(compiled, {"event": event}))
    except Exception as exc:  # noqa: BLE001
        alone = ("error", type(exc))
    assert answer == alone
    assert scope._context is not None
