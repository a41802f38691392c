"""Filesystem notifications -> requests on the daemon's queue. watchdog's thread does no work itself:
the daemon's loop owns all of it."""
from __future__ import annotations

import queue
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

Request = tuple[str, Path | None]  # ("reload" | "stop", None) or ("complete" | "written", an events file)

# Notifications that mean a file changed; opening or reading one (ours included) is not a change.
_WRITES = {"created", "modified", "moved", "deleted", "closed"}


class Notifications(FileSystemEventHandler):
    """A change to the config file or the rules folder asks for a reload; a file in the events folder
    is ``complete`` (renamed in, or closed after writing) or ``written`` (still being written, maybe)."""

    def __init__(self, requests: queue.Queue[Request], events: Path, config_file: Path, rules: Path):
        self.requests, self.events = requests, events
        self.config_file, self.rules = config_file.resolve(), rules.resolve()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _WRITES:
            return
        changed = [(Path(str(event.src_path)), event.event_type)]
        if event.event_type == "moved":
            changed = [(Path(str(event.src_path)), "moved away"), (Path(str(event.dest_path)), "moved in")]
        for path, what in changed:
            if path == self.config_file or path == self.rules or self.rules in path.parents:
                self.requests.put(("reload", None))
            elif path.parent == self.events and not event.is_directory:
                if what in ("moved in", "closed"):  # renamed into place, or closed after writing
                    self.requests.put(("complete", path))
                elif what in ("created", "modified"):
                    self.requests.put(("written", path))


def observe(handler: Notifications) -> BaseObserver:
    """A started observer of the events folder, the rules folder (recursively) and the config's folder."""
    observer = Observer()
    observer.schedule(handler, str(handler.events), recursive=False)
    observer.schedule(handler, str(handler.rules), recursive=True)
    observer.schedule(handler, str(handler.config_file.parent), recursive=False)
    observer.start()
    return observer
