"""Every setting: its name in pagerduty.yaml, its environment variable, its default, and the one function
that reads and checks its value whatever the source (README: Configuration). engine/config.py applies them."""
from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine import severity

TITLE_FIELDS = {"severity", "Severity", "title"}


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise ValueError(f"expected text, got {value!r}")
    return str(value)


def _optional_text(value: Any) -> str | None:
    return None if value in (None, "") else _text(value)


def _header_value(value: Any) -> str | None:
    """A value sent in an HTTP header (a token, the From address): a stray newline or a non-ASCII
    character would otherwise fail every request and look like PagerDuty being down."""
    text = _optional_text(value)
    if text is None:
        return None
    if text != text.strip() or any(c.isspace() for c in text.strip(" ")):
        raise ValueError("contains a newline, tab or space at the ends; copy the value again without it")
    if not text.isascii() or not text.isprintable():
        raise ValueError("contains a character that is not printable ASCII; copy the value again")
    return text


def parse_bool(value: Any) -> bool:
    """true/false/1/0/yes/no in any case (README: Configuration)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true/false, 1/0 or yes/no)")


def _severity(value: Any) -> str:
    text = str(value).strip().lower()
    if not severity.is_severity(text):
        raise ValueError(severity.unknown_severity(value))
    return text


def _name_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"expected a list or comma-separated names, got {value!r}")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _title_format(value: Any) -> str:
    text = _text(value)
    names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    unknown = names - TITLE_FIELDS
    if unknown or "title" not in names:
        raise ValueError(f"{text!r} must use {{title}} and may use {{Severity}} and {{severity}} only")
    return text


def _state_url(value: Any) -> str | None:
    """A postgresql:// URL, or unset for the SQLite file at state_path (the message never shows the value:
    it may carry a password)."""
    text = _optional_text(value)
    if text is not None and not text.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// URL (leave it unset to keep the SQLite file at state_path)")
    return text


def _seconds(value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"{value!r} must not be negative")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


CHANNEL_EVENTS = ("triggered", "acknowledged", "resolved")


def _channels(value: Any) -> tuple[Mapping[str, Any], ...]:
    """``channels:`` entries: {name, url, kind: slack|json, announce: [triggered, acknowledged, resolved]}."""
    if not isinstance(value, list):
        raise ValueError(f"expected a list of channels, got {value!r}")
    out = []
    for number, item in enumerate(value):
        where = f"channels[{number}]"
        if not isinstance(item, dict) or not item.get("url") or not item.get("name"):
            raise ValueError(f"{where}: needs a name and a url")
        kind = item.get("kind", "slack")
        announce = tuple(item.get("announce", CHANNEL_EVENTS))
        if kind not in ("slack", "json"):
            raise ValueError(f"{where}.kind: {kind!r} is not slack or json")
        unknown = set(announce) - set(CHANNEL_EVENTS)
        if unknown:
            raise ValueError(f"{where}.announce: {sorted(unknown)} not in {list(CHANNEL_EVENTS)}")
        out.append({"name": str(item["name"]), "url": str(item["url"]), "kind": kind, "announce": announce})
    return tuple(out)


def _params(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {value!r}")
    return dict(value)


@dataclass(frozen=True)
class Setting:
    name: str
    env: str | None
    parse: Callable[[Any], Any]
    default: Any
    secret: bool = False  # never echo the value in an error


SETTINGS = (
    Setting("api_token", "PAGERDUTY_API_TOKEN", _header_value, None, secret=True),
    Setting("from_email", "PAGERDUTY_FROM_EMAIL", _header_value, None),
    Setting("service_id", "PAGERDUTY_SERVICE_ID", _optional_text, None),
    Setting("escalation_policy_id", "PAGERDUTY_ESCALATION_POLICY_ID", _optional_text, None),
    Setting("enabled", "PAGERDUTY_ENABLED", parse_bool, True),
    Setting("auto_resolve", "PAGERDUTY_AUTO_RESOLVE", parse_bool, True),
    Setting("severity_threshold", "PAGERDUTY_SEVERITY_THRESHOLD", _severity, "high"),
    Setting("dedup_key_prefix", "PAGERDUTY_DEDUP_KEY_PREFIX", _text, "codespar"),
    Setting("api_url", "PAGERDUTY_API_URL", _text, "https://api.pagerduty.com"),
    # Events API v2 (README: Routes): the key travels in the body, but a stray newline breaks it the same way.
    Setting("routing_key", "PAGERDUTY_ROUTING_KEY", _header_value, None, secret=True),
    Setting("change_routing_key", "PAGERDUTY_CHANGE_ROUTING_KEY", _header_value, None, secret=True),
    Setting("events_url", "PAGERDUTY_EVENTS_URL", _text, "https://events.pagerduty.com"),
    Setting("title_format", "PAGERULES_TITLE_FORMAT", _title_format, "[CodeSpar] {Severity}: {title}"),
    Setting("rules_dir", "PAGERULES_RULES_DIR", _text, None),
    Setting("packs", "PAGERULES_PACKS", _name_list, ()),
    Setting("params", None, _params, {"build_branches": ["main"]}),
    Setting("state_path", "PAGERULES_STATE", _text, "state/pagerules.db"),
    Setting("state_url", "PAGERULES_STATE_URL", _state_url, None, secret=True),
    Setting("dedup_window_seconds", "PAGERULES_DEDUP_WINDOW", _seconds, 300.0),
    Setting("events_dir", "PAGERULES_EVENTS_DIR", _text, "events"),
    Setting("request_timeout_seconds", "PAGERULES_REQUEST_TIMEOUT", _seconds, 10.0),
    Setting("retries", "PAGERULES_RETRIES", _count, 4),
    Setting("retry_backoff_seconds", "PAGERULES_RETRY_BACKOFF", _seconds, 0.5),
    Setting("watch_retry_max_seconds", "PAGERULES_WATCH_RETRY_MAX", _seconds, 60.0),
    Setting("reconcile_interval_seconds", "PAGERULES_RECONCILE_INTERVAL", _seconds, 300.0),
    Setting("server_api_token", "PAGERULES_API_TOKEN", _optional_text, None, secret=True),
    Setting("tokens_file", "PAGERULES_TOKENS_FILE", _optional_text, None),
    Setting("github_webhook_secret", "PAGERULES_GITHUB_WEBHOOK_SECRET", _optional_text, None, secret=True),
    Setting("sentry_client_secret", "PAGERULES_SENTRY_CLIENT_SECRET", _optional_text, None, secret=True),
    Setting("alertmanager_token", "PAGERULES_ALERTMANAGER_TOKEN", _optional_text, None, secret=True),
    Setting("bind", "PAGERULES_BIND", _text, "127.0.0.1:8080"),
    Setting("channels", None, _channels, ()),
)
BY_NAME = {s.name: s for s in SETTINGS}
SECRETS = {s.name for s in SETTINGS if s.secret}
