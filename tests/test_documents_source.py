"""The line-aware YAML loader."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.documents import source
from engine.documents.source import load_yaml_text, read_text_file


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


# Issue 11 item 6: bad characters raised ReaderError out of the loader (a traceback in validate, the daemon exited).
@pytest.mark.parametrize("text, line", [
    ("triggers: []\n\x00\n", 2),
    ("a: 1\nb: x\x07y\n", 2),
    ("a: \ud800\n", 1),  # a lone surrogate, as surrogateescape decoding makes of a bad byte
])
def test_a_character_yaml_refuses_is_a_problem_at_its_line(text: str, line: int) -> None:
    doc, problems = load_yaml_text(text, "rules/x.yaml")
    assert doc.data is None
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [(line, "invalid YAML")]
    assert "not allowed in YAML text" in problems[0].message


def test_deep_nesting_and_huge_numbers_are_problems_not_exceptions() -> None:
    assert [str(p) for p in load_yaml_text("[" * 5000, "f.yaml")[1]] == ["f.yaml:1: invalid YAML: nested too deeply"]
    _, problems = load_yaml_text("a: 1\nb: " + "9" * 5000 + "\n", "f.yaml")
    assert [str(p) for p in problems] == ["f.yaml:2: invalid value: a number too long to read"]


# Issue 11 item 7: this 271-byte alias bomb took validate 28 s and then a MemoryError.
ALIAS_BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
              + "".join(f"{chr(98 + n)}: &{chr(98 + n)} [{','.join(['*' + chr(97 + n)] * 9)}]\n" for n in range(8)))


def test_an_alias_bomb_is_refused_at_its_first_anchor() -> None:
    assert len(ALIAS_BOMB) < 400
    doc, problems = load_yaml_text(ALIAS_BOMB, "rules/bomb.yaml")
    assert doc.data is None
    assert [str(p) for p in problems] == [
        "rules/bomb.yaml:1: invalid YAML: YAML anchors (&name) and aliases (*name) are not allowed here: "
        "write the value out in full (aliases can expand a few bytes into gigabytes)"]


def test_an_alias_alone_is_refused_too_at_its_line() -> None:
    _, problems = load_yaml_text("a: 1\nb: *nowhere\n", "f.yaml")
    assert [p.line for p in problems] == [2] and "aliases" in problems[0].message


def test_a_folder_bad_bytes_and_a_fifo_are_problems_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "e9.yaml").write_bytes(b"a: 1\nb: caf\xe9\n")
    os.mkfifo(tmp_path / "pipe.yaml")
    results = {name: read_text_file(tmp_path / name, name) for name in ("dir.yaml", "e9.yaml", "pipe.yaml")}
    assert {name: [str(p) for p in found] for name, (_, found) in results.items()} == {
        "dir.yaml": ["dir.yaml:1: is a folder, not a file: rename or move it"],
        "e9.yaml": ["e9.yaml:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"],
        "pipe.yaml": ["pipe.yaml:1: cannot read the file: not a regular file"],
    }
    (tmp_path / "ok.yaml").write_text("a: é\n", encoding="utf-8")
    assert read_text_file(tmp_path / "ok.yaml", "ok.yaml") == ("a: é\n", [])


# Issue 17: libyaml's C parser reads the text (start-up with 1,000 rules was 3.6x the shipped rules', mostly
# PyYAML's pure-Python scanner); PyYAML's own parser words every error. Both must give the same Document.
TRICKY = [
    "triggers:\n  - id: a\n    on: build\n    match: {status: failed, repo: 'acme/x'}\n",
    "\ufeffa: 1\n",  # a byte-order mark
    "a: |\n  two\n  lines\nb: >-\n  folded\n  text\nc: \"esc\\taped \\u00e9\"\n",
    "? complex\n: key\n'quoted: key': 1\n\"3\": three\n4: four\non: x\n",
    "a: [1, 2.5, -3, 0x1f, 1e3, .inf, null, ~, '', yes, No, TRUE]\n",
    "a: 2026-12-03\nb: 2026-12-03T14:00:00Z\n",
    "a: 1\n---\nb: 2\n",  # two documents
    "a: &x 1\nb: *x\n",
    "a: !!python/object:os.system x\n",
    "a: !custom x\n",
    "a:\n\t- b\n",  # a tab as indentation
    "a: 1\n a: 2\n",
    "a: [1, 2\n",
    "a: b: c\n",
    "- a\nb: 1\n",
    "%YAML 1.1\n---\na: 1\n",
    "%YAML 2.0\n---\na: 1\n",
    "a: 'unterminated\n",
    "a: 1\na: 2\nb: {x: 1, x: 2}\n",
    "[" * 300 + "]" * 300,
    "[" * 5000 + "]" * 5000,
    "a: " + "9" * 5000 + "\n",
    "emoji: \U0001F600\n",
    "branch: 'release/*'\nowner: AT&T\nx: [a, b]\n",  # & and * in values: the composer that refuses aliases
    "on: build\nmatch: {branch: main, a: yes}\nn: [1, 2]\n",  # neither: libyaml's own composer
    "a: \x85b\n",
    "",
    "# only a comment\n",
    "---\n...\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_the_c_parser_and_the_python_parser_give_the_same_document(text: str) -> None:
    assert load_yaml_text(text, "f.yaml") == load_yaml_text(text, "f.yaml", fast=False)


def test_every_yaml_file_of_the_project_loads_the_same_with_either_parser() -> None:
    root = Path(__file__).resolve().parent.parent
    files = [path for folder in ("rules", "tests", "examples") if (root / folder).is_dir()
             for path in sorted((root / folder).rglob("*.y*ml"))] + [root / "pagerduty.yaml"]
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        assert load_yaml_text(text, path.name) == load_yaml_text(text, path.name, fast=False), path


def test_a_valid_file_is_parsed_by_libyaml_and_an_invalid_one_worded_by_pyyaml(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pure: list[str] = []

    class Counting(source._Loader):
        def __init__(self, stream: str) -> None:
            pure.append(stream)
            super().__init__(stream)

    monkeypatch.setattr(source, "_Loader", Counting)
    assert load_yaml_text("a: 1\n", "f.yaml")[0].data == {"a": 1}
    assert pure == ([] if source._CParser is not None else ["a: 1\n"])
    _, problems = load_yaml_text("a: 1\nb: [1\n", "rules/f.yaml")
    assert [str(p).split(": invalid YAML")[0] for p in problems] == ["rules/f.yaml:3"]
    assert pure[-1] == "a: 1\nb: [1\n"


def test_without_libyaml_the_pure_python_parser_does_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "_CParser", None)
    doc, problems = load_yaml_text("a: 1\nb:\n  - x\n", "f.yaml")
    assert (doc.data, doc.line(("b", 0)), problems) == ({"a": 1, "b": ["x"]}, 3, [])
    assert [p.line for p in load_yaml_text("a: 1\nb: *x\n", "f.yaml")[1]] == [2]


def test_libyaml_composes_alone_only_a_text_that_cannot_hold_an_anchor_or_alias(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if source._CParser is None:
        pytest.fail("libyaml is a dependency of this project (PyYAML's wheels bring it)")
    used: list[str] = []

    def counting(name: str) -> type:
        base = getattr(source, name)

        class Counting(base):  # type: ignore[misc,valid-type]
            def __init__(self, text: str) -> None:
                used.append(name)
                super().__init__(text)
        return Counting

    for name in ("_CLoader", "_CComposer"):
        monkeypatch.setattr(source, name, counting(name))
    assert load_yaml_text("a: 1\n", "f.yaml")[0].data == {"a": 1}
    assert load_yaml_text("a: '*'\n", "f.yaml")[0].data == {"a": "*"}
    assert [p.line for p in load_yaml_text("a: 1\nb: &x 2\n", "f.yaml")[1]] == [2]
    assert used == ["_CComposer", "_CLoader", "_CLoader"]
