"""Named API tokens (engine/web/tokens.py): hashes only, written atomically with mode 0600, a broken line
named by file and line, names checked, and the server's view re-read when the file changes on disk."""
from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.web import tokens
from engine.web.tokens import Entry, Tokens

NOW = 1_796_308_173.0  # 2026-12-03T14:29:33Z
HASH = "ab" * 32


def test_add_keeps_only_the_hash_with_mode_0600_and_the_token_matches(tmp_path: Path) -> None:
    path = tmp_path / "people.tokens"
    token = tokens.add(path, "alice", NOW)
    assert token.startswith("pgr_") and len(token) == 4 + 43
    text = path.read_text()
    assert token not in text
    assert f"alice sha256:{hashlib.sha256(token.encode()).hexdigest()} 2026-12-03T14:29:33Z\n" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["people.tokens"]  # no temporary file left behind
    entries = tokens.load_tokens(path)
    assert tokens.match(entries, token) == Entry("alice", hashlib.sha256(token.encode()).hexdigest(), NOW)
    assert tokens.match(entries, token + "x") is None and tokens.match(entries, "") is None
    assert tokens.match(entries, None) is None


def test_each_token_is_new_and_names_are_unique_case_insensitively(tmp_path: Path) -> None:
    path = tmp_path / "t"
    first = tokens.add(path, "alice", NOW)
    with pytest.raises(ConfigError) as caught:
        tokens.add(path, "Alice", NOW)
    assert str(caught.value) == (f"{path}: alice already has an active token; revoke it first "
                                 "(pagerules token revoke alice) to give a new one")
    assert tokens.add(path, "bob", NOW) != first


def test_revoke_keeps_the_name_and_a_revoked_name_may_get_a_new_token(tmp_path: Path) -> None:
    path = tmp_path / "t"
    old = tokens.add(path, "alice", NOW)
    done = tokens.revoke(path, "alice", NOW + 60)
    assert done.revoked == NOW + 60 and not done.active
    assert "alice sha256:" in path.read_text() and " revoked 2026-12-03T14:30:33Z" in path.read_text()
    assert tokens.match(tokens.load_tokens(path), old) is None
    assert tokens.revoke(path, "alice", NOW + 120).revoked == NOW + 60  # revoking twice changes nothing
    new = tokens.add(path, "alice", NOW + 180)
    entries = tokens.load_tokens(path)
    assert [e.name for e in entries] == ["alice"] and entries[0].active
    assert tokens.match(entries, new) is not None and tokens.match(entries, old) is None
    with pytest.raises(ConfigError) as caught:
        tokens.revoke(path, "bob", NOW)
    assert str(caught.value) == f"{path}: no token named 'bob' (names: alice)"


@pytest.mark.parametrize(("name", "problem"), [
    ("", "'' is not a valid name"), ("two words", "'two words' is not a valid name"),
    ("-dash", "'-dash' is not a valid name"), ("x" * 65, "is not a valid name"),
    ("api", "'api' is reserved"), ("Dashboard", "'Dashboard' is reserved"), ("rules", "'rules' is reserved"),
    ("cli", "'cli' is reserved"), ("reconcile", "'reconcile' is reserved"),
    ("cli:alice", "is not a valid name"),
    ("pgr_AAAAsecretlooking", "a name may not start with 'pgr_'")])
def test_names_have_a_charset_and_reserved_ones_are_refused(tmp_path: Path, name: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        tokens.add(tmp_path / "t", name, NOW)
    assert problem in str(caught.value)
    assert "AAAAsecretlooking" not in str(caught.value)  # a token pasted as a name is not repeated
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("name", ["alice", "alice.smith", "a_b-c", "alice@example.com", "A1"])
def test_sensible_names_are_taken(tmp_path: Path, name: str) -> None:
    tokens.add(tmp_path / "t", name, NOW)
    assert [e.name for e in tokens.load_tokens(tmp_path / "t")] == [name]


@pytest.mark.parametrize(("line", "message"), [
    ("alice", "expected NAME sha256:HASH CREATED [revoked WHEN], got 1 fields"),
    (f"alice sha256:{HASH} 2026-12-03T14:29:33Z gone 2026-12-03T14:29:33Z",
     "expected NAME sha256:HASH CREATED [revoked WHEN], got 5 fields"),
    ("alice pgr_thetokenitself 2026-12-03T14:29:33Z",
     "alice: the second field must be sha256: and 64 lowercase hex digits (the hash of the token, never the token "
     "itself)"),
    (f"bob sha256:{HASH} yesterday", "bob: created time 'yesterday': expected UTC like 2026-12-03T14:29:33Z"),
    (f"bob sha256:{HASH} 2026-12-03T14:29:33Z revoked soon", "bob: revoked time 'soon'"),
    (f"ALICE sha256:{HASH} 2026-12-03T14:29:33Z", "ALICE: the name is already on line 2"),
    (f"api sha256:{HASH} 2026-12-03T14:29:33Z", "'api' is reserved")])
def test_a_broken_line_is_named_by_file_and_line(line: str, message: str) -> None:
    text = f"# people\nalice sha256:{'cd' * 32} 2026-12-03T14:29:33Z\n\n{line}\n"
    with pytest.raises(ConfigError) as caught:
        tokens.parse_tokens(text, "people.tokens")
    assert str(caught.value).startswith("people.tokens:4: ") and message in str(caught.value)
    assert "thetokenitself" not in str(caught.value)


def test_the_text_round_trips_with_comments_ignored() -> None:
    entries = [Entry("alice", HASH, NOW), Entry("bob", "cd" * 32, NOW, NOW + 1)]
    text = tokens.format_tokens(entries)
    assert text.startswith("# pagerules named API tokens")
    assert tokens.parse_tokens(text + "# a comment\n   \n", "f") == entries


def test_a_missing_file_has_no_entries_and_a_missing_folder_is_named(tmp_path: Path) -> None:
    assert tokens.load_tokens(tmp_path / "nope") == []
    with pytest.raises(ConfigError) as caught:
        tokens.add(tmp_path / "no" / "t", "alice", NOW)
    assert str(caught.value) == f"{tmp_path / 'no' / 't'}: the tokens file's folder {tmp_path / 'no'} does not exist"


def test_adds_at_the_same_time_keep_every_name(tmp_path: Path) -> None:
    path, start = tmp_path / "t", threading.Barrier(8)

    def add(n: int) -> None:
        start.wait(timeout=30)
        tokens.add(path, f"person{n}", NOW)
    workers = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(e.name for e in tokens.load_tokens(path)) == [f"person{n}" for n in range(8)]


def test_the_server_view_follows_the_file_on_disk_without_a_restart(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "t"
    view = Tokens(str(path))  # no file yet: nobody
    assert view.entries() == []
    alice = tokens.add(path, "alice", NOW)
    assert view.person(alice) is not None and view.still_active("alice", NOW)
    bob = tokens.add(path, "bob", NOW)
    assert view.person(bob) is not None
    tokens.revoke(path, "alice", NOW + 5)
    assert view.person(alice) is None and not view.still_active("alice", NOW)
    good = path.read_text()
    path.write_text(good + "broken line here\n")  # edited by hand, badly: no named token until mended
    assert view.person(bob) is None and view.error is not None and view.error.startswith(f"{path}:5: ")
    assert f"{path}:5: " in caplog.text and bob not in caplog.text
    path.write_text(good)
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock's granularity
    assert view.person(bob) is not None and view.error is None


def test_a_broken_file_at_start_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("alice\n")
    with pytest.raises(ConfigError) as caught:
        Tokens(str(path))
    assert str(caught.value).startswith(f"{path}:1: expected NAME")


def test_the_file_is_re_read_only_when_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t"
    tokens.add(path, "alice", NOW)
    view = Tokens(str(path))
    reads: list[str] = []
    real = tokens.load_tokens
    monkeypatch.setattr(tokens, "load_tokens", lambda p: reads.append(str(p)) or real(p))
    for _ in range(3):
        assert [e.name for e in view.entries()] == ["alice"]
    assert reads == []
    tokens.add(path, "bob", NOW)  # replaced by a rename: another inode
    assert [e.name for e in view.entries()] == ["alice", "bob"] and len(reads) == 2  # add read it, then the view
