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

Speed: with libyaml installed its C parser reads the text (ten times PyYAML's pure-Python
scanner, most of a large rule set's load); any text it refuses is read again by PyYAML's own
parser, so every error keeps PyYAML's wording and line. A text with no ``&`` or ``*`` anywhere
(so no anchor or alias) is composed by libyaml too; any other goes through the composer that
refuses them. Resolver and constructor are the same on every path.
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


class _RefuseAliases:
    """Composer step shared by both loaders: an anchor or an alias is an error at its mark."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, _NO_ALIASES, event.start_mark)
        return super().compose_node(parent, index)  # type: ignore[misc,no-any-return]


class _Loader(_RefuseAliases, yaml.SafeLoader):
    """SafeLoader whose implicit booleans are only true/false, any case, and that refuses anchors and aliases."""


_BOOLEANS = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


def _resolvers(cls: Any) -> None:
    cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    cls.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOLEANS, list("tTfF"))


_resolvers(_Loader)

_CParser: Any = getattr(getattr(yaml, "cyaml", None), "CParser", None) if yaml.__with_libyaml__ else None

if _CParser is not None:
    class _CLoader(_RefuseAliases, _CParser, yaml.composer.Composer,  # type: ignore[misc]
                   yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """libyaml's C scanner and parser under the same Python composer, resolver and constructor as _Loader.

        The C parser is about ten times faster than PyYAML's; its own composer is bypassed (it cannot
        refuse aliases), so the composer's methods it would shadow are taken back from Composer."""

        get_single_node = yaml.composer.Composer.get_single_node
        get_node = yaml.composer.Composer.get_node
        check_node = yaml.composer.Composer.check_node

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    class _CComposer(_CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc]
        """libyaml's own composer too, for a text with no ``&`` or ``*`` anywhere: no anchor or alias can be in it."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _resolvers(_CLoader)
    _resolvers(_CComposer)


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


def load_yaml_text(text: str, filename: str, *, fast: bool = True) -> tuple[Document, list[Problem]]:
    """Parse YAML ``text``; a syntax error, a bad character or a duplicate key becomes a Problem. Never raises.

    With libyaml installed (and ``fast``), libyaml's C parser reads the text first; on any error there,
    or without libyaml, PyYAML's own parser reads it again, and its messages and lines are the Problems.
    Every path has the same resolver and constructor, so data, lines and checks are the same either way."""
    if fast and _CParser is not None:
        composed = _compose_fast(text)
        if composed is not None:
            return _document(*composed, filename)
    try:
        loader = _Loader(text)  # checks every character first: NUL, other controls, lone surrogates
    except yaml.reader.ReaderError as exc:
        return Document(filename, None), [_reader_problem(exc, text, filename)]
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(filename, None, {(): 1}), []
    except yaml.reader.ReaderError as exc:
        return Document(filename, None), [_reader_problem(exc, text, filename)]
    except yaml.YAMLError as exc:
        return Document(filename, None), [_yaml_problem(exc, filename)]
    except RecursionError:
        return Document(filename, None), [Problem(filename, 1, "invalid YAML: nested too deeply")]
    finally:
        loader.dispose()
    return _document(loader, node, filename)


def _compose_fast(text: str) -> tuple[Any, yaml.Node] | None:
    """libyaml's loader and the node tree it composed, or None for anything but a clean, non-empty document."""
    try:
        loader = _CLoader(text) if "&" in text or "*" in text else _CComposer(text)
        node = loader.get_single_node()
    except Exception:  # noqa: BLE001 - any failure is worded by the pure-Python parse that follows
        return None
    return None if node is None else (loader, node)


def _document(loader: Any, node: yaml.Node, filename: str) -> tuple[Document, list[Problem]]:
    lines: dict[Path, int] = {(): node.start_mark.line + 1}
    problems: list[Problem] = []
    try:
        data = _convert(loader, node, (), lines, problems, filename)
    except yaml.YAMLError as exc:  # a tag the safe constructor does not know
        return Document(filename, None), [_yaml_problem(exc, filename)]
    except RecursionError:
        return Document(filename, None), [Problem(filename, 1, "invalid YAML: nested too deeply")]
    return Document(filename, data, lines), problems


def _yaml_problem(exc: yaml.YAMLError, filename: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        return Problem(filename, mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem or exc}")
    return Problem(filename, 1, f"invalid YAML: {exc}")


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


def _convert(loader: Any, node: yaml.Node, path: Path, lines: dict[Path, int],
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


def _key(loader: Any, node: yaml.Node) -> Any:
    # Keys are read as written: `on:` is the string "on", `3:` is the string "3".
    if isinstance(node, yaml.ScalarNode):
        return node.value
    return loader.construct_object(node, deep=True)
