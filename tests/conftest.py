"""Shared helpers: the shipped rules, a config built from inline YAML, and a dry-run process."""
from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fake_pagerduty import FakePagerDuty

from engine.config import Config, load_config_text
from engine.dispatch.dispatcher import Dispatcher, DryRun
from engine.dispatch.pipeline import Tally, run
from engine.events.stream import read_events
from engine.language.model import RuleSet
from engine.language.rules import load_ruleset, load_ruleset_text

ROOT = Path(__file__).resolve().parent.parent


def make_config(yaml_text: str = "", env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """A Config from inline pagerduty.yaml text, with no environment unless given."""
    return load_config_text(yaml_text, str(ROOT / "pagerduty.yaml"), env=env or {}, overrides=overrides)


def shipped_rules(config: Config | None = None) -> RuleSet:
    return load_ruleset(config or make_config())


def rules_from(text: str, config: Config | None = None, filename: str = "rules/test.yaml") -> RuleSet:
    return load_ruleset_text({filename: text}, config or make_config())


def dry_run(events: Iterable[Mapping[str, Any]] | str, ruleset: RuleSet | None = None,
            config: Config | None = None) -> list[dict[str, Any]]:
    """Outcome lines of `process --dry-run` for these events (dicts or raw text)."""
    config = config or make_config()
    ruleset = ruleset or shipped_rules(config)
    text = events if isinstance(events, str) else "\n".join(json.dumps(e) for e in events)
    return list(run(read_events(io.StringIO(text), "stdin"), ruleset, Dispatcher(config, DryRun()), Tally()))


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
