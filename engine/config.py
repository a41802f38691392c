"""pagerduty.yaml + environment + flags -> one frozen Config (README: Configuration).

Precedence: command-line flag > environment variable > pagerduty.yaml > default.
Each setting is parsed by one function whatever its source, so an error always
names where the bad value came from: the variable, the flag, or FILE:LINE: key.
Where the config file and the rules folder are found is `find_config` and
`_rules_dir`, in the order the README's "Where your files live" gives.
`routes:` is kept as written (WrittenRoutes, with its lines): its matchers are the rule
language's, a layer above this one, so engine/language/routes.py compiles it.
"""
from __future__ import annotations

import os
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine import resources, severity
from engine.documents.schema import check_document, load_schema
from engine.documents.source import Document, load_yaml_text, read_text_file
from engine.errors import ConfigError, InvalidFiles, Problem

DEFAULT_CONFIG = "pagerduty.yaml"
CONFIG_ENV = "PAGERULES_CONFIG"
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
    Setting("github_webhook_secret", "PAGERULES_GITHUB_WEBHOOK_SECRET", _optional_text, None, secret=True),
    Setting("sentry_client_secret", "PAGERULES_SENTRY_CLIENT_SECRET", _optional_text, None, secret=True),
    Setting("alertmanager_token", "PAGERULES_ALERTMANAGER_TOKEN", _optional_text, None, secret=True),
    Setting("bind", "PAGERULES_BIND", _text, "127.0.0.1:8080"),
    Setting("channels", None, _channels, ()),
)
_BY_NAME = {s.name: s for s in SETTINGS}
_SECRETS = {s.name for s in SETTINGS if s.secret}
REQUIRED_LIVE = ("api_token", "from_email", "service_id", "escalation_policy_id")
ROUTES_KEY = "routes"


@dataclass(frozen=True)
class WrittenRoutes:
    """`routes:` as written in the config file, with the line of every path inside it.
    engine/language/routes.py compiles it (``config_routes``). ``entries`` may hold routing keys."""

    entries: Any = field(default=None, repr=False)
    filename: str = "(defaults)"
    lines: Mapping[tuple[Any, ...], int] = field(default_factory=dict, repr=False, compare=False)

    def where(self, path: tuple[Any, ...]) -> tuple[str, int]:
        """(file, line) of a path inside the list, e.g. ``(0, "match", "repo")``; its nearest ancestor's line."""
        path = tuple(path)
        while path and path not in self.lines:
            path = path[:-1]
        return self.filename, self.lines.get(path, 1)

    def secrets(self) -> list[str]:
        """Every routing key written anywhere under `routes:`, well-formed or not, to keep out of messages."""
        found: list[str] = []
        stack = [self.entries]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                key = node.get("routing_key")
                found += [key] if isinstance(key, str) and key else []
                stack += list(node.values())
            elif isinstance(node, list):
                stack += node
        return found


@dataclass(frozen=True)
class Config:
    """Every setting, parsed. Paths are absolute (relative ones are taken from the config file's folder)."""

    api_token: str | None = field(default=None, repr=False)
    from_email: str | None = None
    service_id: str | None = None
    escalation_policy_id: str | None = None
    enabled: bool = True
    auto_resolve: bool = True
    severity_threshold: str = "high"
    dedup_key_prefix: str = "codespar"
    api_url: str = "https://api.pagerduty.com"
    routing_key: str | None = field(default=None, repr=False)
    change_routing_key: str | None = field(default=None, repr=False)
    events_url: str = "https://events.pagerduty.com"
    title_format: str = "[CodeSpar] {Severity}: {title}"
    rules_dir: str = str(resources.RULES)
    packs: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=lambda: {"build_branches": ["main"]})
    state_path: str = "state/pagerules.db"
    state_url: str | None = field(default=None, repr=False)  # PostgreSQL instead of the file (may hold a password)
    dedup_window_seconds: float = 300.0
    events_dir: str = "events"
    request_timeout_seconds: float = 10.0
    retries: int = 4
    retry_backoff_seconds: float = 0.5
    watch_retry_max_seconds: float = 60.0
    reconcile_interval_seconds: float = 300.0
    server_api_token: str | None = field(default=None, repr=False)
    github_webhook_secret: str | None = field(default=None, repr=False)
    sentry_client_secret: str | None = field(default=None, repr=False)
    alertmanager_token: str | None = field(default=None, repr=False)
    bind: str = "127.0.0.1:8080"
    channels: tuple[Mapping[str, Any], ...] = ()
    written_routes: WrittenRoutes = field(default_factory=WrittenRoutes)
    source: str = "(defaults)"
    found_by: str = "(given)"  # how the config file was chosen, for `validate`

    def missing_for_live(self) -> list[str]:
        """Environment variable names of the required settings that are unset."""
        return [str(_BY_NAME[name].env) for name in REQUIRED_LIVE if not getattr(self, name)]

    def require_live(self) -> None:
        """Raise ConfigError naming every required variable that is missing."""
        missing = self.missing_for_live()
        if missing:
            raise ConfigError(
                f"live mode needs {', '.join(missing)}: set them in the environment or in {self.source}, "
                "or use --dry-run"
            )


def load_config_text(text: str, filename: str, env: Mapping[str, str] | None = None,
                     overrides: Mapping[str, Any] | None = None, base_dir: Path | None = None) -> Config:
    """Build a Config from pagerduty.yaml text, the environment and flag overrides."""
    doc, problems = load_yaml_text(text, filename)
    routes = _written_routes(doc)
    if not problems:
        problems = [_redacted(p, routes.secrets()) for p in check_document(doc, load_schema("config.schema.json"),
                                                                           lambda path: (None, path))]
    if problems:
        raise InvalidFiles(problems)
    values: dict[str, Any] = {"source": filename, "written_routes": routes}
    errors: list[str] = []
    from_file: set[str] = set()
    file_values = doc.data or {}
    env = os.environ if env is None else env
    overrides = overrides or {}
    for setting in SETTINGS:
        raw, where = setting.default, None
        if setting.name in file_values:
            raw, where = file_values[setting.name], f"{filename}:{doc.line((setting.name,))}: {setting.name}"
        if setting.env and env.get(setting.env) not in (None, ""):
            raw, where = env[setting.env], setting.env
        if overrides.get(setting.name) is not None:
            raw, where = overrides[setting.name], f"--{setting.name.replace('_', '-')}"
        try:
            values[setting.name] = setting.parse(raw) if where else raw
        except (ValueError, TypeError) as exc:
            safe = str(exc).startswith(("contains", "must be a postgresql"))  # messages that never show the value
            message = exc if not setting.secret or safe else "must be text"
            errors.append(f"{where}: {message}")
        if where and where.startswith(filename):
            from_file.add(setting.name)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    # A path written in a config file is taken from that file's folder; one from a flag, the
    # environment or a default (and the packaged default config's) from the working directory.
    file_base = base_dir or Path(filename).resolve().parent
    for name in ("rules_dir", "state_path", "events_dir"):
        if values[name] is None:
            continue
        values[name] = str(((file_base if name in from_file else Path.cwd()) / values[name]).resolve())
    values["rules_dir"] = values["rules_dir"] or _rules_dir()
    return Config(**values)


def _rules_dir() -> str:
    """No rules_dir anywhere: ./rules when there is one, else the rules that ship with pagerules."""
    local = Path("rules")
    return str(local.resolve() if local.is_dir() else resources.RULES)


def _written_routes(doc: Document) -> WrittenRoutes:
    data = doc.data if isinstance(doc.data, dict) else {}
    lines = {path[1:]: line for path, line in doc.lines.items() if path[:1] == (ROUTES_KEY,)}
    return WrittenRoutes(data.get(ROUTES_KEY), doc.filename, lines)


def _redacted(problem: Problem, secrets: list[str]) -> Problem:
    """A schema problem at a secret setting (or a route's routing_key), without the value."""
    path = problem.path
    if path and path[0] in _SECRETS:
        return replace(problem, message=f"{path[0]}: must be text")
    if len(path) >= 3 and path[0] == ROUTES_KEY and path[2] == "routing_key":
        return replace(problem, message=f"routes[{path[1]}].routing_key: must be text")
    message = problem.message
    for secret in secrets:
        message = message.replace(secret, "[routing key]")
    return replace(problem, message=message)


def user_config_dir(env: Mapping[str, str]) -> Path:
    """$XDG_CONFIG_HOME/pagerules, else ~/.config/pagerules (the XDG base directory rule)."""
    root = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root) / "pagerules"


def find_config(path: str | None, env: Mapping[str, str]) -> tuple[Path, str]:
    """The config file to read and how it was chosen: --config, $PAGERULES_CONFIG, ./pagerduty.yaml,
    the user's config folder, else the packaged defaults."""
    if path is not None:
        return Path(path), "--config"
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]), CONFIG_ENV
    for candidate, how in ((Path(DEFAULT_CONFIG), "the working directory"),
                           (user_config_dir(env) / DEFAULT_CONFIG, "the user's config folder")):
        if candidate.is_file():
            return candidate, how
    return resources.DEFAULT_CONFIG, "the packaged defaults"


def load_config(path: str | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Find and read the config file (see `find_config`), then apply the environment and flags."""
    env = os.environ if env is None else env
    chosen, how = find_config(path, env)
    if not os.path.lexists(chosen):
        raise ConfigError(f"cannot read config file {chosen} (from {how}): No such file or directory")
    # A folder, a FIFO, bad bytes: FILE:LINE problems as for rule files, never a traceback or a hang.
    text, unreadable = read_text_file(chosen, str(chosen))
    if text is None:
        raise InvalidFiles(unreadable)
    packaged = how == "the packaged defaults"
    config = load_config_text(text, str(chosen), env, overrides, base_dir=Path.cwd() if packaged else None)
    return replace(config, found_by=how)


def setting_names() -> list[tuple[str, str | None]]:
    """(key in pagerduty.yaml, environment variable or None) for every setting, for docs and tests."""
    return [(s.name, s.env) for s in SETTINGS]
