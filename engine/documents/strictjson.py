"""One strict JSON decoder for every reader of events (process, explain, replay, test, the daemon).

Strict as RFC 8259 is: NaN, Infinity and numbers too big for a float are refused. Bounded: nesting
deeper than MAX_DEPTH and integers longer than MAX_INT_DIGITS are refused before they can exhaust
the stack or Python's integer conversion limit. Lenient where Go's encoding/json (Alertmanager) is:
a lone UTF-16 surrogate (``"\\ud800"``) or an undecodable byte becomes U+FFFD, so nothing later
fails to encode it. Every refusal is a BadJSON with a message and the character position.
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64  # real senders nest under 15 deep (GitHub ~6, Sentry ~12)
MAX_INT_DIGITS = 4300  # Python's own int/str conversion limit (sys.get_int_max_str_digits)


class BadJSON(ValueError):
    """Why a document is refused, and where (a character offset into its text)."""

    def __init__(self, msg: str, pos: int):
        super().__init__(msg)
        self.msg, self.pos = msg, pos


class _Refused(ValueError):
    def __init__(self, msg: str, token: str):
        super().__init__(msg)
        self.token = token


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number", name)


def _float(text: str) -> float:
    value = float(text)
    if value - value != 0:  # inf (1e999): not representable, as NaN and Infinity are not
        raise _Refused(f"number {text[:20]} is out of range", text)
    return value


_decoder = json.JSONDecoder(parse_constant=_constant, parse_float=_float)
_STRING = r'"(?:[^"\\]|\\.)*"'
_TOKENS = re.compile(_STRING + r'|(-?Infinity|NaN|-?\d[\d.eE+-]*)|([\[{])|([\]}])')
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def raw_decode(text: str, pos: int = 0) -> tuple[Any, int]:
    """(value, end) of the JSON value at ``pos``; BadJSON when it is refused."""
    if text.count("[", pos) + text.count("{", pos) > MAX_DEPTH:
        _check_depth(text, pos)
    if not text.isascii() and _SURROGATE.search(text, pos):  # isascii: a flag, no scan
        text = _SURROGATE.sub("\ufffd", text)  # surrogate-escaped bytes that were not UTF-8
    try:
        value, end = _decoder.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        raise BadJSON(exc.msg, exc.pos) from None
    except _Refused as exc:
        raise BadJSON(str(exc), _locate(text, pos, exc.token)) from None
    except RecursionError:  # cannot happen below MAX_DEPTH; kept so no input ever escapes as a crash
        raise BadJSON(f"nested more than {MAX_DEPTH} deep", pos) from None
    except ValueError as exc:  # int() past its digit limit
        where = _locate(text, pos, None)
        raise BadJSON(f"a number with more than {MAX_INT_DIGITS} digits", where) from exc
    if "\\u" in text and _SURROGATE_ESCAPE.search(text, pos, end):  # the substring test is far cheaper
        value = _replace_surrogates(value)
    return value, end


def decode(text: str) -> Any:
    """The one JSON value that is all of ``text`` (whitespace aside)."""
    start = 0 if text[:1] == "{" else len(text) - len(text.lstrip())  # a JSON line starts at its brace
    value, end = raw_decode(text, start)
    if end != len(text) and text[end:].strip():
        raise BadJSON("Extra data", len(text) - len(text[end:].lstrip()))
    return value


def _check_depth(text: str, pos: int) -> None:
    depth = 0
    for match in _TOKENS.finditer(text, pos):
        if match.group(2):
            depth += 1
            if depth > MAX_DEPTH:
                raise BadJSON(f"nested more than {MAX_DEPTH} deep", match.start())
        elif match.group(3):
            depth -= 1
            if depth <= 0:
                return


def _locate(text: str, pos: int, token: str | None) -> int:
    """Where the refused number or constant is: the first such token outside a string."""
    for match in _TOKENS.finditer(text, pos):
        found = match.group(1)
        if found and (found == token if token else len(found) > MAX_INT_DIGITS):
            return match.start()
    return pos


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value
