"""The Jinja2 sandbox rules run in: its limits on size and work, and the filters pagerules adds.

Jinja2's immutable sandbox refuses unsafe attributes; on top of it every render
has a budget (MAX_WORK loop steps and calls) and no operator, filter or global
may build a value larger than MAX_TEXT, so no template can hang `process` or eat
the memory (issue 11 item 7). engine/language/templates.py compiles templates in it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from jinja2 import StrictUndefined, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def slug(value: Any) -> str:
    """``acme/backend-api`` -> ``acme-backend-api``: anything but letters, digits, ``.``, ``_``, ``-`` becomes ``-``."""
    return _SLUG_UNSAFE.sub("-", str(value))


def decimals(value: Any, places: int = 1) -> str:
    """``5.7999`` -> ``5.8``: a number with a fixed count of decimals."""
    return f"{float(value):.{int(places)}f}"


def digest(value: Any, length: int = 12) -> str:
    """A stable short hash of any JSON value (keys sorted): a key for things with no id of their own."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[: int(length)]


# The filters pagerules adds to Jinja2's built-in ones (upper, lower, round, default, join, ...).
FILTERS: dict[str, Callable[..., Any]] = {"slug": slug, "decimals": decimals, "digest": digest}

# Limits on what one render may build, so no template can hang `process` or eat the memory (issue 11 item 7).
# Far above what a title, key or details value needs; far below a bomb's gigabytes.
MAX_TEXT = 1_000_000  # characters in one value built by an operator or filter, and in a template's output
MAX_INT_BITS = 4096  # bits in the result of `**` (10 ** 1000 fits; 10 ** 100000000 does not)
MAX_RANGE = 1000  # items in one range()
MAX_WORK = 10_000  # range() items plus calls, per render: bounds nested loops
_WIDE = re.compile(r"\d{7,}|%[-#0 +]*\*|\{[^}]*:[^}]*\{")  # a format width >= MAX_TEXT, or one taken from an argument
_budget = threading.local()


def refuse(message: str) -> None:
    raise SecurityError(message)


def reset_budget() -> None:
    """A fresh budget of MAX_WORK steps, at the start of each render."""
    _budget.left = MAX_WORK


def _spend(units: int) -> None:
    left = getattr(_budget, "left", MAX_WORK) - units
    if left < 0:
        refuse(f"the template does more than {MAX_WORK} loop steps and calls")
    _budget.left = left


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def checked_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would exceed the limits, before it is computed."""
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 \
            and abs(left) > 1 and max(left.bit_length(), 1) * right > MAX_INT_BITS:
        refuse(f"{left} ** {right} is too large (more than {MAX_INT_BITS} bits)")
    elif operator == "*" and (_size(left) or _size(right)):
        count = right if _size(left) else left
        if isinstance(count, int) and count * (_size(left) or _size(right)) > MAX_TEXT:
            refuse(f"repeating a value {count} times makes more than {MAX_TEXT} items")
    elif operator == "%" and isinstance(left, str):
        _check_format(left)


def _check_format(text: str) -> None:
    if _WIDE.search(text):
        refuse(f"format widths of {MAX_TEXT} or more (or taken from an argument) are not allowed")


def multiply(left: Any, right: Any) -> Any:
    checked_binop("*", left, right)
    return left * right


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with limits on sizes and work (Jinja's docs: intercepted_binops, call_binop)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        checked_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's names)
        _spend(1)
        if any(_size(a) > MAX_TEXT for a in (*args, *kwargs.values())):
            refuse(f"a value of more than {MAX_TEXT} items passed to a call")
        wrapped = getattr(getattr(__obj, "__wrapped__", None), "__self__", None)  # the sandbox's str.format wrapper
        if isinstance(wrapped, str):
            _check_format(wrapped)
        return super().call(__context, __obj, *args, **kwargs)


def _capped(func: Callable[..., Any], name: str, position: int, limit: int, shown: str) -> Callable[..., Any]:
    """``func`` refusing an argument (by position or name) above ``limit``: widths, counts."""
    @functools.wraps(func)
    def capped(*args: Any, **kwargs: Any) -> Any:
        value = kwargs.get(name, args[position] if len(args) > position else None)
        if isinstance(value, str):
            value = len(value)
        if isinstance(value, (int, float)) and abs(value) > limit:
            refuse(f"{shown}: {name} {value} is more than {limit}")
        return func(*args, **kwargs)
    return capped


def bounded_range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_RANGE:
        refuse(f"range() of {len(items)} items; at most {MAX_RANGE}")
    _spend(len(items))
    return items


class _Namespace(Namespace):
    """``namespace()`` whose values are size-checked, so a loop cannot double a text until memory runs out."""

    def __setitem__(self, name: str, value: Any) -> None:
        if _size(value) > MAX_TEXT:
            refuse(f"namespace value of more than {MAX_TEXT} items")
        super().__setitem__(name, value)


def _format(value: Any, *args: Any, **kwargs: Any) -> Any:
    _check_format(str(value))
    return _JINJA_FORMAT(value, *args, **kwargs)


def _replace(eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
    """Jinja's ``replace``, refused when the result would exceed MAX_TEXT (``s | replace('a', s)`` squares s)."""
    text, old, new = str(value), str(old), str(new)
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    if len(text) + times * (len(new) - len(old)) > MAX_TEXT:
        refuse(f"replace() would make more than {MAX_TEXT} characters")
    return _JINJA_REPLACE(eval_ctx, value, old, new, count)


def join_capped(chunks: Iterable[str]) -> str:
    """A render's output, refused once it grows past MAX_TEXT."""
    out, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_TEXT:
            refuse(f"the template's output is longer than {MAX_TEXT} characters")
        out.append(chunk)
    return "".join(out)


ENV = Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
ENV.filters.update(FILTERS)
_JINJA_FORMAT, _JINJA_REPLACE = ENV.filters["format"], ENV.filters["replace"]
ENV.filters.update(center=_capped(ENV.filters["center"], "width", 1, MAX_TEXT, "center"),
                   indent=_capped(ENV.filters["indent"], "width", 1, 100, "indent"),
                   batch=_capped(ENV.filters["batch"], "linecount", 1, MAX_RANGE, "batch"),
                   slice=_capped(ENV.filters["slice"], "slices", 1, MAX_RANGE, "slice"),
                   tojson=_capped(ENV.filters["tojson"], "indent", 2, 100, "tojson"), format=_format,
                   replace=pass_eval_context(_replace))
_lipsum = cast(Callable[..., Any], ENV.globals["lipsum"])
for _arg, _position in (("n", 0), ("min", 2), ("max", 3)):
    _lipsum = _capped(_lipsum, _arg, _position, 100 if _arg == "n" else 1000, "lipsum()")
ENV.globals.update(range=bounded_range, namespace=_Namespace, lipsum=_lipsum)
