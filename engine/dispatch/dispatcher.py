"""Action -> outcome line: the gates of README "Configuration" and "Output and exit status", then the backend.

The gates are the same for a dry run and a live run, in this order:
trigger: below the severity threshold -> disabled -> backend (already open: deduplicated; else create);
resolve: auto-resolve off -> disabled -> backend (nothing open; else resolve).
A dry run differs only in its backend: it plans, and remembers what it planned;
the live one (engine/pagerduty/backend.py) asks the state and PagerDuty.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine import severity as sev
from engine.config import Config
from engine.evaluation.actions import Action, ErrorAction, OpenIncident, ResolveAction, TriggerAction


class MemoryView:
    """Open incidents in memory, indexed by key and by label value, for dry runs and tests."""

    def __init__(self, incidents: Iterable[OpenIncident] = ()):
        self._open: dict[str, OpenIncident] = {}
        self._by_label: dict[tuple[str, str], set[str]] = {}
        for incident in incidents:
            self.open(incident)

    def get(self, incident_key: str) -> OpenIncident | None:
        return self._open.get(incident_key)

    def any_with(self, label: str, values: tuple[str, ...]) -> bool:
        if len(values) == 1:
            return (label, values[0]) in self._by_label  # entries are dropped when they empty
        return any((label, v) in self._by_label for v in values)

    def select(self, labels: Mapping[str, tuple[str, ...]]) -> list[OpenIncident]:
        if not labels:
            return []
        keys: set[str] | None = None
        for name, values in labels.items():
            found = self._with_label(name, values)
            keys = found if keys is None else keys & found
            if not keys:
                return []
        return [self._open[k] for k in sorted(keys or ())]

    def _with_label(self, name: str, values: tuple[str, ...]) -> set[str]:
        if len(values) == 1:
            return self._by_label.get((name, values[0]), set())
        return set().union(*(self._by_label.get((name, v), set()) for v in values))

    def open(self, incident: OpenIncident) -> None:
        self.close(incident.incident_key)
        self._open[incident.incident_key] = incident
        for item in incident.labels.items():
            self._by_label.setdefault(item, set()).add(incident.incident_key)

    def close(self, incident_key: str) -> None:
        incident = self._open.pop(incident_key, None)
        for item in (incident.labels.items() if incident else ()):
            keys = self._by_label.get(item)
            if keys is not None:
                keys.discard(incident_key)
                if not keys:  # drop the entry, or the index grows with every label value ever seen
                    del self._by_label[item]

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
        if self.view.get(action.incident_key) is not None:
            return {"status": "deduplicated"}
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
        self._threshold = sev.rank(config.severity_threshold)

    def handle(self, action: Action) -> list[dict[str, Any]]:
        """The outcome line of an action, after the error lines of any template it rendered on the way."""
        if isinstance(action, TriggerAction):
            line = self._trigger(action)
            if action._extras is not None and action._extras.errors:
                return [error_line(e) for e in action._extras.errors] + [line]
            return [line]
        if isinstance(action, ResolveAction):
            return [self._resolve(action)]
        return [error_line(action)]

    def _trigger(self, action: TriggerAction) -> dict[str, Any]:
        line = {"action": "trigger", "status": "", "incident_key": action.incident_key, "title": action.title,
                "severity": action.severity, "rule": action.rule, "event_id": action.event_id}
        if sev.rank(action.severity) < self._threshold:
            line["status"] = "below_threshold"
        elif not self.config.enabled:
            line["status"] = "disabled"
        else:  # the backend knows what is open: created/planned, deduplicated or failed
            line.update(self.backend.create(action))
        return line

    def _resolve(self, action: ResolveAction) -> dict[str, Any]:
        line: dict[str, Any] = {"action": "resolve", "status": "", "incident_key": action.incident_key,
                                "rule": action.rule, "event_id": action.event_id, "message": action.message}
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

