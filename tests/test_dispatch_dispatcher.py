"""The dispatcher's gates, table-driven: every status a trigger or a resolve can get, and from where."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from builders import make_config

from engine.dispatch.dispatcher import Dispatcher, DryRun, MemoryView, SilentNotifier
from engine.dispatch.outcomes import Result, Status
from engine.evaluation.actions import ErrorAction, Extras, OpenIncident, ResolveAction, TriggerAction
from engine.language.routes import Route

KEY = "codespar-acme-api-build-349"


def trigger(severity: str = "high", errors: list[ErrorAction] | None = None) -> TriggerAction:
    return TriggerAction("build-failed", "e1", KEY, "t", severity,
                         lambda: Extras({"repo": "acme/api"}, {}, list(errors or [])))


def resolve(key: str | None = KEY) -> ResolveAction:
    return ResolveAction("build-fixed", "e2", key, "fixed")


@dataclass
class Answering:
    """A backend that answers every call with ``result`` and records what reached it."""

    result: Result
    view: MemoryView = field(default_factory=MemoryView)
    notifier: SilentNotifier = field(default_factory=SilentNotifier)
    calls: list[str] = field(default_factory=list)

    def create(self, action: TriggerAction, route: Route | None = None) -> Result:
        self.calls.append("create")
        return self.result

    def resolve(self, action: ResolveAction) -> Result:
        self.calls.append("resolve")
        return self.result

    def acknowledge(self, incident_key: str) -> Result:
        self.calls.append("acknowledge")
        return self.result

    def reconcile(self) -> dict[str, int]:
        return {}

    def with_actor(self, actor: str) -> Answering:
        return self


GATED = [  # (settings, severity, status, whether the backend was asked)
    ({"severity_threshold": "high"}, "medium", Status.BELOW_THRESHOLD, False),
    ({"severity_threshold": "high", "enabled": False}, "low", Status.BELOW_THRESHOLD, False),  # threshold first
    ({"enabled": False}, "critical", Status.DISABLED, False),
    ({}, "high", Status.CREATED, True),
    ({}, "high", Status.FAILED, True),
]


@pytest.mark.parametrize(("settings", "severity", "status", "asked"), GATED)
def test_trigger_gates_threshold_then_enabled_then_the_backend(settings: dict[str, Any], severity: str,
                                                               status: Status, asked: bool) -> None:
    backend = Answering(Result(status if asked else Status.CREATED, error="boom" if status is Status.FAILED else None))
    config = make_config(**{"enabled": True, **settings})
    [outcome] = Dispatcher(config, backend).handle(trigger(severity))
    assert (outcome.action, outcome.status, backend.calls) == ("trigger", status, ["create"] if asked else [])


RESOLVE_GATED = [
    ({"auto_resolve": False}, Status.AUTO_RESOLVE_OFF, False),
    ({"auto_resolve": False, "enabled": False}, Status.AUTO_RESOLVE_OFF, False),  # auto-resolve first
    ({"enabled": False}, Status.DISABLED, False),
    ({}, Status.RESOLVED, True),
    ({}, Status.NOTHING_OPEN, True),
    ({}, Status.FAILED, True),
]


@pytest.mark.parametrize(("settings", "status", "asked"), RESOLVE_GATED)
def test_resolve_gates_auto_resolve_then_enabled_then_the_backend(settings: dict[str, Any], status: Status,
                                                                  asked: bool) -> None:
    backend = Answering(Result(status if asked else Status.RESOLVED))
    config = make_config(**{"enabled": True, "auto_resolve": True, **settings})
    [outcome] = Dispatcher(config, backend).handle(resolve())
    assert (outcome.action, outcome.status, backend.calls) == ("resolve", status, ["resolve"] if asked else [])


def test_a_dry_run_plans_then_deduplicates_then_resolves_once() -> None:
    dispatcher = Dispatcher(make_config(enabled=True), DryRun())
    statuses = [o.status for action in (trigger(), trigger(), resolve(), resolve(), resolve(None))
                for o in dispatcher.handle(action)]
    assert statuses == [Status.PLANNED, Status.DEDUPLICATED, Status.PLANNED, Status.NOTHING_OPEN,
                        Status.NOTHING_OPEN]


def test_a_dry_run_starts_from_the_incidents_it_is_given() -> None:
    view = MemoryView([OpenIncident(KEY, {"repo": "acme/api"}, "build-failed", "high", "t")])
    [outcome] = Dispatcher(make_config(), DryRun(view)).handle(trigger())
    assert outcome.status is Status.DEDUPLICATED


def test_template_errors_met_while_creating_come_before_the_trigger_line() -> None:
    failed = ErrorAction("e1", "labels.repo: 'x' is undefined", "build-failed")
    outcomes = Dispatcher(make_config(), DryRun()).handle(trigger(errors=[failed]))
    assert [(o.action, o.status) for o in outcomes] == [("error", Status.RULE_ERROR), ("trigger", Status.PLANNED)]
    assert outcomes[0].error == "labels.repo: 'x' is undefined" and outcomes[0].rule == "build-failed"


def test_a_duplicate_renders_no_labels_so_it_reports_no_template_errors() -> None:
    view = MemoryView([OpenIncident(KEY, {}, "build-failed", "high", "t")])
    failed = ErrorAction("e1", "labels.repo: 'x' is undefined", "build-failed")
    outcomes = Dispatcher(make_config(), DryRun(view)).handle(trigger(errors=[failed]))
    assert [o.status for o in outcomes] == [Status.DEDUPLICATED]


@pytest.mark.parametrize(("action", "status"), [
    (ErrorAction("e9", "deploy.health: 'repo' is a required property"), Status.REJECTED),
    (ErrorAction("e9", "when: division by zero", "deploy-errors"), Status.RULE_ERROR),
])
def test_an_error_action_is_an_error_line(action: ErrorAction, status: Status) -> None:
    [outcome] = Dispatcher(make_config(), DryRun()).handle(action)
    assert (outcome.action, outcome.status, outcome.error) == ("error", status, action.error)


def test_a_dry_run_acknowledges_only_what_it_has_open_and_reconciles_nothing() -> None:
    backend = DryRun()
    Dispatcher(make_config(), backend).handle(trigger())
    assert backend.acknowledge(KEY).status is Status.PLANNED
    assert backend.acknowledge("other").status is Status.NOTHING_OPEN
    assert backend.reconcile() == {"checked": 0, "resolved": 0, "acknowledged": 0, "failed": 0}
    backend.notifier.announce("triggered", {"incident_key": KEY})
    backend.notifier.flush()
    assert list(backend.notifier.failures) == []
