"""The shared work queue's rows, and what orders them (README "Run it on more than one machine").

Intake enqueues events and any number of workers claim, handle and finish them
(engine/pagerduty/pgqueue.py keeps them in PostgreSQL; this module imports no driver, so intake
without a queue never loads one). A row is one input object (an event, or a payload that expands
into several) with its ordering key: a row is claimed only when no earlier row of its key is
unfinished, so events that can act on one incident are applied one at a time, in order.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.pagerduty.state import StateError


class QueueUnavailable(StateError):
    """The queue's database cannot be reached or refused the change; nothing was half-written."""


@dataclass(frozen=True)
class Entry:
    """One input object to enqueue: its JSON text, the type it takes when it names none, where it came
    from, and its ordering key."""

    body: str
    default_type: str | None
    source: str
    ordering_key: str


@dataclass
class Job:
    """A claimed row: what to handle, and how far a previous try got (``units_done`` events acted on)."""

    id: int
    ordering_key: str
    body: str
    default_type: str | None
    source: str
    attempts: int
    units_done: int
    problems: list[str] = field(default_factory=list)


def ordering_key(payload: Mapping[str, Any], kind: str | None) -> str:
    """What orders an event among others, known before any rule runs: its repository (pagerules'
    events carry ``repo``, GitHub's ``repository.full_name``), else its source (the type's first part:
    ``alertmanager``, ``sentry``). Every incident_key the shipped rules make is derived from one of
    these, so two events that can act on one incident share an ordering key."""
    repo = payload.get("repo")
    if not isinstance(repo, str) or not repo:
        repository = payload.get("repository")
        repo = repository.get("full_name") if isinstance(repository, Mapping) else None
    if isinstance(repo, str) and repo:
        return f"repo:{repo}"
    given = payload.get("type")
    name = given if isinstance(given, str) and given else kind or ""
    return f"source:{name.split('.', 1)[0]}"


