"""The state in PostgreSQL (psycopg 3): the same API, schema and migrations as the SQLite file.

Chosen by ``state_url: postgresql://user@host:port/db`` (or PAGERULES_STATE_URL), so that
several pagerules processes on several machines share one state (README: Run it on more
than one machine). One connection per State, in autocommit, each change one transaction
(READ COMMITTED; writers of one incident take turns on its row lock); migrations hold an
advisory lock so that replicas starting together apply each one once. A connection that
broke (a restarted server) is opened again on the next call; the call that found it broken
fails with StateError, which the daemon already retries.

Errors name the server and database, never the password: the URL is shown rebuilt without it.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from engine.pagerduty.migrations import MIGRATIONS, Migration
from engine.pagerduty.records import Db, Rows
from engine.pagerduty.state import State, StateError

CONNECT_TIMEOUT_SECONDS = 10
# pg_advisory_xact_lock key for migrations: any constant that nothing else uses ("pagerules" in ASCII, cut).
MIGRATION_LOCK = 0x7061676572756C65 & 0x7FFFFFFFFFFFFFFF


@lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    """Our SQL uses ``?`` (sqlite3's style) and contains no ``%``: psycopg's placeholder is ``%s``."""
    return sql.replace("?", "%s")


class _PgDb:
    """A psycopg connection speaking the sqlite3 calls State uses (execute, executemany, ``?``)."""

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> Rows:
        cursor = self.conn.cursor()
        cursor.execute(_pg(sql), tuple(parameters) or None)
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        rows = [tuple(p) for p in parameters]
        if rows:
            with self.conn.cursor() as cursor:
                cursor.executemany(_pg(sql), rows)


def describe(url: str) -> tuple[str, str | None]:
    """The URL without its password (for messages), and the password (to scrub from server messages)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://(a URL that cannot be parsed)", None
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    password = parts.get("password")
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}", str(password) if password else None


class PgState(State):
    """One PostgreSQL database; safe to share between threads of one process, processes and machines."""

    dialect = "postgresql"

    def __init__(self, url: str, migrations: Sequence[Migration] = MIGRATIONS):
        self.url = url
        self.path, self._password = describe(url)
        self._lock = threading.RLock()
        self._conn = self._connect()
        self._migrate(migrations)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                   application_name="pagerules")
        except psycopg.Error as exc:
            raise StateError(f"cannot connect to the state database {self.path}: {self._clean(exc)}") from None

    def _clean(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split())  # libpq's messages run over several indented lines
        return text.replace(self._password, "***") if self._password else text

    def _live(self) -> psycopg.Connection[Any]:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def _lock_schema(self, db: Db) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    @contextmanager
    def transaction(self) -> Iterator[Db]:
        """BEGIN ... COMMIT, or ROLLBACK on any error; psycopg errors become StateError."""
        with self._lock:
            conn = self._live()
            try:
                with conn.transaction():
                    yield _PgDb(conn)
            except psycopg.Error as exc:
                raise StateError(f"state database {self.path}: {self._clean(exc)}") from None

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return _PgDb(self._live()).execute(sql, args).fetchall()
            except psycopg.Error as exc:
                raise StateError(f"state database {self.path}: {self._clean(exc)}") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()
