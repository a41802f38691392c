"""Durable state in SQLite (one machine) or PostgreSQL: incidents believed open, silences, and the audit trail.

The schema is versioned (engine/pagerduty/migrations): opening a state applies the
migrations it lacks, and a state newer than this code is refused. open_state(config)
(engine/pagerduty/store.py) chooses the backend: PostgreSQL (engine/pagerduty/pgstate.py)
when state_url is a postgresql:// URL, else the SQLite file at state_path.

WAL mode and a busy timeout let several processes (a daemon, a manual
`pagerules resolve`) share one file; every change is one transaction.
``confirmed_at`` is when PagerDuty last said the incident was open: within the
dedup window a repeat trigger makes no API call; after it, PagerDuty is asked
again, so an incident resolved by hand pages again (local state never
suppresses a page PagerDuty would accept), unless its rule says ``renotify:``:
then the state remembers the resolve by hand and the key waits that long from
its last page (README "Repeat control"). Flap control keeps each flap rule's
key's recent opens and the resolves held for a flapping key (README "Flap control").

Every query a live run makes is an index search, so its cost does not grow with
the number of incidents open: the dedup lookup is a primary-key search, a label
selector walks the open incidents carrying its most selective label and checks
the others by primary key (tests/test_pagerduty_state.py checks each query's plan).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine import metrics
from engine import severity as sev
from engine.errors import PageRulesError
from engine.evaluation.actions import HandResolved, HeldResolve, OpenIncident, PendingTrigger, TriggerAction
from engine.language.model import Flap
from engine.language.silences import Silence, SilenceError, iso
from engine.pagerduty.migrations import MIGRATIONS, VERSION_TABLE, Migration
from engine.pagerduty.records import (
    COLUMN_LIST,
    HAND_COLUMNS,
    HELD_COLUMNS,
    I_COLUMNS,
    PENDING_COLUMNS,
    SILENCE_COLUMNS,
    Db,
    Migrated,
    StoredIncident,
    hand_from_row,
    held_from_row,
    incident_from_row,
    pending_from_row,
    put_hand_resolved,
    put_held_resolve,
    put_incident,
    put_pending,
    put_silence,
    silence_detail,
    silence_from_row,
    write_audit,
)

BUSY_TIMEOUT_MS = 10_000
# A selector's labels are counted up to a bound that grows by a factor while every label
# reaches it, so choosing the label to walk costs about what walking the smallest one does.
PROBE_FIRST, PROBE_GROWTH, PROBE_MAX = 64, 8, 32_768
SILENCE_READ_SECONDS = 1.0  # a running daemon sees another process's new silence within this (README: Silences)


class StateError(PageRulesError):
    """The state cannot be used (unreadable, locked too long, corrupt, unreachable, too new)."""

    exit_code = 2


class State:
    """One SQLite file; safe to share between threads of one process and between processes."""

    dialect = "sqlite"
    migrated: Migrated
    silences_changed = 0  # bumped by this object's silence writes, so its views read them again at once

    def __init__(self, path: str, migrations: Sequence[Migration] = MIGRATIONS):
        if path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(f"cannot open the state file {path}: {exc.strerror}") from None
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                                   isolation_level=None)
        try:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._set_wal()
            self._db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the state file {path}: {exc}") from None
        self._migrate(migrations)

    @property
    def location(self) -> str:
        return self.path

    def _lock_schema(self, db: Db) -> None:
        """Keep other processes from migrating at the same time (SQLite: BEGIN IMMEDIATE already does)."""

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        """Apply each migration this state lacks, in order, one transaction each, recorded in schema_version."""
        known = migrations[-1].version if migrations else 0
        before: int | None = None
        applied: list[int] = []
        while True:
            with self.transaction() as db:  # one statement at a time: executescript would COMMIT on its own
                self._lock_schema(db)
                db.execute(VERSION_TABLE[self.dialect])
                current = int(db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0)
                before = current if before is None else before
                if current > known:
                    raise StateError(
                        f"state {self.location} has schema version {current}, newer than this pagerules knows "
                        f"({known}): it was written by a newer release; run that release (or newer), or restore "
                        "a backup taken before the upgrade (nothing was changed)")
                pending = [m for m in migrations if m.version > current]
                if not pending:
                    break
                migration = pending[0]
                for statement in migration.statements(self.dialect):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                           (migration.version, migration.name, time.time()))
                applied.append(migration.version)
        self.migrated = Migrated(self.location, before, current, tuple(applied))

    @property
    def schema_version(self) -> int:
        return self.migrated.after

    def _set_wal(self) -> None:
        # Switching to WAL can answer "database is locked" at once, without waiting for the busy
        # timeout, while another process is creating the same new file: try again for a while.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def transaction(self) -> Iterator[Db]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error; SQLite errors become StateError."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StateError(f"state file {self.path}: {exc}") from None
            try:
                yield self._db
            except BaseException as exc:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StateError(f"state file {self.path}: {exc}") from None
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StateError(f"state file {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # incidents
    def get(self, incident_key: str) -> StoredIncident | None:
        rows = self._read(f"SELECT {COLUMN_LIST} FROM incidents WHERE incident_key = ?", (incident_key,))
        return incident_from_row(rows[0]) if rows else None

    def open_incidents(self, repo: str | None = None, limit: int | None = None) -> list[StoredIncident]:
        """Open incidents, oldest first; with ``repo``, those whose ``repo`` label is it; at most ``limit``."""
        args: tuple[Any, ...] = ()
        if repo is None:
            sql = f"SELECT {COLUMN_LIST} FROM incidents ORDER BY opened_at, incident_key"
        else:
            sql = (f"SELECT {I_COLUMNS} FROM incident_labels AS l CROSS JOIN incidents AS i "
                   "WHERE l.name = 'repo' AND l.value = ? AND i.incident_key = l.incident_key "
                   "ORDER BY i.opened_at, i.incident_key")
            args = (repo,)
        if limit is not None:
            sql, args = sql + " LIMIT ?", (*args, limit)
        return [incident_from_row(r) for r in self._read(sql, args)]

    def open_count(self, repo: str | None = None, severity: str | None = None) -> int:
        """How many incidents are open; with ``repo`` (its ``repo`` label) or ``severity``, of those only.
        Counted in the database (the dashboard's totals), never a row per incident in Python."""
        args: tuple[str, ...]
        if repo is None:
            sql, args = "SELECT count(*) FROM incidents", ()
            if severity is not None:
                sql, args = sql + " WHERE severity = ?", (severity,)
        else:
            sql = ("SELECT count(*) FROM incident_labels AS l CROSS JOIN incidents AS i "
                   "WHERE l.name = 'repo' AND l.value = ? AND i.incident_key = l.incident_key")
            args = (repo,) if severity is None else (repo, severity)
            if severity is not None:
                sql += " AND i.severity = ?"
        return int(self._read(sql, args)[0][0])

    def open_first(self, limit: int, repo: str | None = None, severity: str | None = None) -> list[StoredIncident]:
        """At most ``limit`` open incidents, the most severe first, then the oldest (a text that is no
        severity last); with ``repo`` or ``severity``, only those. One query per severity, each stopping
        at ``limit`` rows: the dashboard's page, whatever the number open."""
        known = sev.SEVERITIES[::-1]
        marks = ",".join("?" * len(known))
        groups: list[tuple[str, tuple[Any, ...]]] = [("severity = ?", (s,)) for s in known
                                                     if severity is None or s == severity]
        if severity is None:
            groups.append((f"severity NOT IN ({marks})", known))
        out: list[StoredIncident] = []
        for where, args in groups:
            if len(out) >= limit:
                break
            if repo is None:
                sql = f"SELECT {COLUMN_LIST} FROM incidents WHERE {where} ORDER BY opened_at, incident_key LIMIT ?"
                found = self._read(sql, (*args, limit - len(out)))
            else:
                sql = (f"SELECT {I_COLUMNS} FROM incident_labels AS l CROSS JOIN incidents AS i "
                       f"WHERE l.name = 'repo' AND l.value = ? AND i.incident_key = l.incident_key AND i.{where} "
                       "ORDER BY i.opened_at, i.incident_key LIMIT ?")
                found = self._read(sql, (repo, *args, limit - len(out)))
            out += [incident_from_row(r) for r in found]
        return out

    def open_repos(self, severity: str | None = None, limit: int | None = None) -> list[str]:
        """The ``repo`` labels of the open incidents (of ``severity``), each once, by name; at most ``limit``
        (the scan of the label index stops there)."""
        sql = "SELECT DISTINCT value FROM incident_labels WHERE name = 'repo' ORDER BY value"
        args: tuple[Any, ...] = ()
        if severity is not None:
            sql = ("SELECT DISTINCT l.value FROM incident_labels AS l CROSS JOIN incidents AS i "
                   "WHERE l.name = 'repo' AND i.incident_key = l.incident_key AND i.severity = ? ORDER BY l.value")
            args = (severity,)
        if limit is not None:
            sql, args = sql + " LIMIT ?", (*args, limit)
        return [str(r[0]) for r in self._read(sql, args)]

    def label_count(self, name: str) -> int:
        """How many open incidents carry label ``name`` (whatever its value)."""
        return int(self._read("SELECT count(*) FROM incident_labels WHERE name = ?", (name,))[0][0])

    def has_label(self, name: str, values: tuple[str, ...]) -> bool:
        """Whether any open incident has label ``name`` set to one of ``values``: one index probe."""
        if not values:
            return False
        marks = ",".join("?" * len(values))
        return bool(self._read(f"SELECT 1 FROM incident_labels WHERE name = ? AND value IN ({marks}) LIMIT 1",
                               (name, *values)))

    def keys_with(self, name: str, values: tuple[str, ...]) -> set[str]:
        """Every open incident key with label ``name`` set to one of ``values`` (as many rows as match:
        evaluation uses has_label and select, whose cost does not follow a common label's count)."""
        marks = ",".join("?" * len(values))
        rows = self._read(f"SELECT incident_key FROM incident_labels WHERE name = ? AND value IN ({marks})",
                          (name, *values))
        return {r[0] for r in rows}

    def select(self, labels: Mapping[str, tuple[str, ...]]) -> list[StoredIncident]:
        """Open incidents whose every named label has one of the given values, by key; none for no labels.

        One query: the incidents carrying the most selective label are walked, and each of the other
        labels is a primary-key probe per candidate, so ``kind: build`` shared by every open incident
        costs nothing when ``repo`` narrows it to a few."""
        wanted = {name: tuple(dict.fromkeys(values)) for name, values in labels.items()}
        if not wanted or not all(wanted.values()):
            return []
        names = self._most_selective_first(wanted)
        joins = "".join(f" CROSS JOIN incident_labels AS l{n}" for n in range(1, len(names)))
        where: list[str] = []
        args: list[str] = []
        for n, name in enumerate(names):
            where.append(f"l{n}.name = ? AND l{n}.value IN ({','.join('?' * len(wanted[name]))})"
                         + (f" AND l{n}.incident_key = l0.incident_key" if n else ""))
            args += (name, *wanted[name])
        sql = (f"SELECT {I_COLUMNS} FROM incident_labels AS l0{joins} CROSS JOIN incidents AS i "
               f"WHERE {' AND '.join(where)} AND i.incident_key = l0.incident_key")
        return sorted((incident_from_row(r) for r in self._read(sql, tuple(args))), key=lambda i: i.incident_key)

    def _most_selective_first(self, labels: Mapping[str, tuple[str, ...]]) -> list[str]:
        names = list(labels)
        if len(names) == 1:
            return names
        bound = PROBE_FIRST
        while True:
            counts = {name: self._count_upto(name, labels[name], bound) for name in names}
            if min(counts.values()) < bound or bound >= PROBE_MAX:
                return sorted(names, key=counts.__getitem__)
            bound *= PROBE_GROWTH

    def _count_upto(self, name: str, values: tuple[str, ...], bound: int) -> int:
        marks = ",".join("?" * len(values))
        rows = self._read(f"SELECT count(*) FROM (SELECT 1 FROM incident_labels WHERE name = ? AND value IN ({marks}) "
                          "LIMIT ?) AS probe", (name, *values, bound))
        return int(rows[0][0])

    def record_open(self, incident: OpenIncident, now: float, actor: str, action: str,
                    detail: Mapping[str, Any] | None = None) -> None:
        """Remember an incident as open (new, or confirmed by PagerDuty) and audit it, atomically."""
        with self.transaction() as db:
            put_incident(db, incident, now, actor, action, detail)

    def record_open_many(self, incidents: Iterable[OpenIncident], now: float, actor: str, action: str) -> int:
        """record_open for many incidents in one transaction (an import, a benchmark's seed); how many."""
        count = 0
        with self.transaction() as db:
            for incident in incidents:
                put_incident(db, incident, now, actor, action, None)
                count += 1
        return count

    def record_status(self, incident_key: str, status: str, now: float, actor: str,
                      incident_id: str | None = None, detail: Mapping[str, Any] | None = None,
                      by_hand: StoredIncident | None = None) -> bool:
        """Acknowledged stays open; resolved leaves the open set. Audited in the same transaction. Whether
        the key's row (the one of ``incident_id``, when given) was changed.

        A resolve with ``incident_id`` removes the row only while it is still that incident's, or one
        whose id was never learnt (a newer incident opened for the key stays). ``by_hand``: a person
        resolved it (README "Repeat control"): remembered for its rule's ``renotify:`` only if this call
        removed the row, in the same transaction, so a rule's recovery that removed it first is never taken
        for a resolve by hand; nothing is written when it did not. Any other resolve is a recovery: it
        forgets a resolve by hand of the key in its own transaction (one that a reconcile round recorded
        while the recovery was under way)."""
        with self.transaction() as db:
            if status == "resolved":
                if incident_id is None:
                    row = db.execute("DELETE FROM incidents WHERE incident_key = ? RETURNING incident_key",
                                     (incident_key,)).fetchone()
                else:
                    row = db.execute("DELETE FROM incidents WHERE incident_key = ? AND (incident_id = ? "
                                     "OR incident_id IS NULL) RETURNING incident_key",
                                     (incident_key, incident_id)).fetchone()
                if row is not None:
                    db.execute("DELETE FROM incident_labels WHERE incident_key = ?", (incident_key,))
                    # closed: a held resolve has nothing left to do (one a wake-up has taken, it removes)
                    db.execute("DELETE FROM held_resolves WHERE incident_key = ? AND taken = 0", (incident_key,))
                if by_hand is not None:
                    if row is None:
                        return False  # resolved by pagerules (or another process) first: not a person's
                    write_audit(db, now, actor, status, incident_key, incident_id, detail)
                    put_hand_resolved(db, by_hand, now, actor)
                    return True
                forgot = db.execute("DELETE FROM hand_resolved WHERE incident_key = ? RETURNING rule",
                                    (incident_key,)).fetchone()
                write_audit(db, now, actor, status, incident_key, incident_id, detail)
                if forgot is not None:
                    write_audit(db, now, actor, "hand_resolved_recovered", incident_key, None, {"rule": forgot[0]})
                return row is not None
            row = db.execute("UPDATE incidents SET status = ?, confirmed_at = ? WHERE incident_key = ? "
                             "RETURNING incident_key", (status, now, incident_key)).fetchone()
            action = status if status != "triggered" else "reopen"
            write_audit(db, now, actor, action, incident_key, incident_id, detail)
            return row is not None

    # the daemon's progress through the file in hand: one record per delivery, gone when the file moves
    def progress(self, file: str) -> tuple[int, list[str]]:
        """How many of this file's units (events and unreadable documents, in order) were acted on,
        and the error lines they gave; (0, []) for a file not started."""
        rows = self._read("SELECT units, problems FROM files_in_progress WHERE file = ?", (file,))
        return (rows[0][0], json.loads(rows[0][1])) if rows else (0, [])

    def save_progress(self, file: str, units: int, problems: list[str], now: float) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO files_in_progress (file, units, problems, at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (file) DO UPDATE SET units = excluded.units, problems = excluded.problems, "
                       "at = excluded.at", (file, units, json.dumps(problems), now))

    def forget_progress(self, file: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM files_in_progress WHERE file = ?", (file,))

    def files_in_progress(self) -> list[str]:
        return [r[0] for r in self._read("SELECT file FROM files_in_progress")]

    def audit(self, now: float, actor: str, action: str, incident_key: str | None = None,
              incident_id: str | None = None, detail: Mapping[str, Any] | None = None) -> None:
        with self.transaction() as db:
            write_audit(db, now, actor, action, incident_key, incident_id, detail)

    # silences (README "Silences and maintenance windows")
    def add_silence(self, silence: Silence) -> None:
        """Store a new silence, audited as made by its creator."""
        with self.transaction() as db:
            put_silence(db, silence)
        self.silences_changed += 1

    def silences(self, at: float, include_ended: bool = False) -> list[Silence]:
        """Silences not ended at ``at`` (active, waiting for their window, or not yet started), soonest
        first; with ``include_ended``, every silence ever made, newest first. The first is an index range
        on ends_at: ended silences are not read, however many there are."""
        if include_ended:
            rows = self._read(f"SELECT {SILENCE_COLUMNS} FROM silences ORDER BY created_at DESC, id")
        else:
            rows = self._read(f"SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > ? ORDER BY starts_at, id",
                              (at,))
        return [silence_from_row(r) for r in rows]

    def get_silence(self, silence_id: str) -> Silence | None:
        rows = self._read(f"SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?", (silence_id,))
        return silence_from_row(rows[0]) if rows else None

    def expire_silence(self, silence_id: str, at: float, actor: str) -> Silence:
        """End a silence now (one not started yet ends before it begins), audited as ``actor``. Raises
        SilenceError for an unknown id or one already ended."""
        with self.transaction() as db:
            rows = db.execute(f"SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?", (silence_id,)).fetchall()
            if not rows:
                raise SilenceError("id", f"no silence {silence_id!r} (pagerules silence list --all shows them)")
            silence = silence_from_row(rows[0])
            if silence.ends_at <= at:
                raise SilenceError("id", f"silence {silence_id} already ended at {iso(silence.ends_at)}")
            starts_at = min(silence.starts_at, at)
            db.execute("UPDATE silences SET starts_at = ?, ends_at = ? WHERE id = ?", (starts_at, at, silence_id))
            write_audit(db, at, actor, "silence_expire", None, None, silence_detail(silence))
        self.silences_changed += 1
        return replace(silence, starts_at=starts_at, ends_at=at)

    # triggers held by a rule's for: (README "Pending triggers"), each change audited in its transaction
    def pending(self, incident_key: str) -> PendingTrigger | None:
        rows = self._read(f"SELECT {PENDING_COLUMNS} FROM pending_triggers WHERE incident_key = ?", (incident_key,))
        return pending_from_row(rows[0]) if rows else None

    def hold_pending(self, held: PendingTrigger, actor: str = "pagerules") -> PendingTrigger:
        """Hold ``held`` unless its key is held already; the hold in force."""
        with self.transaction() as db:
            if put_pending(db, held):
                write_audit(db, held.since, actor, "pending", held.incident_key, None,
                            {"rule": held.rule, "event_id": held.event_id, "pending_until": iso(held.until)})
                return held
            row = db.execute(f"SELECT {PENDING_COLUMNS} FROM pending_triggers WHERE incident_key = ?",
                             (held.incident_key,)).fetchone()
        return pending_from_row(row) if row else held

    def forget_pending(self, incident_key: str, at: float, why: str, actor: str = "pagerules") -> bool:
        """Drop a hold (``why``: paged, cancelled); whether this call dropped it (a second worker gets False)."""
        with self.transaction() as db:
            row = db.execute("DELETE FROM pending_triggers WHERE incident_key = ? RETURNING rule",
                             (incident_key,)).fetchone()
            if row is not None:
                write_audit(db, at, actor, f"pending_{why}", incident_key, None, {"rule": row[0]})
        return row is not None

    def cancel_pending(self, incident_key: str, at: float, actor: str = "pagerules") -> int:
        """A recovery drops the key's hold: 0 when none was held (or another worker dropped it first), 1 when
        this call dropped it, 2 when it dropped one a wake-up has taken: that wake-up may have paged it (it
        died mid-page, whether or not its lease is over), so the recovery must still resolve the key."""
        with self.transaction() as db:
            row = db.execute("DELETE FROM pending_triggers WHERE incident_key = ? RETURNING rule, taken",
                             (incident_key,)).fetchone()
            if row is None:
                return 0
            write_audit(db, at, actor, "pending_cancelled", incident_key, None, {"rule": row[0]})
        return 2 if row[1] else 1

    def take_pending(self, incident_key: str, until: float, lease_until: float) -> bool:
        """Take a due hold (read due at ``until``) for a wake-up: its due time moves to ``lease_until`` in one
        statement, so only one taker gets True; a taker that dies leaves it due again once the lease passes."""
        with self.transaction() as db:
            return db.execute("UPDATE pending_triggers SET due_at = ?, taken = 1 WHERE incident_key = ? "
                              "AND due_at = ? RETURNING incident_key",
                              (lease_until, incident_key, until)).fetchone() is not None

    def finish_pending(self, incident_key: str, lease_until: float, at: float, why: str,
                       actor: str = "pagerules") -> bool:
        """Drop a hold this taker took (still due at its ``lease_until``) once its page was decided."""
        with self.transaction() as db:
            row = db.execute("DELETE FROM pending_triggers WHERE incident_key = ? AND due_at = ? RETURNING rule",
                             (incident_key, lease_until)).fetchone()
            if row is not None:
                write_audit(db, at, actor, f"pending_{why}", incident_key, None, {"rule": row[0]})
        return row is not None

    def release_pending(self, incident_key: str, lease_until: float, until: float) -> bool:
        """Give back a hold this taker took, due at ``until`` (PagerDuty could not take it yet, or it waits)."""
        with self.transaction() as db:
            return db.execute("UPDATE pending_triggers SET due_at = ?, taken = 0 WHERE incident_key = ? "
                              "AND due_at = ? RETURNING incident_key",
                              (until, incident_key, lease_until)).fetchone() is not None

    def pending_any(self) -> bool:
        return bool(self._read("SELECT 1 FROM pending_triggers LIMIT 1"))

    def pending_with(self, labels: Mapping[str, tuple[str, ...]]) -> list[str]:
        """Keys of the holds whose every named label has one of the values. Holds are few (each lasts
        one for: at most), so they are read whole, not indexed by label."""
        rows = self._read("SELECT incident_key, labels FROM pending_triggers ORDER BY incident_key")
        return [key for key, text in rows if labels
                and all(json.loads(text).get(name) in values for name, values in labels.items())]

    def due_pending(self, at: float, limit: int = 100) -> list[PendingTrigger]:
        """Holds due at ``at``, soonest first: an index range on due_at, so a tick with none due is one probe."""
        rows = self._read(f"SELECT {PENDING_COLUMNS} FROM pending_triggers WHERE due_at <= ? "
                          "ORDER BY due_at, incident_key LIMIT ?", (at, limit))
        return [pending_from_row(r) for r in rows]

    # repeat control (README "Repeat control"): keys a person resolved, kept while a wait can matter
    def hand_resolved(self, incident_key: str) -> HandResolved | None:
        rows = self._read(f"SELECT {HAND_COLUMNS} FROM hand_resolved WHERE incident_key = ?", (incident_key,))
        return hand_from_row(rows[0]) if rows else None

    def remember_hand_resolved(self, incident: StoredIncident, at: float, actor: str) -> bool:
        """A person resolved ``incident`` at ``at`` (through pagerules, after the resolve's own record):
        remembered (with its last page, ``opened_at``) when its rule has ``renotify:`` and the wait has not
        passed; whether it was. Rows past their wait go. Reconcile uses record_status(by_hand=) instead."""
        if incident.renotify is None or incident.opened_at + incident.renotify <= at:
            return False
        with self.transaction() as db:
            return put_hand_resolved(db, incident, at, actor)

    def forget_hand_resolved(self, incident_key: str, at: float, why: str, actor: str = "pagerules") -> bool:
        with self.transaction() as db:
            row = db.execute("DELETE FROM hand_resolved WHERE incident_key = ? RETURNING rule",
                             (incident_key,)).fetchone()
            if row is not None:
                write_audit(db, at, actor, f"hand_resolved_{why}", incident_key, None, {"rule": row[0]})
        return row is not None

    def held_any(self) -> bool:
        """Whether any trigger is held pending or any key is remembered resolved by hand (a recovery
        selecting labels then looks for them too)."""
        return bool(self._read("SELECT 1 FROM pending_triggers UNION ALL SELECT 1 FROM hand_resolved LIMIT 1"))

    def hand_resolved_with(self, labels: Mapping[str, tuple[str, ...]]) -> list[str]:
        """Keys resolved by hand whose every named label has one of the values (few: each lasts one wait)."""
        rows = self._read("SELECT incident_key, labels FROM hand_resolved ORDER BY incident_key")
        return [key for key, text in rows if labels
                and all(json.loads(text).get(name) in values for name, values in labels.items())]

    # flap control (README "Flap control"): each flap rule's key's opens within its window
    def flap_opened(self, incident_key: str, at: float, flap: Flap) -> int:
        """Count an open of the key at ``at``; the opens within ``flap.within`` up to it. Rows whose window
        has passed go."""
        with self.transaction() as db:
            db.execute("DELETE FROM flap_opens WHERE expires_at <= ?", (at,))
            row = db.execute("SELECT opens FROM flap_opens WHERE incident_key = ?", (incident_key,)).fetchone()
            opens = [t for t in (json.loads(row[0]) if row else []) if t > at - flap.within] + [at]
            db.execute("INSERT INTO flap_opens (incident_key, opens, flap_opens, flap_within, expires_at) "
                       "VALUES (?, ?, ?, ?, ?) ON CONFLICT (incident_key) DO UPDATE SET opens = excluded.opens, "
                       "flap_opens = excluded.flap_opens, flap_within = excluded.flap_within, "
                       "expires_at = excluded.expires_at",
                       (incident_key, json.dumps(opens), flap.opens, flap.within, max(opens) + flap.within))
        return len(opens)

    def flap_count(self, incident_key: str, at: float) -> tuple[int, Flap] | None:
        rows = self._read("SELECT opens, flap_opens, flap_within FROM flap_opens WHERE incident_key = ?",
                          (incident_key,))
        if not rows:
            return None
        opens, needed, within = rows[0]
        return sum(1 for t in json.loads(opens) if at - within <= t <= at), Flap(int(needed), float(within))

    def held_resolves_any(self) -> bool:
        """Whether any key's resolve is held: one probe, asked per trigger (README "Flap control")."""
        return bool(self._read("SELECT 1 FROM held_resolves LIMIT 1"))

    def held_resolve(self, incident_key: str) -> HeldResolve | None:
        rows = self._read(f"SELECT {HELD_COLUMNS} FROM held_resolves WHERE incident_key = ?", (incident_key,))
        return held_from_row(rows[0]) if rows else None

    def hold_resolve(self, held: HeldResolve, actor: str = "pagerules") -> HeldResolve:
        """Hold a flapping key's resolve unless one is held; the hold in force. Audited as ``flapping``."""
        with self.transaction() as db:
            if put_held_resolve(db, held):
                write_audit(db, held.since, actor, "flapping", held.incident_key, None,
                            {"rule": held.rule, "event_id": held.event_id, "opens": held.opens,
                             "resolve_at": iso(held.until)})
                return held
            row = db.execute(f"SELECT {HELD_COLUMNS} FROM held_resolves WHERE incident_key = ?",
                             (held.incident_key,)).fetchone()
        return held_from_row(row) if row else held

    def forget_held_resolve(self, incident_key: str, at: float, why: str, actor: str = "pagerules") -> bool:
        """Drop a held resolve (``why``: refired, released) unless a wake-up has it taken (lease not over);
        whether this call dropped it."""
        with self.transaction() as db:
            row = db.execute("DELETE FROM held_resolves WHERE incident_key = ? AND (taken = 0 OR due_at <= ?) "
                             "RETURNING rule", (incident_key, at)).fetchone()
            if row is not None:
                write_audit(db, at, actor, f"flapping_{why}", incident_key, None, {"rule": row[0]})
        return row is not None

    def take_held_resolve(self, incident_key: str, until: float, lease_until: float) -> int | None:
        """Take a due held resolve (read due at ``until``) for a wake-up, with a lease as take_pending does;
        None when another taker has it, else 1, or 2 when its key fired while an earlier taker had it."""
        with self.transaction() as db:
            row = db.execute("UPDATE held_resolves SET due_at = ?, taken = CASE WHEN taken = 2 THEN 2 ELSE 1 END "
                             "WHERE incident_key = ? AND due_at = ? RETURNING taken",
                             (lease_until, incident_key, until)).fetchone()
        return int(row[0]) if row is not None else None

    def finish_held_resolve(self, incident_key: str, lease_until: float, at: float, why: str,
                            actor: str = "pagerules") -> bool:
        """Drop a held resolve this taker took, once its resolve was decided (``why``: released, refired)."""
        with self.transaction() as db:
            row = db.execute("DELETE FROM held_resolves WHERE incident_key = ? AND due_at = ? RETURNING rule",
                             (incident_key, lease_until)).fetchone()
            if row is not None:
                write_audit(db, at, actor, f"flapping_{why}", incident_key, None, {"rule": row[0]})
        return row is not None

    def release_held_resolve(self, incident_key: str, lease_until: float, until: float) -> bool:
        """Hold again, due at ``until``, a resolve this taker took; False (nothing changed) when its key fired
        meanwhile: then it is not held again."""
        with self.transaction() as db:
            return db.execute("UPDATE held_resolves SET due_at = ?, taken = 0 WHERE incident_key = ? AND due_at = ? "
                              "AND taken = 1 RETURNING incident_key",
                              (until, incident_key, lease_until)).fetchone() is not None

    def refire_held_resolve(self, incident_key: str, at: float, actor: str = "pagerules") -> tuple[bool, float | None]:
        """The key fired at ``at``: in one transaction (the row locked), drop its held resolve, audited
        ``flapping_refired`` ((True, None)); or, while a wake-up has it taken (lease not over), mark it fired
        (so it is not held again, and a taker after a crash cancels it) and give the lease's end ((False,
        end)); (False, None) when none is held. A taker giving it back meanwhile waits for this decision."""
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""  # SQLite: BEGIN IMMEDIATE locks all
        with self.transaction() as db:
            row = db.execute(f"SELECT rule, taken, due_at FROM held_resolves WHERE incident_key = ?{lock}",
                             (incident_key,)).fetchone()
            if row is None:
                return False, None
            rule, taken, due_at = row
            if taken and due_at > at:
                db.execute("UPDATE held_resolves SET taken = 2 WHERE incident_key = ?", (incident_key,))
                return False, float(due_at)
            db.execute("DELETE FROM held_resolves WHERE incident_key = ?", (incident_key,))
            write_audit(db, at, actor, "flapping_refired", incident_key, None, {"rule": rule})
        return True, None

    def recover_held_resolve(self, incident_key: str) -> bool:
        """The key recovered again after a re-fire marked its taken held resolve (taken 2): taken only (1)
        again, so its taker's release, or the next taker after a crash, still sends it."""
        with self.transaction() as db:
            return db.execute("UPDATE held_resolves SET taken = 1 WHERE incident_key = ? AND taken = 2 "
                              "RETURNING incident_key", (incident_key,)).fetchone() is not None

    def due_resolves(self, at: float, limit: int = 100) -> list[HeldResolve]:
        """Held resolves due at ``at``, soonest first: an index range on due_at."""
        rows = self._read(f"SELECT {HELD_COLUMNS} FROM held_resolves WHERE due_at <= ? "
                          "ORDER BY due_at, incident_key LIMIT ?", (at, limit))
        return [held_from_row(r) for r in rows]

    def recent_audit(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._read("SELECT at, actor, action, incident_key, incident_id, detail FROM audit "
                          "ORDER BY id DESC LIMIT ?", (limit,))
        return [{"at": r[0], "actor": r[1], "action": r[2], "incident_key": r[3], "incident_id": r[4],
                 "detail": json.loads(r[5])} for r in rows]


class StateView:
    """The state as evaluation sees it (engine.evaluation.actions.IncidentView), and the silences and
    pending triggers the dispatcher asks of it (engine.dispatch.dispatcher.SilenceView, PendingView).

    Silences are read at most once per SILENCE_READ_SECONDS of ``clock`` (a silence made by another
    process takes effect within that), and at once after this process changed one."""

    event_time = False  # live: the clock says what time it is, not the event

    def __init__(self, state: State, clock: Callable[[], float] = time.time):
        self.state, self.clock = state, clock
        self._silences: tuple[Silence, ...] = ()
        self._silences_read: tuple[float, int] | None = None  # (when, state.silences_changed then)

    def active_silences(self, at: float) -> tuple[Silence, ...]:
        """The silences muting at ``at``, from the last read when it is recent enough."""
        now, changed = self.clock(), self.state.silences_changed
        last = self._silences_read
        if last is None or changed != last[1] or not 0 <= now - last[0] < SILENCE_READ_SECONDS:
            self._silences = tuple(self.state.silences(now))
            self._silences_read = (now, changed)
            metrics.observe_silences(sum(1 for s in self._silences if s.active_at(now)))
        return tuple(s for s in self._silences if s.active_at(at)) if self._silences else ()

    def record_silenced(self, action: TriggerAction, silence: Silence, at: float) -> None:
        """Audit a muted trigger, as the silence's creator: who chose that it not page."""
        self.state.audit(at, silence.created_by, "silenced", action.incident_key, None,
                         {"silence_id": silence.id, "rule": action.rule, "event_id": action.event_id,
                          "title": action.title})

    def pending_get(self, incident_key: str) -> PendingTrigger | None:
        return self.state.pending(incident_key)

    def pending_hold(self, held: PendingTrigger) -> PendingTrigger:
        return self.state.hold_pending(held)

    def pending_forget(self, incident_key: str, at: float, why: str) -> bool:
        return self.state.forget_pending(incident_key, at, why)

    def pending_due(self, at: float, limit: int = 100) -> list[PendingTrigger]:
        return self.state.due_pending(at, limit)

    def pending_cancel(self, incident_key: str, at: float) -> int:
        return self.state.cancel_pending(incident_key, at)

    def pending_take(self, incident_key: str, until: float, lease_until: float) -> bool:
        return self.state.take_pending(incident_key, until, lease_until)

    def pending_done(self, incident_key: str, lease_until: float, at: float, why: str) -> bool:
        return self.state.finish_pending(incident_key, lease_until, at, why)

    def pending_release(self, incident_key: str, lease_until: float, until: float) -> bool:
        return self.state.release_pending(incident_key, lease_until, until)

    def pending_any(self) -> bool:
        return self.state.held_any()

    def pending_keys(self, labels: Mapping[str, tuple[str, ...]]) -> list[str]:
        """Held triggers and keys resolved by hand whose labels match (a recovery forgets the latter)."""
        keys = self.state.pending_with(labels)
        return sorted({*keys, *self.state.hand_resolved_with(labels)}) if labels else keys

    # repeat control and flap control (engine.dispatch.dispatcher.RepeatView)
    def hand_resolved_get(self, incident_key: str) -> HandResolved | None:
        return self.state.hand_resolved(incident_key)

    def hand_resolved_forget(self, incident_key: str, at: float, why: str) -> bool:
        return self.state.forget_hand_resolved(incident_key, at, why)

    def record_renotify_wait(self, action: TriggerAction, at: float, until: float) -> None:
        self.state.audit(at, "rules", "renotify_wait", action.incident_key, None,
                         {"rule": action.rule, "event_id": action.event_id, "renotify_at": iso(until)})

    def opened(self, action: TriggerAction, at: float, paged: bool = True) -> int:
        """The last page is the incident's opened_at; only a flap rule's open is counted here."""
        return self.state.flap_opened(action.incident_key, at, action.flap) if action.flap is not None else 0

    def flap_count(self, incident_key: str, at: float) -> tuple[int, Flap] | None:
        return self.state.flap_count(incident_key, at)

    def resolves_any(self) -> bool:
        return self.state.held_resolves_any()

    def resolve_held(self, incident_key: str) -> HeldResolve | None:
        return self.state.held_resolve(incident_key)

    def resolve_hold(self, held: HeldResolve) -> HeldResolve:
        return self.state.hold_resolve(held)

    def resolve_forget(self, incident_key: str, at: float, why: str) -> bool:
        return self.state.forget_held_resolve(incident_key, at, why)

    def resolves_due(self, at: float, limit: int = 100) -> list[HeldResolve]:
        return self.state.due_resolves(at, limit)

    def resolve_take(self, incident_key: str, until: float, lease_until: float) -> int | None:
        return self.state.take_held_resolve(incident_key, until, lease_until)

    def resolve_done(self, incident_key: str, lease_until: float, at: float, why: str) -> bool:
        return self.state.finish_held_resolve(incident_key, lease_until, at, why)

    def resolve_release(self, incident_key: str, lease_until: float, until: float) -> bool:
        return self.state.release_held_resolve(incident_key, lease_until, until)

    def resolve_refire(self, incident_key: str, at: float) -> tuple[bool, float | None]:
        return self.state.refire_held_resolve(incident_key, at)

    def resolve_recovered(self, incident_key: str) -> bool:
        return self.state.recover_held_resolve(incident_key)

    def get(self, incident_key: str) -> OpenIncident | None:
        return self.state.get(incident_key)

    def any_with(self, label: str, values: tuple[str, ...]) -> bool:
        return self.state.has_label(label, values)

    def select(self, labels: Mapping[str, tuple[str, ...]]) -> list[OpenIncident]:
        return list(self.state.select(labels))


