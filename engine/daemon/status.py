"""The daemon's status file: what `pagerules status` shows, written atomically, at most once a second.

A change inside that second is not dropped: it is written by the next ``flush()`` once the second
is over (the daemon calls it on every turn of its loop, at least once a second), so the file never
stays behind what the daemon knows.

The figures themselves live in an `engine.metrics.Figures` the status file owns and installs as this
process's: the file, `/healthz` and `/metrics` read that one object (README "Metrics").
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import metrics

WRITE_EVERY_SECONDS = 1.0
STATUS_NAME = ".pagerules-status.json"  # inside the events folder; hidden, so the daemon never reads it as events


def status_path(events_dir: Path) -> Path:
    """Where the daemon watching ``events_dir`` keeps its status file."""
    return events_dir / STATUS_NAME


class StatusFile:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time):
        self.path, self.clock = path, clock
        self.figures = metrics.Figures({"pid": os.getpid(), "started_at": time.time(), "state": "starting",
                                        "ruleset_version": None, "last_reload_error": None,
                                        "unhandled_events": {},
                                        "last_pagerduty_error": None, "last_pagerduty_error_at": None})
        self.figures.owner = _key(path)
        self.figures.on_change = self._write
        metrics.install(self.figures)  # /metrics shows this daemon's figures
        self._written = float("-inf")
        self._dirty = False

    @property
    def data(self) -> dict[str, Any]:
        """A copy of the figures, as the next write will put them in the file."""
        return self.figures.snapshot()

    def update(self, **values: Any) -> None:
        self.figures.set(force="state" in values or "last_reload_error" in values, **values)

    def bump(self, counter: str) -> None:
        self.figures.add(counter)

    def flush(self) -> None:
        """Write a change that was held back by the throttle, once the throttle allows."""
        if self._dirty:
            self._write()

    def _write(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._written < WRITE_EVERY_SECONDS:
            self._dirty = True
            return
        self._written, self._dirty = now, False
        self.figures.set(notify=False, updated_at=now)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(self.figures.snapshot(), indent=2) + "\n", encoding="utf-8")
        os.replace(temp, self.path)


def current_status(events_dir: Path) -> dict[str, Any] | None:
    """The status of the daemon on ``events_dir``, with ``running``, or None if none has run there.

    When that daemon runs in this process (`watch --http`), its figures are read live, from the
    object /metrics reads; otherwise from the status file it writes from that same object."""
    figures = metrics.live()
    path = status_path(events_dir)
    if figures.owner is not None and figures.owner == _key(path):
        data = figures.snapshot()
        data["running"] = data.get("state") == "running"  # this process is alive: it is answering
        return data
    return read_status(path)


def _key(path: Path) -> str:
    return os.path.realpath(path)


def read_status(path: Path) -> dict[str, Any] | None:
    """The last status a daemon wrote, with ``running`` (is that process alive?), or None."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    data["running"] = data.get("state") == "running" and _alive(int(data.get("pid") or 0))
    return data


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
