"""The events directory: which files count, in what order, and moving them out without loss.

README "The daemon": ``*.json`` (object or array) and ``*.ndjson``; names starting
with ``.`` or ending in ``.tmp`` or ``.part`` are ignored; handled files move
to ``processed/``, unhandled ones to ``failed/`` beside ``NAME.error``.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

PROCESSED, FAILED = "processed", "failed"
SUFFIXES = (".json", ".ndjson")


def is_event_file(path: Path) -> bool:
    """Whether the daemon should read this file (it must sit directly in the events directory)."""
    name = path.name
    return not name.startswith(".") and name.endswith(SUFFIXES) and not name.endswith((".tmp", ".part"))


def type_from_name(name: str, known: Iterable[str]) -> str | None:
    """``deliveries-42.github.workflow_run.json`` -> ``github.workflow_run``: the longest known type
    the name ends with, for raw webhook payloads that carry no type (README "The daemon")."""
    stem = name.rsplit(".", 1)[0]
    matches = [t for t in known if stem.endswith("." + t)]
    return max(matches, key=len) if matches else None


def backlog(folder: Path) -> list[Path]:
    """Event files already waiting, oldest first (modification time, then name)."""
    # Not is_file(): that follows links and skips FIFOs, and the daemon must see both to refuse them.
    files = [p for p in folder.iterdir() if is_event_file(p) and not _is_dir(p)]
    return sorted(files, key=lambda p: (_mtime(p), p.name))


def move(path: Path, folder: Path, error: str | None = None) -> Path:
    """Move ``path`` into ``folder`` without ever overwriting: ``x.json``, then ``x~1.json``, ...
    With ``error``, write ``NAME.error`` beside it first (atomically), so a failed file never
    appears without its reason."""
    folder.mkdir(exist_ok=True)
    stem, dot, ext = path.name.rpartition(".")
    for n in range(10_000):
        target = folder / (path.name if n == 0 else f"{stem}~{n}{dot}{ext}")
        if error is not None and not _claim(folder / (target.name + ".error"), error):
            continue
        try:
            os.link(path, target, follow_symlinks=False)  # unlike rename, fails if the target exists
        except FileExistsError:
            if error is not None:
                (folder / (target.name + ".error")).unlink(missing_ok=True)
            continue
        os.unlink(path)
        return target
    raise OSError(f"no free name for {path.name} in {folder}")


def _claim(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` only if no such file exists (write a temp file, then link)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    try:
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except FileNotFoundError:
        return True


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")
