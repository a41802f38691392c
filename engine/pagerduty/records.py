"""The state's rows: what a stored incident and a stored silence are, the connection protocol both
backends hand out, and the SQL writes they share (engine/pagerduty/state.py for SQLite, pgstate.py for PostgreSQL)."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine.evaluation.actions import HandResolved, HeldResolve, OpenIncident, PendingTrigger
from engine.language.model import Flap
from engine.language.silences import Silence, iso, silence_from_stored

COLUMNS = ("incident_key", "incident_id", "rule", "severity", "title", "labels", "status", "opened_at",
           "confirmed_at", "html_url", "renotify")
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
    renotify: float | None = None  # its rule's renotify: in seconds (README "Repeat control"), when it had one


# The incident's row first: the upsert takes its row lock, so two PostgreSQL transactions writing one
# key take turns before either touches its labels; a reopen keeps the first opened_at.
UPSERT = (f"INSERT INTO incidents ({COLUMN_LIST}) VALUES (?, ?, ?, ?, ?, ?, 'triggered', ?, ?, ?, ?) "
           "ON CONFLICT (incident_key) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("incident_key", "opened_at")))


def put_incident(db: Db, incident: OpenIncident, now: float, actor: str, action: str,
         detail: Mapping[str, Any] | None) -> None:
    stored = incident if isinstance(incident, StoredIncident) else None
    html_url, renotify = (stored.html_url, stored.renotify) if stored else (None, None)
    db.execute(UPSERT, (incident.incident_key, incident.incident_id, incident.rule, incident.severity,
                         incident.title, json.dumps(dict(incident.labels)), now, now, html_url, renotify))
    # open again: a resolve by hand is forgotten (README "Repeat control"); one primary-key probe
    db.execute("DELETE FROM hand_resolved WHERE incident_key = ?", (incident.incident_key,))
    db.execute("DELETE FROM incident_labels WHERE incident_key = ?", (incident.incident_key,))
    db.executemany("INSERT INTO incident_labels (name, value, incident_key) VALUES (?, ?, ?)",
                   [(k, str(v), incident.incident_key) for k, v in incident.labels.items()])
    write_audit(db, now, actor, action, incident.incident_key, incident.incident_id, detail)


def write_audit(db: Db, now: float, actor: str, action: str, incident_key: str | None,
           incident_id: str | None, detail: Mapping[str, Any] | None) -> None:
    db.execute("INSERT INTO audit (at, actor, action, incident_key, incident_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
               (now, actor, action, incident_key, incident_id, json.dumps(dict(detail or {}), default=str)))


def incident_from_row(row: tuple[Any, ...]) -> StoredIncident:
    key, incident_id, rule, severity, title, labels, status, opened_at, confirmed_at, html_url, renotify = row
    return StoredIncident(key, json.loads(labels), rule, severity, title, incident_id, status, opened_at,
                          confirmed_at, html_url, renotify)


SILENCE_COLUMNS = "id, matchers, created_by, comment, starts_at, ends_at, created_at, weekly"


def put_silence(db: Db, silence: Silence) -> None:
    """Store a new silence and audit its making, as its creator."""
    weekly = json.dumps(silence.weekly.to_json()) if silence.weekly else None
    db.execute(f"INSERT INTO silences ({SILENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (silence.id, json.dumps(dict(silence.match)), silence.created_by, silence.comment,
                silence.starts_at, silence.ends_at, silence.created_at, weekly))
    write_audit(db, silence.created_at, silence.created_by, "silence", None, None, silence_detail(silence))


def silence_detail(silence: Silence) -> dict[str, Any]:
    """What the audit trail keeps of a silence."""
    detail: dict[str, Any] = {"silence_id": silence.id, "match": dict(silence.match), "comment": silence.comment,
                              "starts_at": iso(silence.starts_at), "ends_at": iso(silence.ends_at)}
    if silence.weekly:
        detail["weekly"] = silence.weekly.describe()
    return detail


def silence_from_row(row: tuple[Any, ...]) -> Silence:
    silence_id, matchers, created_by, comment, starts_at, ends_at, created_at, weekly = row
    return silence_from_stored({"id": silence_id, "match": json.loads(matchers), "created_by": created_by,
                                "comment": comment, "starts_at": starts_at, "ends_at": ends_at,
                                "created_at": created_at, "weekly": json.loads(weekly) if weekly else None})


PENDING_COLUMNS = ("incident_key, rule, title, severity, labels, details, links, event_id, held_at, due_at, "
                   "renotify, flap_opens, flap_within")


def put_pending(db: Db, held: PendingTrigger) -> bool:
    """Hold a trigger unless its key is held already (another worker, or an earlier event); whether this did."""
    flap = held.flap
    row = db.execute(f"INSERT INTO pending_triggers ({PENDING_COLUMNS}) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                     "ON CONFLICT (incident_key) DO NOTHING RETURNING incident_key",
                     (held.incident_key, held.rule, held.title, held.severity, json.dumps(dict(held.labels)),
                      json.dumps(dict(held.details)), json.dumps([dict(link) for link in held.links]),
                      json.dumps(held.event_id, default=str), held.since, held.until, held.renotify,
                      flap.opens if flap else None, flap.within if flap else None)).fetchone()
    return row is not None


def pending_from_row(row: tuple[Any, ...]) -> PendingTrigger:
    key, rule, title, severity, labels, details, links, event_id, held_at, due_at, renotify, opens, within = row
    return PendingTrigger(key, rule, title, severity, json.loads(labels), json.loads(details),
                          tuple(json.loads(links)), json.loads(event_id), held_at, due_at, renotify,
                          Flap(int(opens), float(within)) if opens is not None else None)


HAND_COLUMNS = "incident_key, paged_at, resolved_at, labels"


def put_hand_resolved(db: Db, incident: StoredIncident, at: float, actor: str) -> bool:
    """Remember that a person resolved ``incident`` at ``at`` (with its last page, ``opened_at``) when its
    rule has ``renotify:`` and the wait has not passed, audited; whether it was. Rows past their wait go."""
    if incident.renotify is None or incident.opened_at + incident.renotify <= at:
        return False
    db.execute("DELETE FROM hand_resolved WHERE expires_at <= ?", (at,))
    db.execute("INSERT INTO hand_resolved (incident_key, rule, labels, paged_at, resolved_at, expires_at) "
               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (incident_key) DO UPDATE SET rule = excluded.rule, "
               "labels = excluded.labels, paged_at = excluded.paged_at, resolved_at = excluded.resolved_at, "
               "expires_at = excluded.expires_at",
               (incident.incident_key, incident.rule, json.dumps(dict(incident.labels)), incident.opened_at,
                at, incident.opened_at + incident.renotify))
    write_audit(db, at, actor, "hand_resolved", incident.incident_key, incident.incident_id,
                {"rule": incident.rule, "paged_at": iso(incident.opened_at),
                 "renotify_at": iso(incident.opened_at + incident.renotify)})
    return True


def hand_from_row(row: tuple[Any, ...]) -> HandResolved:
    key, paged_at, resolved_at, labels = row
    return HandResolved(key, paged_at, resolved_at, json.loads(labels))


HELD_COLUMNS = "incident_key, rule, event_id, message, held_at, due_at, opens, taken"


def put_held_resolve(db: Db, held: HeldResolve) -> bool:
    """Hold a flapping key's resolve unless one is held already; whether this did."""
    row = db.execute(f"INSERT INTO held_resolves ({HELD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                     "ON CONFLICT (incident_key) DO NOTHING RETURNING incident_key",
                     (held.incident_key, held.rule, json.dumps(held.event_id, default=str), held.message,
                      held.since, held.until, held.opens, held.taken)).fetchone()
    return row is not None


def held_from_row(row: tuple[Any, ...]) -> HeldResolve:
    key, rule, event_id, message, held_at, due_at, opens, taken = row
    return HeldResolve(key, rule, json.loads(event_id), message, held_at, due_at, int(opens), int(taken))
