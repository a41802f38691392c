"""Named API tokens, one per person (README "People and tokens").

The tokens file (``tokens_file`` / PAGERULES_TOKENS_FILE) holds one line per person and never a
token, only its SHA-256, as GitHub keeps personal access tokens: a token is 32 random bytes, so a
plain hash cannot be searched back to it and needs no salt or slow KDF. A line is

    NAME  sha256:HEX  CREATED  [revoked REVOKED]

with the times in UTC (``2026-12-03T14:29:33Z``); ``#`` starts a comment. The file is written
whole to a temporary file beside it and renamed over it (mode 0600), so a reader never sees half a
file; writers take a lock so two ``pagerules token add`` at once keep both names.

``Tokens`` is the server's view: it re-reads the file when it changes on disk, so an edit or a
revocation takes effect for the next request without a restart.
"""
from __future__ import annotations

import calendar
import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from engine.errors import ConfigError
from engine.names import SYSTEM_ACTORS

log = logging.getLogger("pagerules.server")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
NAME_RULE = "1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
# The actors pagerules records itself (the rules, reconcile, the CLI, PAGERULES_API_TOKEN over the API and
# the dashboard): a person named so would be indistinguishable from them in the audit trail and PagerDuty's notes.
RESERVED = SYSTEM_ACTORS
TOKEN_PREFIX = "pgr_"  # as GitHub's ghp_: a secret scanner can recognise a leaked pagerules token
HASH_PREFIX = "sha256:"
HEX = re.compile(r"[0-9a-f]{64}")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
HEADER = ("# pagerules named API tokens (README \"People and tokens\"): NAME sha256:HASH CREATED [revoked WHEN].\n"
          "# Only hashes are kept here; manage it with `pagerules token add|revoke|list`.\n")


@dataclass(frozen=True)
class Entry:
    name: str
    digest: str = ""  # hex SHA-256 of the token; never printed
    created: float = 0.0
    revoked: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def new_token() -> str:
    """A fresh token: the prefix and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a person's name, or None. A name that looks like a token is
    refused without being repeated (it may be one pasted in the wrong place)."""
    if name.lower().startswith(TOKEN_PREFIX):
        return f"a name may not start with {TOKEN_PREFIX!r}, the tokens' own prefix (is a token in the wrong place?)"
    if not NAME.fullmatch(name):
        return f"{name[:80]!r} is not a valid name: {NAME_RULE}"
    if name.lower() in RESERVED:
        return f"{name!r} is reserved (pagerules records {', '.join(sorted(RESERVED))} itself); choose another name"
    return None


def parse_tokens(text: str, filename: str) -> list[Entry]:
    """The entries of a tokens file's text; a broken line raises ConfigError naming ``filename:line``."""
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{filename}:{number}"
        fields = line.split()
        if len(fields) not in (3, 5) or (len(fields) == 5 and fields[3] != "revoked"):
            raise ConfigError(f"{where}: expected NAME sha256:HASH CREATED [revoked WHEN], got {len(fields)} "
                              "fields")
        name, hashed, created = fields[:3]
        problem = name_problem(name)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        if not hashed.startswith(HASH_PREFIX) or not HEX.fullmatch(hashed[len(HASH_PREFIX):]):
            raise ConfigError(f"{where}: {name}: the second field must be sha256: and 64 lowercase hex digits "
                              "(the hash of the token, never the token itself)")
        made = _time(created, where, name, "created")
        revoked = _time(fields[4], where, name, "revoked") if len(fields) == 5 else None
        if name.lower() in seen:
            raise ConfigError(f"{where}: {name}: the name is already on line {seen[name.lower()]}; names are "
                              "unique (case-insensitively)")
        seen[name.lower()] = number
        entries.append(Entry(name, hashed[len(HASH_PREFIX):], made, revoked))
    return entries


def _time(text: str, where: str, name: str, field: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(text, TIME_FORMAT)))
    except ValueError:
        raise ConfigError(f"{where}: {name}: {field} time {text[:40]!r}: expected UTC like "
                          "2026-12-03T14:29:33Z") from None


def format_tokens(entries: Sequence[Entry]) -> str:
    lines = [HEADER]
    for e in entries:
        revoked = f" revoked {_stamp(e.revoked)}" if e.revoked is not None else ""
        lines.append(f"{e.name} {HASH_PREFIX}{e.digest} {_stamp(e.created)}{revoked}\n")
    return "".join(lines)


def _stamp(at: float) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(at))


def load_tokens(path: str | Path) -> list[Entry]:
    """The file's entries; none when it does not exist yet (``token add`` creates it)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the tokens file: {exc}") from None
    return parse_tokens(text, str(path))


def match(entries: Sequence[Entry], token: str | None) -> Entry | None:
    """The active entry whose hash is the token's, comparing every one in constant time."""
    if not token:
        return None
    given = digest(token)
    found = None
    for entry in entries:
        if hmac.compare_digest(entry.digest, given) and entry.active:
            found = entry
    return found


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the file's folder (the file itself is replaced, so cannot carry it), held
    while the file is read, changed and replaced."""
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock


def _write(path: Path, entries: Sequence[Entry]) -> None:
    """Write the whole file beside it with mode 0600, then rename it over the old one."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(format_tokens(entries))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _folder(path: str | Path) -> Path:
    target = Path(path)
    if not target.parent.is_dir():
        raise ConfigError(f"{target}: the tokens file's folder {target.parent} does not exist")
    return target


def add(path: str | Path, name: str, now: float) -> str:
    """Give ``name`` a new token and return it (the only time it exists outside its owner's hands).
    A name with an active token is refused; a revoked name gets a new token in place of the old one."""
    problem = name_problem(name)
    if problem:
        raise ConfigError(problem)
    target = _folder(path)
    token = new_token()
    with _locked(target):
        entries = load_tokens(target)
        same = [e for e in entries if e.name.lower() == name.lower()]
        if same and same[0].active:
            raise ConfigError(f"{target}: {same[0].name} already has an active token; revoke it first "
                              f"(pagerules token revoke {same[0].name}) to give a new one")
        fresh = Entry(name, digest(token), float(int(now)))
        _write(target, [e for e in entries if e not in same] + [fresh])
    return token


def revoke(path: str | Path, name: str, now: float) -> Entry:
    """Mark ``name``'s token revoked (kept, so the name and when it was revoked stay on record)."""
    target = _folder(path)
    with _locked(target):
        entries = load_tokens(target)
        same = [e for e in entries if e.name.lower() == name.lower()]
        if not same:
            known = ", ".join(e.name for e in entries) or "none yet"
            raise ConfigError(f"{target}: no token named {name[:80]!r} (names: {known})")
        if not same[0].active:
            return same[0]
        done = replace(same[0], revoked=float(int(now)))
        _write(target, [done if e is same[0] else e for e in entries])
    return done


class Tokens:
    """The server's view of the tokens file, re-read whenever it changes on disk (checked per request by
    its size, modification time and inode, which a rename changes). A file that turns broken while
    serving accepts no named token until it is mended (logged once per change): refusing is safe,
    PAGERULES_API_TOKEN still signs in, and the error names the line."""

    def __init__(self, path: str | None, stat: Callable[[str], os.stat_result] = os.stat):
        self.path, self._stat = path, stat
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._entries: list[Entry] = []
        self.error: str | None = None
        if path is not None:
            self._entries = load_tokens(path)  # broken at start: refuse to start, naming the line
            self._seen = self._key()

    def entries(self) -> list[Entry]:
        if self.path is None:
            return []
        with self._lock:
            key = self._key()
            if key != self._seen:
                self._seen = key
                try:
                    self._entries, self.error = load_tokens(self.path), None
                except ConfigError as exc:
                    self._entries, self.error = [], str(exc)
                    log.error("named tokens refused until the tokens file is mended: %s", exc)
            return self._entries

    def person(self, token: str | None) -> Entry | None:
        """The person whose active token this is, or None."""
        return match(self.entries(), token)

    def still_active(self, name: str, created: float) -> bool:
        """``name``'s token issued at ``created`` is still in the file and not revoked (a signed-in
        session holds these two, never the token or its hash)."""
        return any(e.name == name and e.created == created and e.active for e in self.entries())

    def _key(self) -> tuple[int, int, int] | None:
        try:
            found = self._stat(str(self.path))
        except FileNotFoundError:
            return None
        return (found.st_ino, found.st_size, found.st_mtime_ns)
