"""One rule document's rules compiled one at a time: a trigger, a recovery or a change from its raw
mapping (already checked against schemas/rules.schema.json) to the frozen objects of
engine/language/model.py, each problem collected as FILE:LINE: rule ID: path: message."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine import severity
from engine.documents.source import Document
from engine.errors import Problem
from engine.events.types import EventType
from engine.language.matchers import MatcherError, compile_match
from engine.language.model import Change, Flap, Link, Recovery, Selector, Trigger, link_problem
from engine.language.silences import SilenceError, parse_duration
from engine.language.templates import (
    Compiled,
    TemplateError,
    attribute_paths,
    compile_expression,
    compile_template,
)
from engine.names import dotted, unknown_name


class RuleBuilder:
    """Compiles one document's rules, collecting Problems instead of stopping at the first."""

    def __init__(self, doc: Document, event_types: Mapping[str, EventType], params: Mapping[str, Any],
                 problems: list[Problem], templates: dict[tuple[str, bool], Compiled | TemplateError] | None = None):
        self.doc, self.event_types, self.params, self.problems = doc, event_types, params, problems
        # One load's compiled templates by (text, is expression): a Compiled is immutable, so rules whose
        # keys or titles read the same share it (a rule per repository often does).
        self.templates = {} if templates is None else templates
        self.rule_id: str | None = None
        self.names: set[str] = set()
        self.fields: dict[str, str] = {}

    def problem(self, path: tuple[Any, ...], message: str, inner: Iterable[Any] = ()) -> None:
        where = dotted(inner)  # resolves[1].labels.kind, as every message writes a path inside a rule
        self.problems.append(Problem(self.doc.filename, self.doc.line(path),
                                     f"{where}: {message}" if where else message, self.rule_id, path=path))

    def template(self, path: tuple[Any, ...], source: Any, inner: tuple[Any, ...], expression: bool = False
                 ) -> Compiled | None:
        try:
            text = str(source).lower() if isinstance(source, bool) else str(source)
            known = self.templates.get((text, expression))
            if known is None:
                try:
                    known = compile_expression(text) if expression else compile_template(text)
                except TemplateError as exc:
                    known = exc
                self.templates[(text, expression)] = known
            if isinstance(known, TemplateError):
                raise known
            compiled = known
        except TemplateError as exc:
            self.problem(path, str(exc), inner)
            return None
        for name in sorted(compiled.names - self.names):
            self.problem(path, unknown_name("name", name, self.names, self.fields), inner)
        for param in sorted(attribute_paths(compiled, "params")):
            if param[0] not in self.params:
                self.problem(path, unknown_name("param", param[0], self.params) + " (params come from pagerduty.yaml)",
                             inner)
        return compiled

    def common(self, path: tuple[Any, ...], raw: Mapping[str, Any]) -> dict[str, Any]:
        self.rule_id = raw["id"]
        # What a template may name and a message suggests. Jinja's globals (range, cycler, ...) work without being
        # named here (they are never undeclared), so are never suggested; a bare event field gets `event.FIELD`.
        self.names = {"event", "params"}
        event_type = self.event_types.get(raw["on"])
        fields = event_type.schema.get("properties", {}) if event_type else {}
        self.fields = {str(field): f"event.{field}" for field in fields}
        if raw["on"] not in self.event_types:
            self.problem(path + ("on",), unknown_name("event type", raw["on"], self.event_types), ("on",))
        try:
            conditions = compile_match(raw.get("match") or {})
        except MatcherError as exc:
            self.problem(path + ("match",) + exc.path, str(exc), ("match",) + exc.path[:1])
            conditions = ()
        variables = []
        for name, expr in (raw.get("vars") or {}).items():
            compiled = self.template(path + ("vars", name), expr, ("vars", name), expression=True)
            self.names.add(name)
            if compiled:
                variables.append((name, compiled))
        when = None
        if "when" in raw:
            when = self.template(path + ("when",), raw["when"], ("when",), expression=True)
        return dict(id=raw["id"], on=raw["on"], description=raw.get("description", ""),
                    conditions=conditions, vars=tuple(variables), when=when,
                    filename=self.doc.filename, line=self.doc.line(path),
                    field_lines={key: self.doc.line(path + (key,)) for key in raw})

    def mapping(self, path: tuple[Any, ...], raw: Mapping[str, Any] | None, name: str
                ) -> tuple[tuple[str, Compiled], ...]:
        out = []
        for key, value in (raw or {}).items():
            compiled = self.template(path + (name, key), value, (name, key))
            if compiled:
                out.append((key, compiled))
        return tuple(out)

    def links(self, path: tuple[Any, ...], raw: list[Mapping[str, Any]] | None) -> tuple[Link, ...]:
        out = []
        for number, entry in enumerate(raw or []):
            where = path + ("links", number)
            href = self.template(where + ("href",), entry["href"], ("links", number, "href"))
            problem = None if "{" in str(entry["href"]) else link_problem(str(entry["href"]))
            if problem:  # a constant href is checked now, not on every event
                self.problem(where + ("href",), problem, ("links", number, "href"))
            text = self.template(where + ("text",), entry["text"], ("links", number, "text")) \
                if "text" in entry else None
            if href:
                out.append(Link(href, text))
        return tuple(out)

    def trigger(self, index: int, raw: Mapping[str, Any]) -> Trigger:
        path = ("triggers", index)
        common = self.common(path, raw)
        sev: str | Compiled | None = raw["severity"]
        if "{" not in str(sev):
            if not severity.is_severity(sev):
                self.problem(path + ("severity",), severity.unknown_severity(sev), ("severity",))
        else:
            sev = self.template(path + ("severity",), sev, ("severity",))
        return Trigger(**common, severity=sev or "critical",
                       title=self.template(path + ("title",), raw["title"], ("title",)),
                       incident_key=self.template(path + ("incident_key",), raw["incident_key"], ("incident_key",)),
                       labels=self.mapping(path, raw.get("labels"), "labels"),
                       details=self.mapping(path, raw.get("details"), "details"),
                       links=self.links(path, raw.get("links")),
                       pending_for=self.duration(path, raw.get("for")),
                       renotify=self.duration(path, raw.get("renotify"), "renotify"),
                       flap=self.flap(path, raw.get("flap")))

    def duration(self, path: tuple[Any, ...], raw: Any, *inner: Any) -> float | None:
        """A trigger's ``for:``, ``renotify:`` or ``flap.within`` (30s, 10m, 1h) in seconds, at the field
        ``inner`` (default ``for``); None when not given (or wrong: a problem at that field)."""
        inner = inner or ("for",)
        if raw is None:
            return None
        try:
            return parse_duration(str(raw), dotted(inner))
        except SilenceError as exc:
            self.problem(path + inner, exc.reason, inner)
            return None

    def flap(self, path: tuple[Any, ...], raw: Mapping[str, Any] | None) -> Flap | None:
        """A trigger's ``flap: {opens: N, within: DURATION}``; the schema has checked its shape."""
        if raw is None:
            return None
        within = self.duration(path, raw["within"], "flap", "within")
        return Flap(int(raw["opens"]), within) if within is not None else None

    def change(self, index: int, raw: Mapping[str, Any]) -> Change:
        path = ("changes", index)
        common = self.common(path, raw)
        labels = raw.get("labels")
        if labels is None and "repo" in self.fields:  # no labels: the repo, which routes most often match
            labels = {"repo": "{{ event.repo }}"}
        return Change(**common, summary=self.template(path + ("summary",), raw["summary"], ("summary",)),
                      labels=self.mapping(path, labels, "labels"),
                      details=self.mapping(path, raw.get("details"), "details"),
                      links=self.links(path, raw.get("links")))

    def recovery(self, index: int, raw: Mapping[str, Any]) -> Recovery:
        path = ("recoveries", index)
        common = self.common(path, raw)
        selectors = []
        for number, sel in enumerate(raw["resolves"]):
            where = path + ("resolves", number)
            if "incident_key" in sel:
                key = self.template(where + ("incident_key",), sel["incident_key"],
                                    ("resolves", number, "incident_key"))
                selectors.append(Selector(incident_key=key, line=self.doc.line(where)))
                continue
            labels = []
            for name, values in sel["labels"].items():
                values = values if isinstance(values, list) else [values]
                compiled = [self.template(where + ("labels", name), v, ("resolves", number, "labels", name))
                            for v in values]
                labels.append((name, tuple(c for c in compiled if c)))
            selectors.append(Selector(labels=tuple(labels), line=self.doc.line(where)))
        return Recovery(**common, resolves=tuple(selectors),
                        message=self.template(path + ("message",), raw["message"], ("message",)))
