"""Shared fixtures: the shipped ruleset and the fake PagerDuty (the builders are in tests/builders.py)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from builders import shipped_rules
from fake_pagerduty import FakePagerDuty

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
