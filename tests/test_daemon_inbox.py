"""The events directory (engine/daemon/inbox.py): which files count, their order, and moves that never overwrite."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.daemon.inbox import backlog, is_event_file, move, type_from_name


@pytest.mark.parametrize(("name", "counts"), [
    ("a.json", True), ("a.ndjson", True), ("deliveries-1.github.workflow_run.json", True),
    (".a.json", False), ("a.json.tmp", False), ("a.json.part", False), ("a.txt", False), ("a.jsonl", False),
    ("a.error", False),
])
def test_only_json_and_ndjson_files_that_are_not_hidden_or_partial_count(name: str, counts: bool) -> None:
    assert is_event_file(Path("/spool") / name) is counts


@pytest.mark.parametrize(("name", "expected"), [
    ("deliveries-42.github.workflow_run.json", "github.workflow_run"),
    ("x.github.json", "github"),  # only the type the name ends with
    ("x.alertmanager.ndjson", "alertmanager"),
    ("x.json", None),
    ("x.unknown.json", None),
])
def test_the_type_in_a_file_name_is_the_longest_known_type_it_ends_with(name: str, expected: str | None) -> None:
    assert type_from_name(name, ["github", "github.workflow_run", "alertmanager"]) == expected


def test_the_backlog_is_oldest_first_then_by_name_and_skips_folders_and_other_files(tmp_path: Path) -> None:
    for name, mtime in (("c.json", 100), ("b.json", 200), ("a.json", 200), ("d.ndjson", 50), ("e.tmp", 1),
                        (".f.json", 1)):
        (tmp_path / name).write_text("{}")
        os.utime(tmp_path / name, (mtime, mtime))
    (tmp_path / "processed.json").mkdir()
    assert [p.name for p in backlog(tmp_path)] == ["d.ndjson", "c.json", "a.json", "b.json"]


def test_the_backlog_lists_links_and_fifos_so_the_daemon_can_refuse_them(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "link.json").symlink_to(tmp_path / "missing")
    assert sorted(p.name for p in backlog(tmp_path)) == ["link.json", "pipe.json"]


def test_a_move_never_overwrites_a_file_already_there(tmp_path: Path) -> None:
    folder = tmp_path / "processed"
    for text in ("first", "second", "third"):
        (tmp_path / "x.json").write_text(text)
        move(tmp_path / "x.json", folder)
    assert {p.name: p.read_text() for p in folder.iterdir()} == {"x.json": "first", "x~1.json": "second",
                                                                 "x~2.json": "third"}
    assert not (tmp_path / "x.json").exists()


def test_a_failed_file_lands_beside_its_reason_each_copy_with_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "failed"
    for reason in ("bad JSON at line 1", "bad JSON at line 2\n"):
        (tmp_path / "x.json").write_text("{")
        target = move(tmp_path / "x.json", folder, reason)
        assert (folder / (target.name + ".error")).read_text() == reason.rstrip("\n") + "\n"
    assert sorted(p.name for p in folder.iterdir()) == ["x.json", "x.json.error", "x~1.json", "x~1.json.error"]
    assert not any(p.name.endswith(".tmp") for p in folder.iterdir())  # the temporary reason files are gone
