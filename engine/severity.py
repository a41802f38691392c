"""Severities, lowest to highest, and the PagerDuty urgency each maps to."""
from __future__ import annotations

SEVERITIES = ("low", "medium", "high", "critical")
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


def is_severity(name: object) -> bool:
    return isinstance(name, str) and name in _RANK


def rank(name: str) -> int:
    """0 for low up to 3 for critical."""
    return _RANK[name]


def urgency(severity: str) -> str:
    """PagerDuty urgency: high for high and critical, low otherwise (README: Configuration)."""
    return "high" if rank(severity) >= rank("high") else "low"


def unknown_severity(value: object) -> str:
    return f"{value!r} is not a severity (known: {', '.join(SEVERITIES)})"
