"""Shared fixtures: the shipped ruleset, the fake PagerDuty and the process's one PostgreSQL cluster (the
builders are in tests/builders.py).

Session fixtures are per test process: under pytest-xdist (README "Run the tests") each worker has its own,
on ports the kernel picks and in folders of its own, so workers share nothing but the read-only checkout.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from builders import shipped_rules
from fake_pagerduty import FakePagerDuty
from pg_server import PgServer, throwaway_server

from engine.language.model import RuleSet


@pytest.fixture(scope="session")
def ruleset() -> RuleSet:
    return shipped_rules()


@pytest.fixture
def fake() -> Iterator[FakePagerDuty]:
    """The project's fake PagerDuty on a loopback port; ``fake.url`` is its base URL."""
    pd = FakePagerDuty()
    pd.url = pd.start()  # type: ignore[attr-defined]
    yield pd
    pd.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgServer]:
    """One throwaway PostgreSQL cluster for the whole process, started when a test first needs it; test
    modules ask for it as ``pg_server`` (tests/pg_server.py), which every one of them shares."""
    with throwaway_server() as server:
        yield server
