"""Which state a config names, opened (migrations applied): the one place that chooses the backend."""
from __future__ import annotations

from engine.config import Config
from engine.pagerduty.records import Migrated, is_postgresql_url
from engine.pagerduty.state import State


def open_state(config: Config, override: str | None = None) -> State:
    """The state the config names: ``override`` (--state: a file or a postgresql:// URL) first, then
    state_url (PostgreSQL), then the SQLite file at state_path. Migrations are applied on open.
    psycopg is imported only for PostgreSQL."""
    target = override or config.state_url or config.state_path
    if is_postgresql_url(target):
        from engine.pagerduty.pgstate import PgState
        return PgState(target)
    return State(target)


def migrate_state(config: Config, override: str | None = None) -> Migrated:
    """``pagerules migrate``: open the state (which applies the migrations it lacks), close it, say what was done."""
    state = open_state(config, override)
    try:
        return state.migrated
    finally:
        state.close()
