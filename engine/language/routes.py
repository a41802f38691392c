"""`routes:` in pagerduty.yaml: which PagerDuty target an incident goes to (README: Routes).

An ordered list; the first route whose ``match`` holds for an incident's labels takes
it (Alertmanager's routes and PagerDuty Event Orchestration read the same way); none
does: the global settings. ``match`` is the rule language's matcher syntax. A route names
one target: a REST service (``service_id``, optional ``escalation_policy_id``) or an
Events API v2 integration (``routing_key``, or ``routing_key_env`` naming the variable that
holds it; optional ``escalation_policy_id`` says whose on-call to show). Compiling is pure;
the environment is read only by `resolve_routing_key`, from a mapping it is given.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.config import Config
from engine.errors import InvalidFiles, Problem
from engine.language.matchers import Condition, ConditionError, MatcherError, compile_match
from engine.names import dotted, unknown_name

REST_KEYS = ("service_id", "escalation_policy_id")
EVENTS_KEYS = ("routing_key", "routing_key_env")
KEYS = ("match", *REST_KEYS, *EVENTS_KEYS)
ROUTING_KEY_LENGTH = 32  # an Events API v2 integration key (tests/fixtures/pagerduty-api/REFERENCE.md section 10)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# A path inside the routes list, e.g. (0, "match", "repo") -> (file name, line).
Where = Callable[[tuple[Any, ...]], tuple[str, int]]


@dataclass(frozen=True)
class Route:
    """One compiled route. ``routing_key`` is a secret: it is in no repr."""

    index: int
    conditions: tuple[Condition, ...]
    service_id: str | None = None
    escalation_policy_id: str | None = None
    routing_key_env: str | None = None
    routing_key: str | None = field(default=None, repr=False)
    filename: str = "pagerduty.yaml"
    line: int = 1

    @property
    def events_api(self) -> bool:
        """True for an Events API v2 target, False for a REST service."""
        return self.service_id is None

    @property
    def where(self) -> str:
        """``FILE:LINE: routes[N]``, to start a message about this route."""
        return f"{self.filename}:{self.line}: routes[{self.index}]"

    def matches(self, labels: Mapping[str, Any]) -> bool:
        """Whether every condition holds; a missing label or a wrong type is no match."""
        return all(_holds(condition, labels)[0] for condition in self.conditions)

    def why_not(self, labels: Mapping[str, Any]) -> str | None:
        """The first condition that does not hold, said for `explain`; None when the route matches."""
        for condition in self.conditions:
            holds, reason = _holds(condition, labels)
            if not holds:
                return reason
        return None


def _holds(condition: Condition, labels: Mapping[str, Any]) -> tuple[bool, str]:
    try:
        holds, seen = condition.check(labels)
    except ConditionError as exc:
        return False, str(exc)
    return holds, "" if holds else condition.why_not(seen)


def in_document(lines: Callable[[tuple[Any, ...]], int], filename: str, prefix: tuple[Any, ...] = ("routes",)
                ) -> Where:
    """A Where for routes at ``prefix`` of a document, given its line lookup (Document.line)."""
    return lambda path: (filename, lines(prefix + tuple(path)))


def compile_routes(raw: Any, where: Where) -> tuple[tuple[Route, ...], list[Problem]]:
    """Every route compiled, and every problem as ``FILE:LINE: routes[N].field: message``.

    A problem leaves its route out; the caller refuses the config when any problem is not a warning.
    """
    if raw is None:
        return (), []
    problems: list[Problem] = []
    if not isinstance(raw, list):
        filename, line = where(())
        return (), [Problem(filename, line, f"routes: expected a list of routes, got {_kind(raw)}")]
    routes = []
    for index, entry in enumerate(raw):
        route = _compile_one(index, entry, where, problems)
        if route is not None:
            routes.append(route)
    problems += _shadowed(routes)
    return tuple(routes), problems


def _compile_one(index: int, entry: Any, where: Where, problems: list[Problem]) -> Route | None:
    def problem(path: tuple[Any, ...], message: str, warning: bool = False) -> None:
        filename, line = where((index, *path))
        problems.append(Problem(filename, line, f"{dotted(('routes', index, *path))}: {message}", warning=warning))

    if not isinstance(entry, Mapping):
        problem((), f"expected a mapping with match and a target, got {_kind(entry)}")
        return None
    before = len(problems)
    for key in entry:
        if key not in KEYS:
            problem((key,), unknown_name("key", str(key), KEYS))
    values = {key: _text_value(key, entry.get(key), problem) for key in KEYS[1:]}
    conditions = _conditions(entry.get("match", {}), problem)
    _check_target(entry, values, problem)
    if len(problems) > before:
        return None
    key = values["routing_key"]
    if key is not None and len(key) != ROUTING_KEY_LENGTH:
        problem(("routing_key",), f"is {len(key)} characters; an Events API v2 integration key has "
                f"{ROUTING_KEY_LENGTH} (PagerDuty will refuse it)", warning=True)
    filename, line = where((index,))
    return Route(index, conditions or (), values["service_id"], values["escalation_policy_id"],
                 values["routing_key_env"], key, filename, line)


def _text_value(key: str, value: Any, problem: Callable[..., None]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        shown = "" if key == "routing_key" else f", got {_kind(value)}"  # never echo a secret
        problem((key,), f"expected a non-empty string{shown}")
        return None
    if key == "routing_key_env" and not _ENV_NAME.match(value):
        problem((key,), f"{value!r} is not an environment variable name")
        return None
    return value


def _conditions(match: Any, problem: Callable[..., None]) -> tuple[Condition, ...] | None:
    if not isinstance(match, Mapping):
        problem(("match",), f"expected a mapping of label matchers, got {_kind(match)}")
        return None
    try:
        return compile_match(match)
    except MatcherError as exc:
        problem(("match", *exc.path[:1]), str(exc))
        return None


def _check_target(entry: Mapping[str, Any], values: Mapping[str, str | None], problem: Callable[..., None]
                  ) -> None:
    rest = "service_id" in entry
    events = [key for key in EVENTS_KEYS if key in entry]
    if rest and events:
        problem((), f"names a REST target (service_id) and an Events API v2 target ({events[0]}); give one")
    elif len(events) == 2:
        problem((), "give routing_key or routing_key_env, not both")
    elif not rest and not events:
        problem((), "names no target: give service_id (REST API) or routing_key / routing_key_env "
                    "(Events API v2)")


def _shadowed(routes: Sequence[Route]) -> list[Problem]:
    """A route after one that matches everything can never be taken: a warning, as a typo would be."""
    for number, route in enumerate(routes):
        if not route.conditions:
            return [Problem(later.filename, later.line,
                            f"routes[{later.index}]: can never be taken: routes[{route.index}] has no match "
                            "and takes every incident first", warning=True) for later in routes[number + 1:]]
    return []


def unreachable_routes(routes: Sequence[Route], label_sets: Iterable[Iterable[str]]) -> list[Problem]:
    """Warnings for routes no incident can take: every rule's labels lack a label the route's match needs.
    ``label_sets`` holds the label names of each trigger (a route tests an incident's labels only)."""
    sets = [frozenset(labels) for labels in label_sets]
    known = sorted(set().union(*sets)) if sets else []
    problems = []
    for route in routes:
        needed = {c.field for c in route.conditions if not (c.op == "exists" and c.arg is False)}
        if needed and not any(needed <= labels for labels in sets):
            missing = sorted(needed - set(known)) or sorted(needed)
            problems.append(Problem(route.filename, route.line, (
                f"routes[{route.index}]: can never be taken: no rule's labels include "
                f"{', '.join(repr(m) for m in missing)} (labels the rules set: {', '.join(known) or 'none'})"),
                warning=True))
    return problems


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(type(value), "a value")


def config_routes(config: Config) -> tuple[tuple[Route, ...], list[Problem]]:
    """The routes of a loaded config, compiled, with every problem (warnings included) at its line."""
    written = config.written_routes
    return compile_routes(written.entries, written.where)


def load_routes(config: Config) -> tuple[Route, ...]:
    """The routes of a loaded config; raises InvalidFiles naming every problem that is not a warning."""
    routes, problems = config_routes(config)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise InvalidFiles(errors)
    return routes


def pick_route(routes: Sequence[Route], labels: Mapping[str, Any]) -> Route | None:
    """The first route whose match holds for these labels; None: the global settings."""
    for route in routes:
        if route.matches(labels):
            return route
    return None


def route_trace(routes: Sequence[Route], labels: Mapping[str, Any]) -> list[tuple[Route, str | None]]:
    """For `explain`: each route tried, in order, with why it did not match (None for the one taken)."""
    trace = []
    for route in routes:
        reason = route.why_not(labels)
        trace.append((route, reason))
        if reason is None:
            break
    return trace


def route_name(route: Route | None) -> int | str:
    """The outcome line's ``route``: the route's index, or ``default``."""
    return "default" if route is None else route.index


def resolve_routing_key(route: Route, env: Mapping[str, str]) -> str | None:
    """The route's routing key: written in the route, or read from ``env`` by ``routing_key_env``."""
    if route.routing_key is not None:
        return route.routing_key
    if route.routing_key_env is not None:
        return env.get(route.routing_key_env) or None
    return None


def missing_routing_keys(routes: Sequence[Route], env: Mapping[str, str]) -> list[Problem]:
    """Live mode only: every route whose routing_key_env names an unset or empty variable."""
    return [Problem(route.filename, route.line,
                    f"routes[{route.index}].routing_key_env: {route.routing_key_env} is not set; "
                    "live mode needs the Events API v2 integration key in it")
            for route in routes if route.routing_key_env is not None and not resolve_routing_key(route, env)]
