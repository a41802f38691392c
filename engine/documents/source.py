"""YAML text -> plain data plus the line of every node, for errors that point at the line.

Two deliberate departures from PyYAML's defaults, both because a typo must never
silently change paging:

* Only ``true``/``false`` are booleans (YAML 1.2). Under YAML 1.1 the rule key
  ``on:`` would load as ``True`` and ``status: no`` as ``False``.
* A key repeated in one mapping is an error; PyYAML silently keeps the last one.

And one for safety: anchors (``&name``) and aliases (``*name``) are refused. A
271-byte file of nested aliases expands to gigabytes (a "billion laughs"), and
rules and config never need them. Nothing in the text can make the loader
raise: bad characters, bad bytes, deep nesting and huge numbers are Problems.
"""
from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from typing import Any, Union

import yaml

from engine.errors import Problem

Path = tuple[Any, ...]
PathLike = Union[str, "os.PathLike[str]"]


_NO_ALIASES = ("YAML anchors (&name) and aliases (*name) are not allowed here: write the value out in full "
               "(aliases can expand a few bytes into gigabytes)")


class _Loader(yaml.SafeLoader):
    """SafeLoader whose implicit booleans are only true/false, any case, and that refuses anchors and aliases."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, _NO_ALIASES, event.start_mark)
        return super().compose_node(parent, index)


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
    """Parse YAML ``text``; a syntax error, a bad character or a duplicate key becomes a Problem. Never raises."""
    try:
        loader = _Loader(text)  # checks every character first: NUL, other controls, lone surrogates
    except yaml.reader.ReaderError as exc:
        return Document(filename, None), [_reader_problem(exc, text, filename)]
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(filename, None, {(): 1}), []
        lines: dict[Path, int] = {(): node.start_mark.line + 1}
        problems: list[Problem] = []
        data = _convert(loader, node, (), lines, problems, filename)
    except yaml.reader.ReaderError as exc:
        return Document(filename, None), [_reader_problem(exc, text, filename)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return Document(filename, None), [Problem(filename, line, f"invalid YAML: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return Document(filename, None), [Problem(filename, 1, f"invalid YAML: {exc}")]
    except RecursionError:
        return Document(filename, None), [Problem(filename, 1, "invalid YAML: nested too deeply")]
    finally:
        loader.dispose()
    return Document(filename, data, lines), problems


def read_text_file(path: PathLike, filename: str) -> tuple[str | None, list[Problem]]:
    """The UTF-8 text of a file, or a Problem naming it (a folder, unreadable, not UTF-8: line of the bad byte)."""
    try:
        data = _read_regular(path)
    except IsADirectoryError:
        return None, [Problem(filename, 1, "is a folder, not a file: rename or move it")]
    except OSError as exc:
        return None, [Problem(filename, 1, f"cannot read the file: {exc.strerror or exc}")]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return None, [Problem(filename, line, f"not UTF-8 text (byte {data[exc.start]:#04x}); save the file as UTF-8")]


def _read_regular(path: PathLike) -> bytes:
    # A FIFO or device named *.yaml would block or never end: only regular files are read.
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
    if not os.path.isfile(path):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    with open(path, "rb") as handle:
        return handle.read()


def _reader_problem(exc: yaml.reader.ReaderError, text: str, filename: str) -> Problem:
    line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else 1
    char = exc.character  # PyYAML gives the code point of the character it refused
    shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
    return Problem(filename, line, f"invalid YAML: the character {shown} is not allowed in YAML text "
                                   "(a control character or a lone surrogate); remove it")


def _convert(loader: _Loader, node: yaml.Node, path: Path, lines: dict[Path, int],
             problems: list[Problem], filename: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _key(loader, key_node)
            line = key_node.start_mark.line + 1
            if key in out:
                first = lines[path + (key,)]
                problems.append(Problem(filename, line, f"duplicate key '{key}' (first at line {first})",
                                        path=path + (key,)))  # the rule loader names the rule from it
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
    try:
        return loader.construct_object(node, deep=True)
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        problems.append(Problem(filename, node.start_mark.line + 1, "invalid value: a number too long to read"))
        return None


def _key(loader: _Loader, node: yaml.Node) -> Any:
    # Keys are read as written: `on:` is the string "on", `3:` is the string "3".
    if isinstance(node, yaml.ScalarNode):
        return node.value
    return loader.construct_object(node, deep=True)
