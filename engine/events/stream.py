"""Events: reading them from a stream and checking each against its type's schema.

Input is one JSON object, a JSON array of objects, JSON lines, or a run of
pretty-printed objects, read line by line so a million-line input is never
held in memory. A malformed document is an error naming its line; reading goes
on with the next one.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.documents.strictjson import BadJSON, decode, raw_decode


@dataclass(slots=True)
class Parsed:
    """One item read from input: an event, or why there is none.

    Slotted, with ``where`` (e.g. ``stdin line 4``) built only when asked: one is
    made per input line.
    """

    source: str
    line: int
    event: dict[str, Any] | None = None
    error: str | None = None
    item: int | None = None
    lines: int = 1

    @property
    def where(self) -> str:
        span = f"lines {self.line}-{self.line + self.lines - 1}" if self.lines > 1 else f"line {self.line}"
        return f"{self.source} {span}" + ("" if self.item is None else f" item {self.item}")


def read_events(lines: Iterable[str], source: str) -> Iterator[Parsed]:
    """Events from lines of text; see the module docstring for what is accepted.

    A top-level array is decoded an item at a time (bounded memory however long it is). Every
    refusal of the strict decoder (engine.documents.strictjson) is one error naming the line, and reading
    goes on with the next document.
    """
    reader = _Reader(source)
    feed = reader.feed
    for number, line in enumerate(lines, 1):
        if number == 1 and line.startswith("\ufeff"):
            line = line[1:]  # a byte-order mark some editors write
        if line[:1] == "{" and reader.idle():  # the common case, a JSON line, without feed's generator
            try:
                value = decode(line)
            except BadJSON:
                pass  # feed words it, or takes it as the first line of a longer document
            else:
                if type(value) is dict:
                    yield Parsed(source, number, value)
                    continue
        yield from feed(line, number)
    yield from reader.end()


class _Reader:
    """The state between lines: nothing open, a multi-line document, or an array being itemised."""

    def __init__(self, source: str):
        self.source = source
        self.buffer: list[str] = []  # a multi-line document (not an array)
        self.start = 0
        self.array: _Array | None = None
        self.skipping: Parsed | None = None  # a broken array: its lines up to the next document

    def idle(self) -> bool:
        """Nothing open: the next line starts a document of its own."""
        return self.skipping is None and self.array is None and not self.buffer

    def feed(self, line: str, number: int) -> Iterator[Parsed]:
        if self.skipping is not None:
            if line[:1] not in "{[]" or not line.strip():
                self.skipping.lines += 1
                return
            skipped, self.skipping = self.skipping, None
            skipped.lines += line[:1] == "]"
            skipped.error = f"{skipped.where}: {skipped.error}"
            yield skipped
            if line[:1] == "]":
                return
        if self.array is not None:
            yield from self._array_line(line, number)
            return
        if self.buffer:
            if _starts_complete_document(line):
                yield _broken(self.buffer, self.start, self.source)
                self.buffer = []
            else:
                self.buffer.append(line)
                if line[:1] in "}]":  # a document that opened at column 0 closes at column 0
                    done = _try_document(self.buffer, self.start, self.source)
                    if done is not None:
                        yield from done
                        self.buffer = []
                return
        if line.lstrip()[:1] == "[":
            self.array = _Array(self.source, number)
            yield from self._array_line(line, number)
            return
        try:
            value = decode(line)
        except BadJSON as exc:
            if not line.strip():
                return
            if _incomplete(exc, line):
                self.buffer, self.start = [line], number
            else:
                yield Parsed(self.source, number, error=f"{self.source} line {number}: not valid JSON: "
                             f"{exc.msg} (column {exc.pos + 1})")
            return
        if type(value) is dict:  # the common case, without a nested generator
            yield Parsed(self.source, number, value)
        else:
            yield from _items(value, self.source, number)

    def _array_line(self, line: str, number: int) -> Iterator[Parsed]:
        array = self.array
        assert array is not None
        yield from array.add(line, number)
        if array.error is not None:
            self.array = None
            self.skipping = Parsed(self.source, array.start, lines=number - array.start + 1, error=array.error)
            yield from self._replay(array.leftover)
        elif array.closed:
            self.array = None
            yield from self._replay(array.leftover)

    def _replay(self, lines: list[tuple[str, int]]) -> Iterator[Parsed]:
        for text, number in lines:
            yield from self.feed(text, number)

    def end(self) -> Iterator[Parsed]:
        if self.skipping is not None:
            skipped, self.skipping = self.skipping, None
            skipped.error = f"{skipped.where}: {skipped.error}"
            yield skipped
        if self.array is not None:
            array, self.array = self.array, None
            yield from array.finish()
        if self.buffer:
            done = _try_document(self.buffer, self.start, self.source)
            yield from done if done is not None else [_broken(self.buffer, self.start, self.source)]
            self.buffer = []


class _Array:
    """A top-level JSON array, decoded one item at a time from a buffer that holds at most the item
    in hand: a 200 MB pretty-printed array takes as little memory as the same events as lines."""

    def __init__(self, source: str, start: int):
        self.source, self.start = source, start
        self.text = ""
        self.first = start  # the line number text[0] is on
        self.index = 0
        self.expect = "["  # "[": the opening; "item"; "item or ]"; ", or ]"
        self.closed = False
        self.error: str | None = None
        self.leftover: list[tuple[str, int]] = []
        self.last = start
        self.indent: int | None = None  # of the first item's first line
        self.waiting = 0  # lines added since the last decoding attempt
        self.next_try = 64  # a fallback for odd layouts: the indentation test finds the usual closing line

    def add(self, line: str, number: int) -> Iterator[Parsed]:
        self.text += line
        self.last = number
        self.waiting += 1
        indent = len(line) - len(line.lstrip())
        if self.expect in ("item", "item or ]") and line.strip() and self.indent is None:
            self.indent = indent  # where pretty-printers put an item's opening, and so its closing
        if self.expect in ("item", "item or ]") and self.text.strip() and self.waiting < self.next_try \
                and not (indent <= (self.indent or 0) and line.rstrip().rstrip(",")[-1:] in ("}", "]")):
            return  # an item spans lines: try again at its closing line (or after twice as many lines)
        yield from self._scan(number)

    def _scan(self, number: int, final: bool = False) -> Iterator[Parsed]:
        text, pos = self.text, 0
        while True:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            if pos == len(text):
                break
            char = text[pos]
            if self.expect == "[":
                pos, self.expect = pos + 1, "item or ]"
            elif char == "]" and self.expect in ("item or ]", ", or ]"):
                self.closed = True
                after = text.find("\n", pos)
                if text[pos + 1:after if after >= 0 else len(text)].strip():
                    self._fail(text, pos + 1, "Extra data", number)
                else:
                    self._keep_after(text, after, number)
                return
            elif self.expect == ", or ]":
                if char != ",":
                    self._fail(text, pos, "Expecting ',' delimiter", number)
                    return
                pos, self.expect = pos + 1, "item"
            else:
                try:
                    value, pos = raw_decode(text, pos)
                except BadJSON as exc:
                    if not final and exc.pos >= len(text.rstrip()) or (not final and exc.msg.startswith(
                            "Invalid control character") and exc.pos >= len(text.rstrip("\n")) - 1):
                        break  # the item continues on the next line
                    self._fail(text, exc.pos, exc.msg, number)
                    return
                yield from _items_of(value, self.source, self.start, self.index)
                self.index += 1
                self.expect = ", or ]"
                self.waiting, self.next_try = 0, 64
        self.first += text.count("\n", 0, pos)
        self.text = text[pos:] if pos else text
        if self.waiting >= self.next_try:
            self.waiting, self.next_try = 0, self.next_try * 2

    def _fail(self, text: str, pos: int, message: str, number: int) -> None:
        line = self.first + text.count("\n", 0, pos)
        column = pos - text.rfind("\n", 0, pos)
        self.error = f"not valid JSON: {message} at line {line} column {column}"
        self._keep_after(text, text.find("\n", pos), number)

    def _keep_after(self, text: str, after: int, number: int) -> None:
        """The lines after the array's end or error go back to the reader, to find the next document."""
        parts = text[after + 1:].splitlines(keepends=True) if after >= 0 else []
        self.leftover = [(part, number - len(parts) + 1 + i) for i, part in enumerate(parts)]

    def finish(self) -> Iterator[Parsed]:
        yield from self._scan(self.last, final=True)
        if self.error is None and not self.closed:
            self.error = "not valid JSON: incomplete JSON: the array never closes"
        if self.error is not None:
            parsed = Parsed(self.source, self.start, lines=self.last - self.start + 1)
            parsed.error = f"{parsed.where}: {self.error}"
            yield parsed


def _starts_complete_document(line: str) -> bool:
    if not (line.startswith("{") and line.rstrip().endswith("}")):
        return False
    try:
        decode(line)
        return True
    except BadJSON:
        return False


def _try_document(buffer: list[str], start: int, source: str) -> list[Parsed] | None:
    text = "".join(buffer)
    try:
        value = decode(text)
    except BadJSON as exc:
        if _incomplete(exc, text):
            return None
        return [_broken(buffer, start, source, exc)]
    return list(_items(value, source, start))


def _broken(buffer: list[str], start: int, source: str, exc: BadJSON | None = None) -> Parsed:
    end = start + len(buffer) - 1
    if exc is None:
        reason = "incomplete JSON: the document never closes"
    else:
        text = "".join(buffer)
        line = text.count("\n", 0, exc.pos)
        reason = f"{exc.msg} at line {start + line} column {exc.pos - text.rfind(chr(10), 0, exc.pos)}"
    parsed = Parsed(source, start, lines=end - start + 1)
    parsed.error = f"{parsed.where}: not valid JSON: {reason}"
    return parsed


def _incomplete(exc: BadJSON, text: str) -> bool:
    return exc.pos >= len(text.rstrip())


def _items_of(item: Any, source: str, line: int, index: int) -> Iterator[Parsed]:
    parsed = Parsed(source, line, item=index)
    if isinstance(item, dict):
        parsed.event = item
    else:
        parsed.error = f"{parsed.where}: expected a JSON object, got {_preview(item)}"
    yield parsed


def _preview(value: Any) -> str:
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    return json.dumps(value)[:60]


def _items(value: Any, source: str, line: int) -> Iterator[Parsed]:
    if type(value) is dict:
        yield Parsed(source, line, value)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _items_of(item, source, line, index)
    else:
        yield Parsed(source, line, error=f"{source} line {line}: expected a JSON object, got {_preview(value)}")
