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

from engine import metrics
from engine.language.model import RuleSet


@pytest.fixture(autouse=True)
def _daemon_figures_do_not_outlive_the_test() -> Iterator[None]:
    """A test that makes a daemon (a StatusFile) installs its figures as the process's live ones, and they
    write to that test's folder on each change; put back what was there so the next test in this process
    (whichever file xdist sends next) never writes into a folder of a test that has ended."""
    before = metrics.live()
    yield
    metrics.install(before)


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
