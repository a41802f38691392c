"""One incident per key across replicas (README "Run it on more than one machine"): the database decides
which worker calls PagerDuty for an incident_key.

Two events about one incident can arrive under different ordering keys (a rule whose incident_key
ignores the repository; Sentry and GitHub about one service), so two queue workers may trigger one key
at the same moment. ``KeyLocked`` wraps a backend so that its ``create``, ``resolve``, ``acknowledge``
and ``add_note`` hold a session advisory lock on the key (``pg_advisory_lock``) in the state's database
for the length of the call: the second worker waits, then finds the first one's incident in the state
and is ``deduplicated`` with no call. PagerDuty's duplicate-key answer stays the second line of defence
(a lock lost with a restarted server). The lock is let go when the call returns or raises, and a dead
worker's lock goes with its connection, so nothing waits on a corpse: the lock connection asks the server
to probe it with TCP keepalives (KEEPALIVE_*), so a host that vanished without closing its connection loses
its locks within about a minute rather than the kernel's two hours.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from engine.dispatch.dispatcher import Announcer, Backend, NoteTaker
from engine.dispatch.outcomes import Result
from engine.evaluation.actions import ChangeAction, IncidentView, ResolveAction, TriggerAction
from engine.language.routes import Route
from engine.pagerduty.pgstate import CONNECT_TIMEOUT_SECONDS, describe
from engine.pagerduty.queue import QueueUnavailable

log = logging.getLogger("pagerules.keylock")

# What a lock key is made from: a prefix of its own keeps incident keys apart from the other advisory
# locks in the database (a file's delivery, the leader's and the migrations' constants).
NAMESPACE = "pagerules incident_key "
# The longest a worker waits for another's lock: one PagerDuty call with its retries and Retry-After.
# Past it the event waits and is tried again (KeyBusy), never goes ahead unlocked.
WAIT_SECONDS = 120.0
# The wait for a key whose last wait ran out (a holder that froze): short, so each retry of its event costs
# little, yet a wait all the same, so the worker keeps its place behind other workers' calls for that key.
STUCK_WAIT_SECONDS = 5.0
# How the server probes an idle lock connection (its tcp_keepalives_* settings, per session): silent for
# IDLE seconds, then COUNT probes INTERVAL apart; a host that answers none has its session, and locks, ended.
KEEPALIVE_IDLE_SECONDS, KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_COUNT = 30, 10, 3


class KeyBusy(QueueUnavailable):
    """Another worker has held the key's lock past the wait: this event waits and is tried again, while
    the events of other keys go on (the database itself answers)."""


class KeyLocks:
    """Per-key session advisory locks in one PostgreSQL database; one connection per thread."""

    def __init__(self, url: str, wait_seconds: float = WAIT_SECONDS):
        self.url, self.wait_seconds = url, wait_seconds
        self.where, self._password = describe(url)
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._all_lock = threading.Lock()
        # Keys whose wait ran out (a holder that froze): until this process takes one, it waits for it only
        # STUCK_WAIT_SECONDS, so each retry of its event costs that, not another whole wait on the worker's
        # one thread.
        self._stuck: set[str] = set()

    def _connection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                   application_name="pagerules-keylock")
        except psycopg.Error as exc:
            raise QueueUnavailable(f"cannot connect to the lock database {self.where}: {self._clean(exc)}") from None
        try:
            conn.execute(f"SET lock_timeout = '{int(self.wait_seconds * 1000)}ms'")
        except psycopg.Error as exc:
            conn.close()
            raise QueueUnavailable(f"lock database {self.where}: {self._clean(exc)}") from None
        try:  # best effort: a pooler or proxy that refuses them must not stop the locks (nor paging)
            conn.execute(f"SET tcp_keepalives_idle = {KEEPALIVE_IDLE_SECONDS}; "
                         f"SET tcp_keepalives_interval = {KEEPALIVE_INTERVAL_SECONDS}; "
                         f"SET tcp_keepalives_count = {KEEPALIVE_COUNT}")
        except psycopg.Error as exc:
            log.warning("lock database %s refused the TCP keepalive settings (%s): a host that vanishes holding "
                        "a key's lock keeps it until the server notices on its own", self.where, self._clean(exc))
        self._local.conn = conn
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _clean(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split())
        return text.replace(self._password, "***") if self._password else text

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Wait for the lock on ``key`` (another worker's call with it ends first), hold it inside. A key
        whose last wait ran out is waited for only STUCK_WAIT_SECONDS, until this process takes it again."""
        conn = self._connection()
        stuck = key in self._stuck
        try:
            if stuck:
                conn.execute(f"SET lock_timeout = '{int(min(STUCK_WAIT_SECONDS, self.wait_seconds) * 1000)}ms'")
            try:
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (NAMESPACE + key,))
            finally:
                if stuck:
                    self._restore(conn)
            if conn.closed:  # the timeout could not be put back: the session, and the lock, are gone
                raise QueueUnavailable(f"lock database {self.where}: the lock connection was lost; "
                                       "the event is tried again")
        except pg_errors.LockNotAvailable:
            self._stuck.add(key)
            raise KeyBusy(f"incident_key {key!r}: another worker has held its lock in {self.where} "
                          f"for over {self.wait_seconds:g} s; the event is tried again") from None
        except psycopg.Error as exc:
            raise QueueUnavailable(f"lock database {self.where}: {self._clean(exc)}") from None
        self._stuck.discard(key)
        with self._holding(conn, key):
            yield

    def _restore(self, conn: psycopg.Connection[Any]) -> None:
        """The whole wait back on ``conn``; a connection that cannot take it is closed, never left with the
        short one (every later key's wait would run out in STUCK_WAIT_SECONDS)."""
        try:
            conn.execute(f"SET lock_timeout = '{int(self.wait_seconds * 1000)}ms'")
        except psycopg.Error:
            conn.close()

    @contextmanager
    def try_hold(self, key: str) -> Iterator[bool]:
        """Take the lock on ``key`` only if no other session has it: True inside (and held), else False."""
        conn = self._connection()
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (NAMESPACE + key,)).fetchone()
        except psycopg.Error as exc:
            raise QueueUnavailable(f"lock database {self.where}: {self._clean(exc)}") from None
        if not (row and row[0]):
            yield False
            return
        with self._holding(conn, key):
            yield True

    @contextmanager
    def _holding(self, conn: psycopg.Connection[Any], key: str) -> Iterator[None]:
        """Inside: ``key``'s lock, taken by ``conn``; let go on the way out, whatever happened."""
        try:
            yield
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (NAMESPACE + key,))
            except psycopg.Error:
                conn.close()  # the session, and the lock with it, is gone either way

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class KeyLocked:
    """A backend whose calls for an incident_key take turns across every process on the database
    (engine.dispatch.dispatcher.Backend, delegating to ``inner``)."""

    def __init__(self, inner: Backend, locks: KeyLocks):
        self.inner, self.locks = inner, locks

    @property
    def view(self) -> IncidentView:
        return self.inner.view

    @property
    def notifier(self) -> Announcer:
        return self.inner.notifier

    def turn(self, incident_key: str) -> AbstractContextManager[None]:
        """The key's turn for a whole decision (engine.dispatch.dispatcher.KeyTurns): a wake-up's take of a
        hold, its page and its release; a recovery's cancel of that hold and its resolve. The calls below take
        the lock again inside it, which a session's advisory locks allow."""
        return self.locks.hold(incident_key)

    def try_turn(self, incident_key: str) -> AbstractContextManager[bool]:
        """The key's turn for a wake-up's decision, only if free now (KeyTurns.try_turn)."""
        return self.locks.try_hold(incident_key)

    def create(self, action: TriggerAction, route: Route | None = None) -> Result:
        with self.locks.hold(action.incident_key):
            return self.inner.create(action, route)

    def resolve(self, action: ResolveAction) -> Result:
        if action.incident_key is None:
            return self.inner.resolve(action)
        with self.locks.hold(action.incident_key):
            return self.inner.resolve(action)

    def acknowledge(self, incident_key: str) -> Result:
        with self.locks.hold(incident_key):
            return self.inner.acknowledge(incident_key)

    def add_note(self, incident_key: str, text: str) -> str | None:
        """A note on the key's incident (README "Flap control"), taking its turn like a create; a backend that
        takes no notes adds none. (A session's advisory locks stack, so a call nested in another of the same
        key cannot wait on itself.)"""
        if not isinstance(self.inner, NoteTaker):
            return None
        with self.locks.hold(incident_key):
            return self.inner.add_note(incident_key, text)

    def change(self, action: ChangeAction, route: Route | None = None) -> Result:
        return self.inner.change(action, route)  # a change event opens nothing: no key to guard

    def reconcile(self) -> dict[str, int]:
        return self.inner.reconcile()

    def with_actor(self, actor: str) -> Backend:
        return KeyLocked(self.inner.with_actor(actor), self.locks)
