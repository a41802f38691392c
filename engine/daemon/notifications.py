"""Filesystem notifications -> requests on the daemon's queue. watchdog's thread does no work itself:
the daemon's loop owns all of it."""
from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from engine.config import Config, load_config
from engine.errors import PageRulesError
from engine.language.loading import RuleCache

Request = tuple[str, Path | None]  # ("reload" | "stop", None) or ("complete" | "written", an events file)

RELOAD_DEBOUNCE = 0.2  # an editor's save is several notifications: reload once they stop
# Notifications that mean a file changed; opening or reading one (ours included) is not a change.
_WRITES = {"created", "modified", "moved", "deleted", "closed"}


def _changed(event: FileSystemEvent) -> list[tuple[Path, str]]:
    """The paths a write notification is about, each with what happened to it; none for a read."""
    if event.event_type not in _WRITES:
        return []
    if event.event_type == "moved":
        return [(Path(str(event.src_path)), "moved away"), (Path(str(event.dest_path)), "moved in")]
    return [(Path(str(event.src_path)), event.event_type)]


class RuleEdits(FileSystemEventHandler):
    """A change to the config file or anywhere under the rules folder calls ``edited``: a reload is due."""

    def __init__(self, edited: Callable[[], None], config_file: Path, rules: Path):
        self.edited = edited
        self.config_file, self.rules = config_file.resolve(), rules.resolve()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if any(self.covers(path) for path, _ in _changed(event)):
            self.edited()

    def covers(self, path: Path) -> bool:
        return path == self.config_file or path == self.rules or self.rules in path.parents

    def folders(self) -> list[tuple[Path, bool]]:
        """The folders to observe, each with whether recursively."""
        return [(self.rules, True), (self.config_file.parent, False)]


class Notifications(RuleEdits):
    """A rule or config edit asks for a reload; a file in the events folder is ``complete`` (renamed in,
    or closed after writing) or ``written`` (still being written, maybe)."""

    def __init__(self, requests: queue.Queue[Request], events: Path, config_file: Path, rules: Path):
        super().__init__(lambda: requests.put(("reload", None)), config_file, rules)
        self.requests, self.events = requests, events

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path, what in _changed(event):
            if self.covers(path):
                self.edited()
            elif path.parent == self.events and not event.is_directory:
                if what in ("moved in", "closed"):  # renamed into place, or closed after writing
                    self.requests.put(("complete", path))
                elif what in ("created", "modified"):
                    self.requests.put(("written", path))

    def folders(self) -> list[tuple[Path, bool]]:
        return [(self.events, False), *super().folders()]


def observe(handler: RuleEdits) -> BaseObserver:
    """A started observer of the handler's folders: the rules folder (recursively), the config's folder,
    and the events folder when it has one."""
    observer = Observer()
    for folder, recursive in handler.folders():
        observer.schedule(handler, str(folder), recursive=recursive)
    observer.start()
    return observer


def edited_since(loaded: Config, cache: RuleCache, config_path: str | None, overrides: dict[str, Any]) -> bool:
    """Whether the config or a rule file differs now from the load that gave ``loaded`` (read again and
    compared by content). An edit made while the daemon was starting, after its load and before its
    observer, raised no notification: the daemon asks this once its observer runs, and reloads if so."""
    try:
        config = load_config(config_path, overrides=overrides)
        return config != loaded or cache.stale(config)
    except (PageRulesError, OSError):  # broken now (a bad config, a rules folder emptied or gone mid-checkout):
        return True  # the reload says how, and keeps the rules it has
