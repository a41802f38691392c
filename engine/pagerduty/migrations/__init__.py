"""The state's schema as numbered migrations, one logical schema for SQLite and PostgreSQL.

Each migration is applied once, in order, in its own transaction, and recorded in
``schema_version``; a state opened by pagerules applies what it lacks. A state written
before versioning (no ``schema_version`` table) was created by the CREATE statements
of migrations 1 and 2, so every statement of those is ``IF NOT EXISTS``: applying them
to such a state changes nothing it has and adds what it lacks. Later migrations run only
on a state recorded below their version, so they need no such guard (SQLite has no
``ADD COLUMN IF NOT EXISTS``).

Add a migration by appending to MIGRATIONS; never edit one that has shipped (a state
that applied it would not apply the change).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, dialect: str) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgresql


# Times are seconds since the epoch as a float: REAL in SQLite is 8 bytes, in PostgreSQL it
# is 4 (about 7 digits, a minute's precision on today's clock), hence DOUBLE PRECISION there.
_LABELS = ("CREATE TABLE IF NOT EXISTS incident_labels ("
           " name TEXT NOT NULL, value TEXT NOT NULL, incident_key TEXT NOT NULL,"
           " PRIMARY KEY (name, value, incident_key))",
           "CREATE INDEX IF NOT EXISTS incident_labels_key ON incident_labels (incident_key)")


def _incidents(real: str) -> str:
    return ("CREATE TABLE IF NOT EXISTS incidents ("
            " incident_key TEXT PRIMARY KEY, incident_id TEXT, rule TEXT NOT NULL, severity TEXT NOT NULL,"
            " title TEXT NOT NULL, labels TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'triggered',"
            f" opened_at {real} NOT NULL, confirmed_at {real} NOT NULL)")


def _files(real: str) -> str:
    return ("CREATE TABLE IF NOT EXISTS files_in_progress ("
            f" file TEXT PRIMARY KEY, units INTEGER NOT NULL, problems TEXT NOT NULL, at {real} NOT NULL)")


def _audit(real: str, key: str) -> str:
    return ("CREATE TABLE IF NOT EXISTS audit ("
            f" id {key}, at {real} NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
            " incident_key TEXT, incident_id TEXT, detail TEXT NOT NULL DEFAULT '{}')")


def _silences(real: str) -> str:
    return ("CREATE TABLE silences ("
            " id TEXT PRIMARY KEY, matchers TEXT NOT NULL, created_by TEXT NOT NULL, comment TEXT NOT NULL,"
            f" starts_at {real} NOT NULL, ends_at {real} NOT NULL, created_at {real} NOT NULL, weekly TEXT)")


# A running daemon reads the silences not yet ended: an index range, so expired ones cost nothing.
_SILENCES_ENDING = "CREATE INDEX silences_ending ON silences (ends_at)"


def _queue(real: str, key: str) -> str:
    """The shared work queue (engine/pagerduty/queue.py): one row per input object, kept when finished
    (done, or failed with its reason) as processed/ and failed/ keep files."""
    return ("CREATE TABLE event_queue ("
            f" id {key}, ordering_key TEXT NOT NULL, body TEXT NOT NULL, default_type TEXT,"
            " source TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'todo', attempts INTEGER NOT NULL DEFAULT 0,"
            f" available_at {real} NOT NULL, claimed_by TEXT, lease_until {real},"
            " units_done INTEGER NOT NULL DEFAULT 0, problems TEXT NOT NULL DEFAULT '[]', error TEXT,"
            f" enqueued_at {real} NOT NULL, finished_at {real})")


# Workers read unfinished rows only: partial indexes, so finished rows cost a claim nothing. The second
# answers "is an earlier event of this ordering key unfinished?"; the third, "was this file enqueued?".
_QUEUE_INDEXES = ("CREATE INDEX event_queue_unfinished ON event_queue (id) WHERE status IN ('todo', 'doing')",
                  "CREATE INDEX event_queue_order ON event_queue (ordering_key, id)"
                  " WHERE status IN ('todo', 'doing')",
                  "CREATE INDEX event_queue_source ON event_queue (source)")


def _pending(real: str) -> str:
    """Triggers held by their rule's ``for:`` (README "Pending triggers"): what each would page with."""
    return ("CREATE TABLE pending_triggers ("
            " incident_key TEXT PRIMARY KEY, rule TEXT NOT NULL, title TEXT NOT NULL, severity TEXT NOT NULL,"
            " labels TEXT NOT NULL, details TEXT NOT NULL, links TEXT NOT NULL, event_id TEXT NOT NULL,"
            f" held_at {real} NOT NULL, due_at {real} NOT NULL)")


# The daemon asks every tick whether a hold is due: the earliest ``due_at`` from an index.
_PENDING_DUE = "CREATE INDEX pending_triggers_due ON pending_triggers (due_at)"


def _repeat_control(real: str) -> tuple[str, ...]:
    """Repeat control and flap control (README "Repeat control", "Flap control"): each incident keeps its
    rule's ``renotify:``; the keys a person resolved (while a wait can matter); each flap rule's key's
    recent opens; and the resolves held for a flapping key. Each expiring table has an index on when its
    rows stop mattering, so pruning them is an index range. A trigger held by ``for:`` keeps its rule's
    ``renotify:`` and ``flap:``, so the page the wake-up sends honours them. A wake-up takes a due hold
    with a lease (its ``due_at`` moved forward) and removes it once decided; ``taken`` marks a hold so
    taken (a recovery that cancels it still resolves, after the page), and a held resolve so taken (and
    whether its key fired again meanwhile)."""
    return (f"ALTER TABLE incidents ADD COLUMN renotify {real}",
            f"ALTER TABLE pending_triggers ADD COLUMN renotify {real}",
            "ALTER TABLE pending_triggers ADD COLUMN flap_opens INTEGER",
            f"ALTER TABLE pending_triggers ADD COLUMN flap_within {real}",
            "ALTER TABLE pending_triggers ADD COLUMN taken INTEGER NOT NULL DEFAULT 0",
            "CREATE TABLE hand_resolved ("
            " incident_key TEXT PRIMARY KEY, rule TEXT NOT NULL, labels TEXT NOT NULL,"
            f" paged_at {real} NOT NULL, resolved_at {real} NOT NULL, expires_at {real} NOT NULL)",
            "CREATE INDEX hand_resolved_expiring ON hand_resolved (expires_at)",
            "CREATE TABLE flap_opens ("
            " incident_key TEXT PRIMARY KEY, opens TEXT NOT NULL, flap_opens INTEGER NOT NULL,"
            f" flap_within {real} NOT NULL, expires_at {real} NOT NULL)",
            "CREATE INDEX flap_opens_expiring ON flap_opens (expires_at)",
            "CREATE TABLE held_resolves ("
            " incident_key TEXT PRIMARY KEY, rule TEXT NOT NULL, event_id TEXT NOT NULL, message TEXT NOT NULL,"
            f" opens INTEGER NOT NULL, held_at {real} NOT NULL, due_at {real} NOT NULL,"
            " taken INTEGER NOT NULL DEFAULT 0)",
            "CREATE INDEX held_resolves_due ON held_resolves (due_at)")


# Retention deletes the oldest done rows a batch at a time, every minute: an index range over done rows
# only, so its cost stays that of the batch however long the queue's history is.
_QUEUE_DONE = "CREATE INDEX event_queue_done ON event_queue (finished_at) WHERE status = 'done'"


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "incidents, their labels, the daemon's progress and the audit trail",
        sqlite=(_incidents("REAL"), *_LABELS, "DROP TABLE IF EXISTS events_done", _files("REAL"),
                _audit("REAL", "INTEGER PRIMARY KEY AUTOINCREMENT")),
        postgresql=(_incidents("DOUBLE PRECISION"), *_LABELS, _files("DOUBLE PRECISION"),
                    _audit("DOUBLE PRECISION", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")),
    ),
    Migration(
        2, "open incidents listed oldest first from an index (issue 17)",
        sqlite=("CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_at, incident_key)",),
        postgresql=("CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_at, incident_key)",),
    ),
    Migration(
        3, "each incident keeps its page in PagerDuty, html_url (issue 14)",
        sqlite=("ALTER TABLE incidents ADD COLUMN html_url TEXT",),
        postgresql=("ALTER TABLE incidents ADD COLUMN html_url TEXT",),
    ),
    Migration(
        4, "silences: matchers, who and why, when, and a weekly window (issue 15)",
        sqlite=(_silences("REAL"), _SILENCES_ENDING),
        postgresql=(_silences("DOUBLE PRECISION"), _SILENCES_ENDING),
    ),
    Migration(
        5, "a shared work queue of events for several workers (issue 18); used on PostgreSQL only",
        sqlite=(_queue("REAL", "INTEGER PRIMARY KEY AUTOINCREMENT"), *_QUEUE_INDEXES),
        postgresql=(_queue("DOUBLE PRECISION", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
                    *_QUEUE_INDEXES),
    ),
    Migration(
        6, "pending triggers: first pages held by a rule's for: (issue 15)",
        sqlite=(_pending("REAL"), _PENDING_DUE),
        postgresql=(_pending("DOUBLE PRECISION"), _PENDING_DUE),
    ),
    Migration(
        7, "repeat control and flap control: renotify per incident, resolves by hand, opens, held resolves "
           "(issue 15)",
        sqlite=_repeat_control("REAL"),
        postgresql=_repeat_control("DOUBLE PRECISION"),
    ),
    Migration(
        8, "the queue's done rows pruned from an index (issue 18)",
        sqlite=(_QUEUE_DONE,),
        postgresql=(_QUEUE_DONE,),
    ),
)

LATEST = MIGRATIONS[-1].version

VERSION_TABLE = {
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_version ("
              " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)",
    "postgresql": "CREATE TABLE IF NOT EXISTS schema_version ("
                  " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)",
}
