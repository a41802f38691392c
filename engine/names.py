"""How messages name things: a path inside a document, an unknown name with its closest known one, and
the actors pagerules records itself."""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

# Actors pagerules records itself in the audit trail (engine.web.tokens reserves them as token names):
# any other actor is a person.
SYSTEM_ACTORS = frozenset({"rules", "api", "dashboard", "reconcile", "cli"})


def dotted(path: Iterable[Any]) -> str:
    """``("match", "deploy.version")`` -> ``match.deploy.version``; list indexes as ``[2]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def unknown_name(what: str, name: str, known: Iterable[str], hints: Mapping[str, str] | None = None) -> str:
    """``unknown key 'tittle' (did you mean 'title'?; known: ...)``.

    ``hints`` are more guesses, not listed as known: {what the name may be a typo of: what to suggest},
    e.g. {"repo": "event.repo"} for a bare event field name in a template."""
    known = sorted(known)
    hints = hints or {}
    guess = difflib.get_close_matches(name, [*known, *hints], n=1)
    hint = f"did you mean '{hints.get(guess[0], guess[0])}'? " if guess else ""
    return f"unknown {what} '{name}' ({hint}known: {', '.join(known)})"
