"""Action -> outcome line: the gates of CONTRACT §1 and §4, then the backend.

The gates are the same for a dry run and a live run, in this order:
trigger: below the severity threshold -> disabled -> already open (deduplicated) -> create;
resolve: auto-resolve off -> disabled -> nothing open -> resolve.
A dry run differs only in its backend: it plans, and remembers what it planned.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine import severity as sev
from engine.actions import Action, ErrorAction, OpenIncident, ResolveAction, TriggerAction
from engine.config import Config


class MemoryView:
    """Open incidents in memory, indexed by key and by label value, for dry runs and tests."""

    def __init__(self, incidents: Iterable[OpenIncident] = ()):
        self._open: dict[str, OpenIncident] = {}
        self._by_label: dict[tuple[str, str], set[str]] = {}
        for incident in incidents:
            self.open(incident)

    def get(self, incident_key: str) -> OpenIncident | None:
        return self._open.get(incident_key)

    def select(self, labels: Mapping[str, frozenset[str]]) -> list[OpenIncident]:
        if not labels:
            return []
        keys: set[str] | None = None
        for name, values in labels.items():
            found = set().union(*(self._by_label.get((name, v), set()) for v in values)) if values else set()
            keys = found if keys is None else keys & found
            if not keys:
                return []
        return [self._open[k] for k in sorted(keys or ())]

    def open(self, incident: OpenIncident) -> None:
        self.close(incident.incident_key)
        self._open[incident.incident_key] = incident
        for item in incident.labels.items():
            self._by_label.setdefault(item, set()).add(incident.incident_key)

    def close(self, incident_key: str) -> None:
        incident = self._open.pop(incident_key, None)
        for item in (incident.labels.items() if incident else ()):
            self._by_label.get(item, set()).discard(incident_key)

    def __len__(self) -> int:
        return len(self._open)


class Backend(Protocol):
    """Where a gated action goes: a dry-run planner, or PagerDuty."""

    view: Any

    def create(self, action: TriggerAction) -> dict[str, Any]: ...

    def resolve(self, action: ResolveAction) -> dict[str, Any]: ...


@dataclass
class DryRun:
    """Plans actions and keeps the in-memory view they would leave behind. Contacts nothing."""

    view: MemoryView = field(default_factory=MemoryView)

    def create(self, action: TriggerAction) -> dict[str, Any]:
        self.view.open(OpenIncident(action.incident_key, dict(action.labels), action.rule, action.severity,
                                    action.title))
        return {"status": "planned"}

    def resolve(self, action: ResolveAction) -> dict[str, Any]:
        if action.incident_key is None or self.view.get(action.incident_key) is None:
            return {"status": "nothing_open"}
        self.view.close(action.incident_key)
        return {"status": "planned"}


class Dispatcher:
    """Turns actions into outcome lines (dicts), applying the config's gates."""

    def __init__(self, config: Config, backend: Backend):
        self.config = config
        self.backend = backend
        self.view = backend.view

    def handle(self, action: Action) -> dict[str, Any]:
        if isinstance(action, TriggerAction):
            return self._trigger(action)
        if isinstance(action, ResolveAction):
            return self._resolve(action)
        return error_line(action)

    def _trigger(self, action: TriggerAction) -> dict[str, Any]:
        line = {"action": "trigger", "status": "", "incident_key": action.incident_key, "title": action.title,
                "severity": action.severity, "rule": action.rule, "event_id": action.event_id}
        if sev.rank(action.severity) < sev.rank(self.config.severity_threshold):
            line["status"] = "below_threshold"
        elif not self.config.enabled:
            line["status"] = "disabled"
        elif (current := self.view.get(action.incident_key)) is not None:
            line["status"] = "deduplicated"
            if current.incident_id:
                line["incident_id"] = current.incident_id
        else:
            line.update(self.backend.create(action))
        return line

    def _resolve(self, action: ResolveAction) -> dict[str, Any]:
        line: dict[str, Any] = {"action": "resolve", "status": "", "incident_key": action.incident_key,
                                "rule": action.rule, "event_id": action.event_id, "message": action.message}
        if action.incident_key is None:
            line["selector"] = action.selector
        if not self.config.auto_resolve:
            line["status"] = "auto_resolve_off"
        elif not self.config.enabled:
            line["status"] = "disabled"
        else:
            line.update(self.backend.resolve(action))
        return line


def error_line(action: ErrorAction, status: str = "") -> dict[str, Any]:
    """``{"action": "error", ...}``: status ``rejected`` for a bad event, ``rule_error`` for a rule that failed."""
    line: dict[str, Any] = {"action": "error", "status": status or ("rule_error" if action.rule else "rejected")}
    if action.event_id is not None:
        line["event_id"] = action.event_id
    if action.rule:
        line["rule"] = action.rule
    line["error"] = action.error
    return line

