"""The line-aware YAML loader."""
from __future__ import annotations

from engine.source import load_yaml_text


def test_only_true_and_false_are_booleans() -> None:
    doc, problems = load_yaml_text("on: build\na: yes\nb: no\nc: off\nd: true\ne: False\n", "f.yaml")
    assert not problems
    assert doc.data == {"on": "build", "a": "yes", "b": "no", "c": "off", "d": True, "e": False}


def test_lines_of_nested_keys_and_list_items() -> None:
    doc, _ = load_yaml_text("triggers:\n  - id: a\n    match:\n      branch: main\n  - id: b\n", "f.yaml")
    assert doc.line(("triggers", 0, "match", "branch")) == 4
    assert doc.line(("triggers", 1)) == 5
    assert doc.line(("triggers", 1, "nope", "deeper")) == 5


def test_duplicate_keys_are_problems() -> None:
    _, problems = load_yaml_text("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert [str(p) for p in problems] == ["f.yaml:3: duplicate key 'a' (first at line 1)"]


def test_an_empty_file_is_empty() -> None:
    doc, problems = load_yaml_text("# nothing\n", "f.yaml")
    assert doc.data is None and not problems
