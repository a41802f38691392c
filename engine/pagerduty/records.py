"""The state's rows: what a stored incident is, the connection protocol both backends hand out, and
the SQL writes they share (engine/pagerduty/state.py for SQLite, pgstate.py for PostgreSQL)."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine.evaluation.actions import OpenIncident

COLUMNS = ("incident_key", "incident_id", "rule", "severity", "title", "labels", "status", "opened_at",
           "confirmed_at", "html_url")
COLUMN_LIST = ", ".join(COLUMNS)
I_COLUMNS = ", ".join(f"i.{c}" for c in COLUMNS)


class Rows(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """What a transaction hands out: sqlite3.Connection, or pgstate's adapter (``?`` placeholders both)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Rows: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


def is_postgresql_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class Migrated:
    """What opening a state did to its schema (``pagerules migrate`` prints it)."""

    location: str
    before: int
    after: int
    applied: tuple[int, ...]

    def line(self) -> str:
        if not self.applied:
            return f"state {self.location}: schema version {self.after}, up to date"
        return (f"state {self.location}: schema version {self.before} -> {self.after} "
                f"(applied {', '.join(map(str, self.applied))})")


@dataclass(frozen=True)
class StoredIncident(OpenIncident):
    status: str = "triggered"
    opened_at: float = 0.0
    confirmed_at: float = 0.0
    html_url: str | None = None  # the incident's page in PagerDuty, when PagerDuty gave an http(s) one


# The incident's row first: the upsert takes its row lock, so two PostgreSQL transactions writing one
# key take turns before either touches its labels; a reopen keeps the first opened_at.
UPSERT = (f"INSERT INTO incidents ({COLUMN_LIST}) VALUES (?, ?, ?, ?, ?, ?, 'triggered', ?, ?, ?) "
           "ON CONFLICT (incident_key) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("incident_key", "opened_at")))


def put_incident(db: Db, incident: OpenIncident, now: float, actor: str, action: str,
         detail: Mapping[str, Any] | None) -> None:
    html_url = incident.html_url if isinstance(incident, StoredIncident) else None
    db.execute(UPSERT, (incident.incident_key, incident.incident_id, incident.rule, incident.severity,
                         incident.title, json.dumps(dict(incident.labels)), now, now, html_url))
    db.execute("DELETE FROM incident_labels WHERE incident_key = ?", (incident.incident_key,))
    db.executemany("INSERT INTO incident_labels (name, value, incident_key) VALUES (?, ?, ?)",
                   [(k, str(v), incident.incident_key) for k, v in incident.labels.items()])
    write_audit(db, now, actor, action, incident.incident_key, incident.incident_id, detail)


def write_audit(db: Db, now: float, actor: str, action: str, incident_key: str | None,
           incident_id: str | None, detail: Mapping[str, Any] | None) -> None:
    db.execute("INSERT INTO audit (at, actor, action, incident_key, incident_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
               (now, actor, action, incident_key, incident_id, json.dumps(dict(detail or {}), default=str)))


def incident_from_row(row: tuple[Any, ...]) -> StoredIncident:
    key, incident_id, rule, severity, title, labels, status, opened_at, confirmed_at, html_url = row
    return StoredIncident(key, json.loads(labels), rule, severity, title, incident_id, status, opened_at,
                          confirmed_at, html_url)
