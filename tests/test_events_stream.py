"""Reading events: object, array, JSON lines, pretty-printed; bad input named by line, never dropped."""
from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from builders import dry_run

from engine.events.stream import _Reader, read_events
from engine.events.types import event_id, load_event_types


def read(text: str) -> list[tuple[str, object]]:
    return [(p.where, p.event if p.event is not None else p.error) for p in read_events(io.StringIO(text), "stdin")]


def test_json_lines_skip_blank_lines() -> None:
    assert read('{"a":1}\n\n{"b":2}\n') == [("stdin line 1", {"a": 1}), ("stdin line 3", {"b": 2})]


def test_an_array_yields_each_object_and_names_a_bad_item() -> None:
    assert read('[{"a":1}, 3]') == [("stdin line 1 item 0", {"a": 1}),
                                    ("stdin line 1 item 1", "stdin line 1 item 1: expected a JSON object, got 3")]


def test_pretty_printed_objects_and_arrays() -> None:
    assert read('{\n  "a": 1\n}\n[\n  {"b": 2}\n]\n') == [("stdin line 1", {"a": 1}), ("stdin line 4 item 0", {"b": 2})]


def test_a_malformed_line_is_reported_and_reading_goes_on() -> None:
    assert read('{"a":1}\n{"a": 2,, }\n{"c":3}\n') == [
        ("stdin line 1", {"a": 1}),
        ("stdin line 2", "stdin line 2: not valid JSON: Expecting property name enclosed in double quotes (column 9)"),
        ("stdin line 3", {"c": 3})]


def test_a_truncated_line_does_not_swallow_the_lines_after_it() -> None:
    assert read('{"a": 2, "b"\n{"c":3}\n') == [
        ("stdin line 1", "stdin line 1: not valid JSON: incomplete JSON: the document never closes"),
        ("stdin line 2", {"c": 3})]


def test_a_broken_pretty_printed_object_is_one_error() -> None:
    assert read('{\n  "a": 1\n  "b": 2\n}\n{"c":3}\n') == [
        ("stdin lines 1-4", "stdin lines 1-4: not valid JSON: Expecting ',' delimiter at line 3 column 3"),
        ("stdin line 5", {"c": 3})]


def test_input_ending_mid_document_is_reported() -> None:
    assert read('{"a":1}\n{"a":\n') == [
        ("stdin line 1", {"a": 1}),
        ("stdin line 2", "stdin line 2: not valid JSON: incomplete JSON: the document never closes")]


def test_the_derived_id_is_stable_and_content_based() -> None:
    a = event_id({"type": "build", "x": 1, "y": 2})
    assert a == event_id({"y": 2, "x": 1, "type": "build"}) and a.startswith("sha-") and len(a) == 20
    assert a != event_id({"type": "build", "x": 1, "y": 3})
    assert event_id({"id": "e1"}) == "e1"


@pytest.mark.parametrize("event, error", [
    ({"id": "x"}, "event has no 'type' (set it in the event, or use --type for raw webhook payloads)"),
    ({"type": "biuld", "id": "x"}, "unknown event type 'biuld' (did you mean 'build'? known: "
                                   f"{', '.join(sorted(load_event_types()))})"),
    ({"type": "build", "id": "x", "repo": "a/b", "branch": "main", "build_number": 1},
     "build: 'status' is a required property"),
    ({"type": "build", "id": "x", "repo": "a/b", "branch": "main", "build_number": 1, "status": "broken"},
     "build: status: 'broken' is not one of ['failed', 'passed']"),
    ({"type": "deploy.health", "id": "x", "repo": "a/b", "deploy": {}, "error_rate": "high",
      "baseline_error_rate": 0.1, "sustained_minutes": 0, "checks": {"passed": 1, "total": 1}},
     "deploy.health: deploy: 'version' is a required property; deploy.health: error_rate: 'high' is not of type "
     "'number'"),
])
def test_a_rejected_event_names_the_field(event: dict, error: str) -> None:  # type: ignore[type-arg]
    assert dry_run([event]) == [{"action": "error", "status": "rejected", "event_id": "x", "error": error}]


SENTINEL = '{"type": "build", "id": "ok", "repo": "a/b", "branch": "main", "build_number": 9, "status": "failed"}'


@pytest.mark.parametrize("bad, error", [
    ("[" * 1000 + "]" * 1000, "stdin line 1: not valid JSON: nested more than 64 deep at line 1 column 66"),
    ('{"type": "build", "n": ' + "9" * 5000 + "}",
     "stdin line 1: not valid JSON: a number with more than 4300 digits (column 24)"),
    ('{"id": NaN, "type": "build"}', "stdin line 1: not valid JSON: NaN is not a JSON number (column 8)"),
    ('{"type": "build", "x": Infinity}', "stdin line 1: not valid JSON: Infinity is not a JSON number (column 24)"),
    ('{"type": "build", "x": -Infinity}',
     "stdin line 1: not valid JSON: -Infinity is not a JSON number (column 24)"),
    ('{"type": "build", "x": 1e999}', "stdin line 1: not valid JSON: number 1e999 is out of range (column 24)"),
    ('{"x": ' + "[" * 70 + "]" * 70 + "}",
     "stdin line 1: not valid JSON: nested more than 64 deep (column 70)"),
])
def test_a_poison_document_is_one_error_and_reading_goes_on(bad: str, error: str) -> None:
    assert read(bad + "\n" + SENTINEL + "\n") == [("stdin line 1", error), ("stdin line 2", json.loads(SENTINEL))]


def test_poison_documents_do_not_stop_process_and_later_events_page() -> None:
    bad = ["[" * 1000 + "]" * 1000, '{"n": ' + "9" * 5000 + "}", '{"id": NaN}', "\udcff"]
    lines = dry_run("\n".join(bad + [SENTINEL]))
    assert [line["action"] for line in lines] == ["error"] * 4 + ["trigger"]
    assert lines[-1]["incident_key"] == "codespar-a-b-build-9"


def test_a_lone_surrogate_becomes_a_replacement_character_as_in_go() -> None:
    # Alertmanager (Go's encoding/json) turns an invalid UTF-16 escape into U+FFFD; so do we, so the
    # title and key can always be printed and sent.
    text = SENTINEL.replace("a/b", "a/\\ud800b") + "\n" + SENTINEL.replace("a/b", "a/\udcffc")
    lines = dry_run(text)
    assert [line["title"] for line in lines] == ["[CodeSpar] High: a/\ufffdb CI build #9 failed on main",
                                                 "[CodeSpar] High: a/\ufffdc CI build #9 failed on main"]
    for line in lines:
        json.dumps(line, ensure_ascii=False).encode("utf-8")


def test_a_pretty_printed_array_is_read_an_item_at_a_time() -> None:
    text = '[\n  {\n    "a": 1\n  },\n  {\n    "b": [\n      2\n    ]\n  }\n]\n{"c": 3}\n'
    assert read(text) == [("stdin line 1 item 0", {"a": 1}), ("stdin line 1 item 1", {"b": [2]}),
                          ("stdin line 11", {"c": 3})]
    consumed = []

    def lines() -> Iterator[str]:
        for line in text.splitlines(keepends=True):
            consumed.append(line)
            yield line
    assert next(read_events(lines(), "stdin")).event == {"a": 1}
    assert len(consumed) == 4  # the first item came out before the rest was read


def test_a_broken_array_keeps_its_good_items_and_the_document_after_it() -> None:
    text = '[\n  {"a": 1},\n  {"b": 2,, },\n  {"c": 3}\n]\n{"d": 4}\n'
    assert read(text) == [
        ("stdin line 1 item 0", {"a": 1}),
        ("stdin lines 1-5", "stdin lines 1-5: not valid JSON: Expecting property name enclosed in double quotes "
                            "at line 3 column 11"),
        ("stdin line 6", {"d": 4})]


def test_an_array_that_never_closes_is_reported() -> None:
    assert read('[\n  {"a": 1},\n') == [("stdin line 1 item 0", {"a": 1}),
                                        ("stdin lines 1-2", "stdin lines 1-2: not valid JSON: incomplete JSON: "
                                                            "the array never closes")]


# Issue 17 item 4: a JSON line is decoded without the reader's per-line generator when nothing is open;
# whatever is open (a document, an array, a broken array being skipped) still sees every line.
MIXED = [
    '{"a":1}\n{"b":2}\n',
    '{"a":\n{"b": 1}\n}\n{"c": 3}\n',  # a complete object line inside an open document
    '[\n{"a": 1},\n{"b": 2}\n]\n{"c": 3}\n',  # items at column 0 of an array
    '[\n{"a": 1}, x\n{"b": 2}\n]\n{"c": 3}\n',  # a broken array: its lines up to the next document
    '{"a": 1\n{"b": 2}\n',  # a document that never closes, then a line
    '{"a": 1}}\n{"b": NaN}\n{"c": 1e999}\n{"d": "\\ud800"}\n',
    '\ufeff{"a": 1}\n',
    '{"a": [1,\n2]}\n{"b": 2}',
]


@pytest.mark.parametrize("text", MIXED)
def test_the_json_line_shortcut_reads_as_the_line_by_line_reader_does(text: str) -> None:
    reader = _Reader("stdin")
    lines = io.StringIO(text).readlines()
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    slow = [p for number, line in enumerate(lines, 1) for p in reader.feed(line, number)] + list(reader.end())
    assert read(text) == [(p.where, p.event if p.event is not None else p.error) for p in slow]
