"""Prometheus metrics (README "Metrics"), kept with prometheus_client in one registry for the process.

One process runs one `serve` or `watch`, so the metrics are module-level, as prometheus_client's own
documentation defines them; they live in a registry of our own (not the library's global one) so that
`GET /metrics` shows pagerules' figures and the process's, nothing an imported library registered.
Tests read a value before and after an action (`value()`), never an absolute count.

The daemon's own figures (files handled and pending, rules loaded, the last reload) are kept once, in
a `Figures` object its status file owns: the status file (`pagerules status`), `/healthz` and
`/metrics` all read that one object, so the three never disagree (README "Metrics").
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()
process_collector.ProcessCollector(registry=REGISTRY)
platform_collector.PlatformCollector(registry=REGISTRY)
gc_collector.GCCollector(registry=REGISTRY)

EVENTS = Counter("pagerules_events_total", "Outcomes of handled events, by event type and outcome status "
                 "(one event may have several outcomes; a rejected event counts as type 'unknown' when it has none)",
                 ["type", "outcome"], registry=REGISTRY)
PAGERDUTY_REQUESTS = Counter("pagerules_pagerduty_requests_total", "Calls to PagerDuty, by endpoint and HTTP status "
                             "('error' when no answer came)", ["endpoint", "status"], registry=REGISTRY)
PAGERDUTY_DURATION = Histogram("pagerules_pagerduty_request_duration_seconds", "Time of a PagerDuty call, retries "
                               "included", ["endpoint"], registry=REGISTRY,
                               buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
CHANNEL_FAILURES = Counter("pagerules_channel_failures_total", "Announcements a channel could not deliver",
                           ["channel"], registry=REGISTRY)

SILENCES_ACTIVE = Gauge("pagerules_silences_active", "Silences in force now (started, not yet ended or expired)",
                        registry=REGISTRY)

# The daemon's figures, as its status file names them. Counts start at 0; the reload figures are None
# until the first load (serve alone has no daemon: they stay None and /metrics shows them as 0).
FIGURES = {"files_processed": 0, "files_failed": 0, "files_pending": 0, "rules_loaded": None,
           "last_reload_successful": None, "rules_loaded_at": None}


class Figures:
    """One daemon's figures: its status file writes them, /healthz and /metrics read them (one source).

    ``values`` holds everything the status file shows (FIGURES and the daemon's other facts: state,
    ruleset version, errors); a copy is taken under a lock, since the web thread reads while the daemon
    writes. ``on_change(force)`` tells the owner (the status file) to write."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {**FIGURES, **(values or {})}
        self.owner: object = None  # what these figures describe: the daemon's events folder
        self.on_change: Callable[[bool], None] | None = None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._values.get(key, default)

    def set(self, force: bool = False, notify: bool = True, **values: Any) -> bool:
        """Set figures; True (and the owner told, unless ``notify`` is False) if one changed."""
        with self._lock:
            changed = any(self._values.get(k, _MISSING) != v for k, v in values.items())
            self._values.update(values)
        if changed and notify and self.on_change is not None:
            self.on_change(force)
        return changed

    def add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount
        if self.on_change is not None:
            self.on_change(False)


_MISSING = object()
_live = Figures()


def live() -> Figures:
    """The figures of this process's daemon (the last one installed; without a daemon, all at rest)."""
    return _live


def install(figures: Figures) -> None:
    """Make ``figures`` the ones /metrics shows: one daemon runs in one process."""
    global _live
    _live = figures


class _DaemonCollector(Collector):
    """/metrics' view of `live()`: read at each scrape, so it is what the status file and /healthz say."""

    def collect(self) -> Iterator[Metric]:
        now = live().snapshot()

        def number(key: str) -> float:
            found = now.get(key)
            return 0.0 if found is None else float(found)

        def gauge(name: str, documentation: str, key: str) -> GaugeMetricFamily:
            # None (no load yet: `serve` alone has no daemon) is no sample, so the reload alert cannot fire on it
            family = GaugeMetricFamily(name, documentation)
            if now.get(key) is not None:
                family.add_metric([], number(key))
            return family

        yield gauge("pagerules_events_pending", "Event files waiting in the events folder (held for a retry "
                    "included)", "files_pending")
        yield gauge("pagerules_rules_loaded", "Rules in force (triggers and recoveries)", "rules_loaded")
        yield gauge("pagerules_config_last_reload_successful", "1 if the last load of rules and config worked, 0 "
                    "if it failed and the previous rules are still in force", "last_reload_successful")
        yield gauge("pagerules_config_last_reload_success_timestamp_seconds", "When rules and config were last "
                    "loaded successfully (Unix time)", "rules_loaded_at")
        files = CounterMetricFamily("pagerules_event_files", "Event files the daemon handled, by the folder they "
                                    "went to", labels=["folder"])
        files.add_metric(["processed"], number("files_processed"))
        files.add_metric(["failed"], number("files_failed"))
        yield files


REGISTRY.register(_DaemonCollector())

# PagerDuty ids in a path become a placeholder, so the endpoint label stays a handful of values.
_ID = re.compile(r"/(incidents|services|escalation_policies|users)/(?!me\b)[^/]+")


def endpoint(method: str, path: str) -> str:
    """``POST /incidents/PABC123/notes`` -> ``POST /incidents/{id}/notes``."""
    return f"{method} {_ID.sub(lambda m: f'/{m.group(1)}/{{id}}', path.split('?', 1)[0])}"


def observe_pagerduty(method: str, path: str, status: int | None, seconds: float) -> None:
    """One PagerDuty call: its status (``error`` when none came back) and how long it took."""
    name = endpoint(method, path)
    PAGERDUTY_REQUESTS.labels(name, "error" if status is None else str(status)).inc()
    PAGERDUTY_DURATION.labels(name).observe(seconds)


def count_outcome(event_type: str, outcome: str) -> None:
    """One outcome of a handled event (``build``, ``created``)."""
    EVENTS.labels(event_type, outcome).inc()


def observe_reload(ok: bool, at: float, rules: int | None = None) -> None:
    """A load of the rules and config: success (with the number of rules now in force) or failure."""
    values: dict[str, Any] = {"last_reload_successful": ok}
    if ok:
        values["rules_loaded_at"] = at
        if rules is not None:
            values["rules_loaded"] = rules
    live().set(force=True, **values)


def observe_silences(active: int) -> None:
    """How many silences are in force now."""
    SILENCES_ACTIVE.set(active)


def channel_failures() -> int:
    """Announcements no channel could deliver, all channels together, as /metrics counts them."""
    return int(sum(sample.value for family in CHANNEL_FAILURES.collect() for sample in family.samples
                   if sample.name == "pagerules_channel_failures_total"))


def exposition() -> tuple[bytes, str]:
    """The body and content type of ``GET /metrics``."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def value(name: str, **labels: str) -> float:
    """One sample's current value (0 when it has none yet): for `pagerules status` and tests."""
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found
