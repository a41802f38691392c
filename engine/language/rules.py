"""Rule files -> a validated, compiled RuleSet.

Parse (YAML with lines) -> JSON Schema (every error) -> cross-checks (unique ids,
known event types and severities, templates that compile and name only what
exists, recoveries that select labels some trigger sets) -> frozen objects with
templates compiled once. Raw dicts never reach evaluation.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from engine import severity
from engine.config import Config
from engine.documents.schema import RuleNamer, check_document, load_schema
from engine.documents.source import Document, load_yaml_text
from engine.errors import InvalidFiles, Problem
from engine.events.types import EventType, load_event_types
from engine.language.checks import check_ruleset, duplicate_ids
from engine.language.lint import lint_keys
from engine.language.matchers import MatcherError, compile_match
from engine.language.model import Change, Link, Recovery, RuleSet, Selector, Trigger, link_problem
from engine.language.templates import (
    Compiled,
    TemplateError,
    attribute_paths,
    compile_expression,
    compile_template,
)
from engine.names import dotted, unknown_name

RULE_SUFFIXES = (".yaml", ".yml")
SECTIONS = ("triggers", "recoveries", "changes")
RuleT = TypeVar("RuleT")


class _Builder:
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
                                     f"{where}: {message}" if where else message, self.rule_id))

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
                       links=self.links(path, raw.get("links")))

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


def _namer(doc: Document) -> RuleNamer:
    def name(path: tuple[Any, ...]) -> tuple[str | None, tuple[Any, ...]]:
        if len(path) >= 2 and path[0] in SECTIONS and isinstance(path[1], int):
            try:
                rule_id = doc.data[path[0]][path[1]].get("id")
            except (KeyError, IndexError, AttributeError, TypeError):
                rule_id = None
            return (rule_id if isinstance(rule_id, str) else f"#{path[1] + 1} of {path[0]}"), path[2:]
        return None, path
    return name


def _in_rule(problem: Problem, namer: RuleNamer) -> Problem:
    """A loader problem inside a rule (a duplicate key) named as every rule problem is: rule ID, path."""
    rule, inner = namer(problem.path)
    if rule is None:
        return problem
    message = f"{dotted(inner)}: {problem.message}" if inner else problem.message
    return dataclasses.replace(problem, rule=rule, message=message)


@dataclass(frozen=True)
class CompiledFile:
    """One rule document compiled on its own: what the cross-file checks and the RuleSet are made from."""

    doc: Document
    triggers: tuple[Trigger, ...]
    recoveries: tuple[Recovery, ...]
    problems: tuple[Problem, ...]  # this file's own: loader, schema, matchers, templates
    changes: tuple[Change, ...] = ()


def compile_document(doc: Document, params: Mapping[str, Any], event_types: Mapping[str, EventType],
                     problems: Iterable[Problem] = (),
                     templates: dict[tuple[str, bool], Compiled | TemplateError] | None = None) -> CompiledFile:
    """Compile one parsed document; every problem it has on its own is collected, nothing is raised."""
    found_all = list(problems)
    if doc.data is None and doc.lines:  # an empty file: nothing to check
        return CompiledFile(doc, (), (), tuple(found_all))
    found = check_document(doc, load_schema("rules.schema.json"), _namer(doc)) if doc.lines else []
    found_all.extend(found)
    if not isinstance(doc.data, dict) or any(len(p.path) < 2 for p in found):
        return CompiledFile(doc, (), (), tuple(found_all))
    broken = {p.path[:2] for p in found}
    builder = _Builder(doc, event_types, params, found_all, templates)
    triggers = _build_all(doc.data.get("triggers"), "triggers", builder.trigger, broken)
    recoveries = _build_all(doc.data.get("recoveries"), "recoveries", builder.recovery, broken)
    changes = _build_all(doc.data.get("changes"), "changes", builder.change, broken)
    return CompiledFile(doc, tuple(triggers), tuple(recoveries), tuple(found_all), tuple(changes))


def compile_documents(docs: list[Document], config: Config, event_types: Mapping[str, EventType],
                      problems: list[Problem] | None = None) -> RuleSet:
    """Compile parsed rule documents; raises InvalidFiles with every problem found (``problems`` first)."""
    templates: dict[tuple[str, bool], Compiled | TemplateError] = {}
    files = [compile_document(doc, config.params, event_types, (), templates) for doc in docs]
    return assemble(files, config, event_types, problems or ())


def assemble(files: Sequence[CompiledFile], config: Config, event_types: Mapping[str, EventType],
             problems: Iterable[Problem] = ()) -> RuleSet:
    """The checks across files, then the RuleSet; raises InvalidFiles with every problem found."""
    problems = list(problems)
    triggers: list[Trigger] = []
    recoveries: list[Recovery] = []
    changes: list[Change] = []
    for compiled in files:
        problems.extend(compiled.problems)
        triggers += compiled.triggers
        recoveries += compiled.recoveries
        changes += compiled.changes
    docs = [compiled.doc for compiled in files]
    problems.extend(check_ruleset(triggers, recoveries))
    problems.extend(duplicate_ids(_rule_ids(docs)))
    if any(not p.warning for p in problems):
        raise InvalidFiles(sorted(problems, key=lambda p: (p.filename, p.line)))
    problems.extend(lint_keys(triggers))  # warnings, meaningful once the rules are valid
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(doc.filename.encode() + b"\0" + repr(doc.data).encode())
    return RuleSet(triggers=_by_type(triggers), recoveries=_by_type(recoveries), event_types=event_types,
                   params=config.params, prefix=config.dedup_key_prefix, title_format=config.title_format,
                   version=digest.hexdigest()[:12], files=tuple(d.filename for d in docs),
                   warnings=tuple(p for p in problems if p.warning), changes=_by_type(changes))


def compile_text(filename: str, text: str, params: Mapping[str, Any], event_types: Mapping[str, EventType],
                  templates: dict[tuple[str, bool], Compiled | TemplateError]) -> CompiledFile:
    doc, found = load_yaml_text(text, filename)
    return compile_document(doc, params, event_types, [_in_rule(p, _namer(doc)) for p in found], templates)


def _build_all(raws: Any, section: str, build: Callable[[int, Any], RuleT], broken: set[tuple[Any, ...]]
               ) -> list[RuleT]:
    """Compile every rule of a section. One that failed the schema is still compiled for its other
    problems, but is left out of the ruleset, and skipped if too malformed to read."""
    rules = []
    for index, raw in enumerate(raws or []):
        try:
            rule = build(index, raw)
        except (KeyError, TypeError, AttributeError, ValueError):
            if (section, index) in broken:
                continue  # the schema problem already says why
            raise
        if (section, index) not in broken:
            rules.append(rule)
    return rules


def _rule_ids(docs: list[Document]) -> list[tuple[str, str, int]]:
    entries = []
    for doc in docs:
        for section in SECTIONS:
            rules = doc.data.get(section) if isinstance(doc.data, dict) else None
            for index, raw in enumerate(rules if isinstance(rules, list) else []):
                if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                    entries.append((raw["id"], doc.filename, doc.line((section, index))))
    return entries


def _by_type(rules: list[Any]) -> dict[str, tuple[Any, ...]]:
    out: dict[str, list[Any]] = {}
    for rule in rules:
        out.setdefault(rule.on, []).append(rule)
    return {name: tuple(group) for name, group in out.items()}


def load_ruleset_text(texts: Mapping[str, str], config: Config, problems: list[Problem] | None = None) -> RuleSet:
    """Compile rules given as {filename: YAML text}: the text loader the file loader uses."""
    event_types = load_event_types()
    templates: dict[tuple[str, bool], Compiled | TemplateError] = {}
    files = [compile_text(filename, text, config.params, event_types, templates)
             for filename, text in texts.items()]
    return assemble(files, config, event_types, problems or ())


