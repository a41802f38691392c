"""The one event -> outcomes path (engine/dispatch/pipeline.py): typing, expanding, counting, warning once per run."""
from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from builders import make_config, rules_from, shipped_rules

from engine.dispatch.dispatcher import Dispatcher, DryRun
from engine.dispatch.pipeline import Pipeline
from engine.events.stream import read_events

WARNING = "no rules handle event type build: nothing will page for it (is its rule pack on? --packs build)"
DEPLOYS_ONLY = "triggers:\n  - id: only-deploys\n    on: deploy.health\n    severity: high\n    title: x\n" \
               "    incident_key: x\n"


def build(number: int, status: str = "failed", **fields: Any) -> dict[str, Any]:
    return {"type": "build", "id": f"b{number}", "repo": "acme/api", "branch": "main", "build_number": number,
            "status": status, **fields}


def items(*events: dict[str, Any] | str) -> Any:
    text = "\n".join(e if isinstance(e, str) else json.dumps(e) for e in events)
    return read_events(io.StringIO(text), "stdin")


def dry(ruleset: Any = None) -> Pipeline:
    config = make_config()
    return Pipeline(ruleset or shipped_rules(config), Dispatcher(config, DryRun()))


def test_a_run_counts_inputs_and_outcomes_and_fails_on_a_rejected_event() -> None:
    pipeline = dry()
    lines = list(pipeline.lines(items(build(1), build(2, "passed"), "{bad")))
    assert [(line["action"], line["status"]) for line in lines] == [
        ("trigger", "planned"), ("resolve", "planned"), ("error", "rejected")]
    assert pipeline.tally.events == 3 and pipeline.tally.failed
    assert pipeline.tally.summary() == "3 events, 1 triggers (1 planned), 1 resolves (1 planned), 1 errors"


def test_an_untyped_event_takes_the_default_type_and_a_typed_one_keeps_its_own() -> None:
    untyped = {k: v for k, v in build(1).items() if k != "type"}
    outcomes = list(dry().run(items(untyped), default_type="build"))
    assert [(o.action, o.status.value) for o in outcomes] == [("trigger", "planned")]
    rejected = list(dry().run(items(build(2) | {"type": "deploy.health"}), default_type="build"))
    assert [o.action for o in rejected] == ["error"] and "deploy.health" in (rejected[0].error or "")


def test_each_run_warns_once_per_unhandled_type_and_hears_of_every_event(caplog: pytest.LogCaptureFixture) -> None:
    ruleset = rules_from(DEPLOYS_ONLY, make_config())
    heard: list[str] = []
    with caplog.at_level(logging.WARNING, "pagerules"):
        first = Pipeline(ruleset, Dispatcher(make_config(), DryRun()), on_unhandled=heard.append)
        list(first.run(items(build(1), build(2))))
        second = dry(ruleset)  # a run of its own: its own warning
        list(second.run(items(build(3))))
    assert [r.getMessage() for r in caplog.records].count(WARNING) == 2
    assert heard == ["build", "build"]


def test_a_daemon_passes_its_own_set_so_a_reload_does_not_warn_again(caplog: pytest.LogCaptureFixture) -> None:
    ruleset, warned = rules_from(DEPLOYS_ONLY, make_config()), set[str]()
    with caplog.at_level(logging.WARNING, "pagerules"):
        for number in (1, 2):  # a pipeline per load, as after a reload
            Pipeline(ruleset, Dispatcher(make_config(), DryRun()), warned=warned).outcomes(build(number))
    assert [r.getMessage() for r in caplog.records].count(WARNING) == 1 and warned == {"build"}


def test_outcomes_of_one_event_are_the_same_as_a_run_gives() -> None:
    one = dry().outcomes(build(7))
    assert [o.to_line() for o in one] == list(dry().lines(items(build(7))))


def test_a_meter_hears_every_outcome_with_its_event_type_and_unreadable_input_as_unknown() -> None:
    config = make_config()
    heard: list[tuple[str, str]] = []
    pipeline = Pipeline(shipped_rules(config), Dispatcher(config, DryRun()), meter=lambda t, o: heard.append((t, o)))
    text = ('{"type": "build", "id": "b1", "repo": "acme/api", "branch": "main", "build_number": 1, '
            '"status": "failed"}\n{"type": "build", "id": "b2"}\n{not json\n')
    list(pipeline.run(read_events(io.StringIO(text), "stdin")))
    assert heard == [("build", "planned"), ("build", "rejected"), ("unknown", "rejected")]
