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

from engine.config import Config
from engine.documents.schema import RuleNamer, check_document, load_schema
from engine.documents.source import Document, load_yaml_text
from engine.errors import InvalidFiles, Problem
from engine.events.types import EventType, load_event_types
from engine.language.builder import RuleBuilder
from engine.language.checks import check_ruleset, duplicate_ids
from engine.language.lint import lint_keys
from engine.language.model import Change, Recovery, RuleSet, Trigger
from engine.language.templates import Compiled, TemplateError
from engine.names import dotted

RULE_SUFFIXES = (".yaml", ".yml")
SECTIONS = ("triggers", "recoveries", "changes")
RuleT = TypeVar("RuleT")


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
    lost_triggers: bool = False  # a trigger (or the whole file) has a problem of its own: what it sets is unsure


def compile_document(doc: Document, params: Mapping[str, Any], event_types: Mapping[str, EventType],
                     problems: Iterable[Problem] = (),
                     templates: dict[tuple[str, bool], Compiled | TemplateError] | None = None) -> CompiledFile:
    """Compile one parsed document; every problem it has on its own is collected, nothing is raised."""
    found_all = list(problems)
    if doc.data is None and doc.lines:  # an empty file (or one the loader could not read): nothing to check
        return CompiledFile(doc, (), (), tuple(found_all), lost_triggers=any(not p.warning for p in found_all))
    found = check_document(doc, load_schema("rules.schema.json"), _namer(doc)) if doc.lines else []
    found_all.extend(found)
    if not isinstance(doc.data, dict) or any(len(p.path) < 2 for p in found):
        return CompiledFile(doc, (), (), tuple(found_all), lost_triggers=True)
    broken = {p.path[:2] for p in found}
    builder = RuleBuilder(doc, event_types, params, found_all, templates)
    triggers = _build_all(doc.data.get("triggers"), "triggers", builder.trigger, broken)
    recoveries = _build_all(doc.data.get("recoveries"), "recoveries", builder.recovery, broken)
    changes = _build_all(doc.data.get("changes"), "changes", builder.change, broken)
    lost = any(not p.warning and p.path[:1] == ("triggers",) for p in found_all)  # left out, or a label lost
    return CompiledFile(doc, tuple(triggers), tuple(recoveries), tuple(found_all), tuple(changes), lost)


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
    lost = any(not p.warning for p in problems)  # a rule file that could not be read: its triggers are unknown
    triggers: list[Trigger] = []
    recoveries: list[Recovery] = []
    changes: list[Change] = []
    for compiled in files:
        problems.extend(compiled.problems)
        triggers += compiled.triggers
        recoveries += compiled.recoveries
        changes += compiled.changes
    docs = [compiled.doc for compiled in files]
    if not lost and not any(compiled.lost_triggers for compiled in files):  # else a label a lost trigger sets is
        problems.extend(check_ruleset(triggers, recoveries))  # taken for set by none: checked once it is fixed
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


