"""Prometheus metrics (README "Metrics"), kept with prometheus_client in one registry for the process.

One process runs one `serve` or `watch`, so the metrics are module-level, as prometheus_client's own
documentation defines them; they live in a registry of our own (not the library's global one) so that
`GET /metrics` shows pagerules' figures and the process's, nothing an imported library registered.
Tests read a value before and after an action (`value()`), never an absolute count.
"""
from __future__ import annotations

import re

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
EVENTS_PENDING = Gauge("pagerules_events_pending", "Event files waiting in the events folder (held for a retry "
                       "included)", registry=REGISTRY)
RULES_LOADED = Gauge("pagerules_rules_loaded", "Rules in force (triggers and recoveries)", registry=REGISTRY)
RELOAD_OK = Gauge("pagerules_config_last_reload_successful", "1 if the last load of rules and config worked, "
                  "0 if it failed and the previous rules are still in force", registry=REGISTRY)
RELOAD_OK_AT = Gauge("pagerules_config_last_reload_success_timestamp_seconds", "When rules and config were last "
                     "loaded successfully (Unix time)", registry=REGISTRY)
CHANNEL_FAILURES = Counter("pagerules_channel_failures_total", "Announcements a channel could not deliver",
                           ["channel"], registry=REGISTRY)

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
    RELOAD_OK.set(1 if ok else 0)
    if ok:
        RELOAD_OK_AT.set(at)
        if rules is not None:
            RULES_LOADED.set(rules)


def exposition() -> tuple[bytes, str]:
    """The body and content type of ``GET /metrics``."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def value(name: str, **labels: str) -> float:
    """One sample's current value (0 when it has none yet): for `pagerules status` and tests."""
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found
