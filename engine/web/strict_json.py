"""Strict JSON for request bodies: what json.loads accepts, less what the daemon could not handle.

No NaN or Infinity (RFC 8259 has neither), no lone surrogates (they cannot be written out as UTF-8),
bounded nesting and number size. Webhook bodies and API bodies are parsed alike; PagerDuty's own
intake refuses invalid JSON with 400 too.
"""
from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64          # real GitHub, Sentry and Alertmanager bodies nest about 10 deep
MAX_NUMBER_CHARS = 100  # a JSON number literal; ids are at most ~20 digits


class BadJson(ValueError):
    """A request body that is not strict JSON; the message names where."""


def _no_constant(name: str) -> Any:
    raise BadJson(f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity)")


def _float(text: str) -> float:
    value = float(_number(text))
    if not math.isfinite(value):  # 1e999 is Infinity in disguise
        raise BadJson(f"the number {text[:20]}... is too large for a float")
    return value


def _number(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise BadJson(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    return text


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or BadJson naming the problem and, where there is one, the field."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson(f"body is not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_float,
                           parse_int=lambda s: int(_number(s)))
    except RecursionError:
        raise BadJson(f"body is nested deeper than {MAX_DEPTH} levels") from None
    except BadJson:
        raise
    except ValueError as exc:  # JSONDecodeError, or int()'s own digit limit
        raise BadJson(f"body is not valid JSON: {exc}") from None
    _check_tree(value)
    return value


def _check_tree(value: Any) -> None:
    """Depth and text checks without recursion (a deep body must not exhaust the stack here)."""
    stack: list[tuple[Any, str, int]] = [(value, "body", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadJson(f"body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, str):
            _check_text(node, path)
        elif isinstance(node, dict):
            for key, item in node.items():
                _check_text(key, f"{path} (a key)")
                stack.append((item, f"{path}.{key}", depth + 1))
        elif isinstance(node, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node))


def _valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _check_text(text: str, path: str) -> None:
    if not _valid_text(text):  # "\ud800" parses, but is no Unicode text and cannot be written out
        raise BadJson(f"{path[:200]}: holds a lone surrogate escape (like \\ud800), which is not valid Unicode")
