"""The state's silences for a dry run (README "Silences and maintenance windows"), read without writing.

`process --dry-run` and `explain` mute what a live run would: they read the silences from the
configured state (``--state``, else state_url, else state_path), read-only and only if it is there.
They never create, migrate or lock a state: an SQLite file that does not exist is no silences; one is
opened with ``mode=ro`` (``immutable`` when no write-ahead log is beside it, so not even the ``-wal``
and ``-shm`` files a daemon would then own are made); PostgreSQL in a read-only session. A state from
before silences existed has none. A state that cannot be read is a warning naming it (never a
password) and the dry run goes on unsilenced, as it was before silences were read: it prints every
event's line either way.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from engine.config import Config
from engine.language.silences import Silence
from engine.pagerduty.records import SILENCE_COLUMNS, is_postgresql_url, silence_from_row

CONNECT_TIMEOUT_SECONDS = 5
_QUERY = f"SELECT {SILENCE_COLUMNS} FROM silences ORDER BY starts_at, id"  # soonest-started first, as the gate wants


@dataclass(frozen=True)
class StateSilences:
    """What was read: every silence the state holds (events may be from any time), and why none could be."""

    silences: tuple[Silence, ...] = ()
    warning: str | None = None


def state_silences(config: Config, override: str | None = None) -> StateSilences:
    """The silences of the state the config names (``override``: --state), every one ever made, since a
    dry run's events are timed by their own ``time`` and the gate picks the ones active then."""
    target = override or config.state_url or config.state_path
    if is_postgresql_url(target):
        return _from_postgresql(target)
    return _from_sqlite(target)


def _from_sqlite(target: str) -> StateSilences:
    path = Path(target)
    if target == ":memory:" or not path.exists():
        return StateSilences()  # no state yet: nothing was ever silenced, and none is made
    wal = Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(uri, uri=True, timeout=CONNECT_TIMEOUT_SECONDS)
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'silences'").fetchall():
            return StateSilences()  # a state from before silences (migration 4): none to honour
        rows = db.execute(_QUERY).fetchall()
    except (sqlite3.Error, OSError) as exc:
        return StateSilences(warning=_unread(f"state file {target}", str(exc)))
    finally:
        if db is not None:
            db.close()
    return _parsed(rows, f"state file {target}")


def _from_postgresql(url: str) -> StateSilences:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from engine.pagerduty.pgstate import describe

    shown, password = describe(url)

    def clean(exc: BaseException) -> str:
        text = " ".join(str(exc).split())
        return text.replace(password, "***") if password else text

    try:
        given = str(conninfo_to_dict(url).get("options") or "")  # keep the URL's own (a search_path)
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                             application_name="pagerules dry run",
                             options=f"{given} -c default_transaction_read_only=on".strip()) as conn:
            found = conn.execute("SELECT to_regclass('silences') IS NOT NULL").fetchone()
            if not found or not found[0]:
                return StateSilences()
            rows = conn.execute(_QUERY).fetchall()
    except psycopg.Error as exc:
        return StateSilences(warning=_unread(f"state database {shown}", clean(exc)))
    return _parsed([tuple(r) for r in rows], f"state database {shown}")


def _parsed(rows: list[tuple[object, ...]], where: str) -> StateSilences:
    """Each stored silence compiled again; one that no longer reads (a matcher this release refuses) is
    left out and named, the others still mute."""
    silences: list[Silence] = []
    bad: list[str] = []
    for row in rows:
        try:
            silences.append(silence_from_row(row))
        except Exception:  # noqa: BLE001  # one bad row must not cost the dry run the others
            bad.append(str(row[0]))
    warning = None
    if bad:
        warning = (f"{where}: cannot read silence(s) {', '.join(bad)}; the dry run does not honour them "
                   "(pagerules silence list shows them)")
    return StateSilences(tuple(silences), warning)


def _unread(where: str, why: str) -> str:
    return f"{where}: cannot read its silences ({why}); the dry run goes on without them"
