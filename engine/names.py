"""How messages name things: a path inside a document, and an unknown name with its closest known one."""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def dotted(path: Iterable[Any]) -> str:
    """``("match", "deploy.version")`` -> ``match.deploy.version``; list indexes as ``[2]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def unknown_name(what: str, name: str, known: Iterable[str]) -> str:
    """``unknown key 'tittle' (did you mean 'title'?; known: ...)``."""
    known = sorted(known)
    guess = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{guess[0]}'? " if guess else ""
    return f"unknown {what} '{name}' ({hint}known: {', '.join(known)})"
