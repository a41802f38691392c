"""YAML text -> plain data plus the line of every node, for errors that point at the line.

Two deliberate departures from PyYAML's defaults, both because a typo must never
silently change paging:

* Only ``true``/``false`` are booleans (YAML 1.2). Under YAML 1.1 the rule key
  ``on:`` would load as ``True`` and ``status: no`` as ``False``.
* A key repeated in one mapping is an error; PyYAML silently keeps the last one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.errors import Problem

Path = tuple[Any, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader whose implicit booleans are only true/false, any case."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


@dataclass(frozen=True)
class Document:
    """Loaded YAML with the line (1-based) where each path starts."""

    filename: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


def load_yaml_text(text: str, filename: str) -> tuple[Document, list[Problem]]:
    """Parse YAML ``text``; a syntax error or duplicate key becomes a Problem."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return Document(filename, None), [Problem(filename, line, f"invalid YAML: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return Document(filename, None), [Problem(filename, 1, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    if node is None:
        return Document(filename, None, {(): 1}), []
    lines: dict[Path, int] = {(): node.start_mark.line + 1}
    problems: list[Problem] = []
    data = _convert(loader, node, (), lines, problems, filename)
    return Document(filename, data, lines), problems


def _convert(loader: _Loader, node: yaml.Node, path: Path, lines: dict[Path, int],
             problems: list[Problem], filename: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _key(loader, key_node)
            line = key_node.start_mark.line + 1
            if key in out:
                problems.append(Problem(filename, line, f"duplicate key '{key}' (first at line {lines[path + (key,)]})"))
                continue
            lines[path + (key,)] = line
            out[key] = _convert(loader, value_node, path + (key,), lines, problems, filename)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            items.append(_convert(loader, item, path + (index,), lines, problems, filename))
        return items
    return loader.construct_object(node, deep=True)


def _key(loader: _Loader, node: yaml.Node) -> Any:
    # Keys are read as written: `on:` is the string "on", `3:` is the string "3".
    if isinstance(node, yaml.ScalarNode):
        return node.value
    return loader.construct_object(node, deep=True)
