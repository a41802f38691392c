"""The shared work queue (engine/pagerduty/queue.py) in PostgreSQL (README "Run it on more than one
machine"): intake enqueues events, any number of workers claim, handle and finish them.

A row is one input object (an event, or a payload that expands into several) and its ordering key.
Workers claim with ``FOR UPDATE SKIP LOCKED`` and a lease (``claimed_by``, ``lease_until``), as
Procrastinate and pg-boss do; a worker that dies leaves its rows to be claimed again once the lease
ends. A row is claimed only when no earlier row of its ordering key is unfinished (Procrastinate's
``lock``), so events that can act on one incident are applied one at a time, in enqueue order, across
workers. Finished rows stay, ``done`` or ``failed`` with the reason, as processed/ and failed/ keep
files: nothing is dropped. Times are the database's clock, so the hosts' clocks never disagree on a lease.

Each thread has its own connection (intake answers on several threads); a broken one is opened again
on the next call, and the call that found it broken raises QueueUnavailable.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import psycopg

from engine.pagerduty.pgstate import CONNECT_TIMEOUT_SECONDS, describe
from engine.pagerduty.queue import Entry, Job, QueueUnavailable

NOW = "extract(epoch FROM clock_timestamp())"
# The cutoff is a subquery, computed once: ``finished_at < NOW - %s`` calls a volatile clock per row,
# which no index can answer, so every purge read the whole queue's history.
PURGE_DONE = ("DELETE FROM event_queue WHERE id IN (SELECT id FROM event_queue WHERE status = 'done'"
              f" AND finished_at < (SELECT {NOW} - %s) ORDER BY finished_at LIMIT %s)")
# pg_try_advisory_lock key of the replica that reconciles with PagerDuty ("pagerule" in ASCII, cut):
# a session lock, so it is let go when that replica's connection ends, dead or alive.
LEADER_LOCK = 0x70616765727572 & 0x7FFFFFFFFFFFFFFF

_CLAIM = f"""
UPDATE event_queue SET status = 'doing', claimed_by = %s, lease_until = {NOW} + %s
WHERE id IN (
  SELECT c.id FROM event_queue c
  WHERE c.status IN ('todo', 'doing')
    AND ((c.status = 'todo' AND c.available_at <= {NOW}) OR (c.status = 'doing' AND c.lease_until < {NOW}))
    AND NOT EXISTS (SELECT 1 FROM event_queue e WHERE e.ordering_key = c.ordering_key AND e.id < c.id
                    AND e.status IN ('todo', 'doing'))
  ORDER BY c.id LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING id, ordering_key, body, default_type, source, attempts, units_done, problems"""


class EventQueue:
    """The event_queue table of one PostgreSQL database (migration 5, applied when the state opens)."""

    def __init__(self, url: str, lease_seconds: float = 30.0):
        self.url, self.lease_seconds = url, lease_seconds
        self.where, self._password = describe(url)
        self._local = threading.local()
        self._leader: psycopg.Connection[Any] | None = None

    # ---- connections ---------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                   application_name="pagerules-queue")
        except psycopg.Error as exc:
            raise QueueUnavailable(f"cannot connect to the queue database {self.where}: {self._clean(exc)}") from None

    def _clean(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split())
        return text.replace(self._password, "***") if self._password else text

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cursor:
                yield cursor
        except psycopg.Error as exc:
            raise QueueUnavailable(f"queue database {self.where}: {self._clean(exc)}") from None

    def _execute(self, sql: str, parameters: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        """One statement on its own: atomic in autocommit, so one round trip rather than BEGIN, it, COMMIT."""
        try:
            return self._connection().execute(sql, parameters)
        except psycopg.Error as exc:
            raise QueueUnavailable(f"queue database {self.where}: {self._clean(exc)}") from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        if self._leader is not None:
            self._leader.close()

    # ---- intake --------------------------------------------------------------
    def enqueue(self, entries: Sequence[Entry]) -> list[int]:
        """Add ``entries`` in one transaction, in order; their ids once committed (all or none)."""
        with self._transaction() as cursor:
            return self._insert(cursor, entries)

    def enqueue_once(self, source: str, entries: Sequence[Entry]) -> list[int] | None:
        """As enqueue, with ``source`` (one delivery of a file) as every row's source, unless rows from it
        are already there: None then, so a file enqueued just before a kill -9 is not enqueued again."""
        with self._transaction() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (source,))
            if cursor.execute("SELECT 1 FROM event_queue WHERE source = %s LIMIT 1", (source,)).fetchone():
                return None
            return self._insert(cursor, [replace(entry, source=source) for entry in entries])

    @staticmethod
    def _insert(cursor: psycopg.Cursor[Any], entries: Sequence[Entry]) -> list[int]:
        """The rows' ids, in order; sent in one pipeline rather than a round trip per row."""
        if not entries:
            return []
        cursor.executemany(
            "INSERT INTO event_queue (ordering_key, body, default_type, source, available_at, enqueued_at)"
            f" VALUES (%s, %s, %s, %s, {NOW}, {NOW}) RETURNING id",
            [(e.ordering_key, e.body, e.default_type, e.source) for e in entries], returning=True)
        ids = []
        while True:
            row = cursor.fetchone()
            assert row is not None
            ids.append(int(row[0]))
            if not cursor.nextset():
                return ids

    # ---- workers ---------------------------------------------------------------
    def claim(self, worker: str, limit: int) -> list[Job]:
        """Up to ``limit`` rows for ``worker``, oldest first: the first unfinished row of each ordering
        key that is due (or whose lease ended), leased for lease_seconds."""
        rows = self._execute(_CLAIM, (worker, self.lease_seconds, limit)).fetchall()
        jobs = [Job(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]
        return sorted(jobs, key=lambda j: j.id)

    def renew(self, worker: str, ids: Sequence[int]) -> int:
        """Extend the lease of rows ``worker`` still holds; how many it holds."""
        if not ids:
            return 0
        return self._execute(f"UPDATE event_queue SET lease_until = {NOW} + %s"
                             " WHERE id = ANY(%s) AND claimed_by = %s AND status = 'doing'",
                             (self.lease_seconds, list(ids), worker)).rowcount

    def save_progress(self, worker: str, job: Job, units: int, problems: list[str]) -> bool:
        """Record that ``units`` events of the row were acted on (a retry starts after them); also renews
        the lease. False when the worker no longer holds the row (its lease ended and another took it)."""
        job.units_done, job.problems = units, list(problems)
        return self._execute(f"UPDATE event_queue SET units_done = %s, problems = %s, lease_until = {NOW} + %s"
                             " WHERE id = %s AND claimed_by = %s AND status = 'doing'",
                             (units, json.dumps(problems), self.lease_seconds, job.id, worker)).rowcount == 1

    def finish(self, worker: str, job: Job, problems: list[str]) -> bool:
        """``done``, or ``failed`` with the problems as its error (the row stays, as a failed/ file does).
        False when the worker no longer holds the row."""
        status, error = ("failed", "\n".join(problems)) if problems else ("done", None)
        return self._execute(f"UPDATE event_queue SET status = %s, error = %s, problems = %s, finished_at = {NOW},"
                             " lease_until = NULL WHERE id = %s AND claimed_by = %s AND status = 'doing'",
                             (status, error, json.dumps(problems), job.id, worker)).rowcount == 1

    def release(self, worker: str, job: Job, delay: float, why: str) -> bool:
        """Back to ``todo``, due in ``delay`` seconds (PagerDuty unreachable): later rows of its ordering
        key wait behind it, as newer files wait behind one the daemon holds."""
        return self._execute(f"UPDATE event_queue SET status = 'todo', attempts = attempts + 1, error = %s,"
                             f" available_at = {NOW} + %s, claimed_by = NULL, lease_until = NULL"
                             " WHERE id = %s AND claimed_by = %s AND status = 'doing'",
                             (why, delay, job.id, worker)).rowcount == 1

    def release_all(self, worker: str) -> int:
        """Every row ``worker`` holds back to ``todo`` now (it stops, or lost the database mid-batch)."""
        return self._execute("UPDATE event_queue SET status = 'todo', claimed_by = NULL, lease_until = NULL"
                             " WHERE claimed_by = %s AND status = 'doing'", (worker,)).rowcount

    # ---- looking at it -----------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Rows per status (todo, doing, done, failed)."""
        rows = self._execute("SELECT status, count(*) FROM event_queue GROUP BY status").fetchall()
        return {str(status): int(n) for status, n in rows}

    def failed(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest failed rows with their reasons, newest first."""
        rows = self._execute("SELECT id, source, error, body FROM event_queue WHERE status = 'failed'"
                             " ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
        return [{"id": r[0], "source": r[1], "error": r[2], "body": r[3]} for r in rows]

    def rows(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The latest rows (of ``status`` only, when given), newest first: what `pagerules queue list` shows."""
        where = "WHERE status = %s" if status else ""
        rows = self._execute(
            "SELECT id, status, ordering_key, source, attempts, error, enqueued_at, finished_at, body"
            f" FROM event_queue {where} ORDER BY id DESC LIMIT %s",
            (status, limit) if status else (limit,)).fetchall()
        return [{"id": r[0], "status": r[1], "ordering_key": r[2], "source": r[3], "attempts": r[4], "error": r[5],
                 "enqueued_at": r[6], "finished_at": r[7], "body": r[8]} for r in rows]

    def retry(self, row: int) -> str | None:
        """A ``failed`` row back to ``todo``, due now, to be handled again from its first event (as a file
        moved back from failed/ into the events folder is); None once done, else the row's status (or
        ``missing``), which is left as it is. Its later rows of its ordering key wait behind it again."""
        with self._transaction() as cursor:
            found = cursor.execute("SELECT status FROM event_queue WHERE id = %s FOR UPDATE", (row,)).fetchone()
            if found is None or found[0] != "failed":
                return "missing" if found is None else str(found[0])
            cursor.execute(f"UPDATE event_queue SET status = 'todo', attempts = 0, units_done = 0, problems = '[]',"
                           f" error = NULL, finished_at = NULL, available_at = {NOW} WHERE id = %s", (row,))
        return None

    def purge_done(self, keep_seconds: float, batch: int = 500) -> int:
        """Delete up to ``batch`` ``done`` rows finished more than ``keep_seconds`` ago, oldest first: how many.
        Failed rows stay until retried. Small batches keep each transaction short beside the workers."""
        return self._execute(PURGE_DONE, (keep_seconds, batch)).rowcount

    # ---- one replica reconciles --------------------------------------------------------
    def lead(self) -> bool:
        """Whether this process is the one replica that reconciles with PagerDuty: it holds a session
        advisory lock on a connection of its own, let go when the process or its connection dies, so
        another replica takes over on its next try."""
        try:
            if self._leader is not None:
                try:
                    self._leader.execute("SELECT 1")  # a restarted server let the lock go with the session
                    return True
                except psycopg.Error:
                    self._leader.close()
                    self._leader = None
            conn = self._connect()
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()
            if row and row[0]:
                self._leader = conn
                return True
            conn.close()
            return False
        except (psycopg.Error, QueueUnavailable):
            return False
