"""The file loader: which rule files are in force (the rules folder and each enabled pack), read, then
compiled by the text loader in engine/language/rules.py; and a cache of compiled files for reloads."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from engine import resources
from engine.config import Config
from engine.documents.source import read_text_file
from engine.errors import InvalidFiles, Problem
from engine.events.types import EventType, load_event_types
from engine.language.model import RuleSet
from engine.language.rules import RULE_SUFFIXES, CompiledFile, assemble, compile_text, load_ruleset_text
from engine.language.templates import (
    Compiled,
    TemplateError,
)
from engine.names import unknown_name


class RuleCache:
    """Compiled rule files kept by content, for a caller that loads the same folder again (the daemon's reload).

    A file is recompiled only when its text, its name, the params or the event types changed; the checks
    across files (duplicate ids, recoveries that can select something, lint) always run again, so a load
    through the cache finds every problem a fresh load finds. Files no longer loaded are forgotten.
    """

    def __init__(self) -> None:
        self._files: dict[str, tuple[tuple[str, str], Mapping[str, EventType], CompiledFile]] = {}
        self.compiled = 0  # files compiled (not taken from the cache) by the last load

    def load(self, config: Config, rules_dir: str | None = None) -> RuleSet:
        """As `load_ruleset`, recompiling only the files that changed since the last load."""
        texts, unreadable = read_rule_texts(config, rules_dir)
        return self.load_text(texts, config, unreadable)

    def stale(self, config: Config, rules_dir: str | None = None) -> bool:
        """Whether the rule files in force now differ from those the last load compiled (added, removed,
        unreadable or edited): read and compared by content, never by timestamps."""
        texts, unreadable = read_rule_texts(config, rules_dir)
        return bool(unreadable) or texts.keys() != self._files.keys() or any(
            _digest(text) != self._files[name][0][0] for name, text in texts.items())

    def load_text(self, texts: Mapping[str, str], config: Config, problems: list[Problem] | None = None) -> RuleSet:
        """As `load_ruleset_text`, through the cache."""
        event_types = load_event_types()
        params = json.dumps(config.params, sort_keys=True, default=repr)
        files: list[CompiledFile] = []
        kept: dict[str, tuple[tuple[str, str], Mapping[str, EventType], CompiledFile]] = {}
        self.compiled = 0
        templates: dict[tuple[str, bool], Compiled | TemplateError] = {}  # this load's only
        for filename, text in texts.items():
            key = (_digest(text), params)
            entry = self._files.get(filename)
            if entry is None or entry[0] != key or entry[1] is not event_types:
                entry = (key, event_types, compile_text(filename, text, config.params, event_types, templates))
                self.compiled += 1
            kept[filename] = entry
            files.append(entry[2])
        self._files = kept
        return assemble(files, config, event_types, problems or ())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def rule_files(config: Config, rules_dir: str | None = None) -> list[Path]:
    """The rule files in force: ``rules/*.yaml`` then each enabled pack's ``*.yaml`` (see `pack_folders`)."""
    base = Path(rules_dir or config.rules_dir)
    if not base.is_dir():
        raise InvalidFiles([Problem(str(base), 1, "the rules directory does not exist")])
    files = sorted(p for p in base.iterdir() if p.suffix in RULE_SUFFIXES)
    packs = resources.pack_folders(base)
    for pack in config.packs:
        if pack not in packs:
            raise InvalidFiles([Problem(str(base / "packs"), 1, unknown_name("rule pack", pack, sorted(packs)))])
        files += sorted(p for p in packs[pack].iterdir() if p.suffix in RULE_SUFFIXES)
    if not files:
        raise InvalidFiles([Problem(str(base), 1, "no rule files (*.yaml): nothing would ever page")])
    return files


def rule_folders(config: Config) -> list[str]:
    """The rules folder and each enabled pack's folder, for `validate` to say what it read."""
    packs = resources.pack_folders(Path(config.rules_dir))
    return [config.rules_dir] + [str(packs[name]) for name in config.packs if name in packs]


def read_rule_texts(config: Config, rules_dir: str | None = None) -> tuple[dict[str, str], list[Problem]]:
    """{display name: text} of the rule files in force, and a problem for each one that cannot be read."""
    texts: dict[str, str] = {}
    unreadable: list[Problem] = []  # a folder named x.yaml, bad bytes: reported with the others, never raised
    for path in rule_files(config, rules_dir):
        text, found = read_text_file(path, display(path))
        unreadable += found
        if text is not None:
            texts[display(path)] = text
    return texts, unreadable


def load_ruleset(config: Config, rules_dir: str | None = None) -> RuleSet:
    """Read and compile the rule files in force for ``config``."""
    texts, unreadable = read_rule_texts(config, rules_dir)
    return load_ruleset_text(texts, config, unreadable)


def display(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
