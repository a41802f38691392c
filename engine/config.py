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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine import resources
from engine.documents.schema import check_document, load_schema
from engine.documents.source import Document, load_yaml_text, read_text_file
from engine.errors import ConfigError, InvalidFiles, Problem
from engine.settings import BY_NAME, SECRETS, SETTINGS

DEFAULT_CONFIG = "pagerduty.yaml"
CONFIG_ENV = "PAGERULES_CONFIG"
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
    tokens_file: str | None = None  # named API tokens, stored as hashes (README: People and tokens)
    github_webhook_secret: str | None = field(default=None, repr=False)
    sentry_client_secret: str | None = field(default=None, repr=False)
    alertmanager_token: str | None = field(default=None, repr=False)
    bind: str = "127.0.0.1:8080"
    channels: tuple[Mapping[str, Any], ...] = ()
    written_routes: WrittenRoutes = field(default_factory=WrittenRoutes)
    source: str = "(defaults)"
    found_by: str = "(given)"  # how the config file was chosen, for `validate`

    def missing_for_live(self, rest: bool = False) -> list[str]:
        """Environment variable names of the settings live mode needs that are unset. The REST settings
        are needed only where an incident can go through REST: a route with ``service_id`` (token and
        From; the global policy too when such a route names none), or the default when
        PAGERDUTY_ROUTING_KEY is unset (all four). ``rest``: all four anyway, for a command that
        calls the REST API itself (`check`, `oncall`)."""
        entries = self.written_routes.entries if isinstance(self.written_routes.entries, list) else []
        rest_routes = [e for e in entries if isinstance(e, Mapping) and "service_id" in e]
        needed: tuple[str, ...] = ()
        if rest or not self.routing_key:
            needed = REQUIRED_LIVE
        elif rest_routes:
            own_policy = all(e.get("escalation_policy_id") for e in rest_routes)
            needed = ("api_token", "from_email") + (() if own_policy else ("escalation_policy_id",))
        return [str(BY_NAME[name].env) for name in needed if not getattr(self, name)]

    def require_live(self) -> None:
        """Raise ConfigError naming every required variable that is missing (the routes' routing_key_env
        variables are checked where routes are compiled, engine/pagerduty/backend.py, at their lines)."""
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
    for name in ("rules_dir", "state_path", "events_dir", "tokens_file"):
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
    if path and path[0] in SECRETS:
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
