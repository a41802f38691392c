"""The `watch` daemon (README "The daemon"): an events directory in, pages out, nothing lost.

One loop owns all the work; watchdog's thread and the signal handlers only put
requests on a queue. A file is one unit of work: its events are evaluated and
acted on in order, then it moves to processed/ or failed/ (beside NAME.error).
When PagerDuty cannot be reached, the file stays and is retried with capped
backoff, and newer files wait behind it so a resolve is never sent before the
trigger it follows. Progress through the file in hand is recorded per delivery
(its name, inode, size and modification time), so a retry or a restart after
kill -9 never repeats an action already taken; incident_key dedup covers an
event killed halfway. The record goes when the file moves, so the same bytes
delivered later in a new file are acted on again.

No input stops the daemon: a file that is not a regular file, cannot be read,
or raises anything unexpected goes to failed/ with the reason.
"""
from __future__ import annotations

import errno
import logging
import os
import queue
import signal
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from engine.config import Config, load_config
from engine.daemon.inbox import FAILED, PROCESSED, backlog, is_event_file, move, type_from_name
from engine.daemon.status import StatusFile, status_path
from engine.dispatch.dispatcher import Backend, Dispatcher, DryRun
from engine.dispatch.outcomes import Outcome, Status
from engine.dispatch.pipeline import Pipeline
from engine.errors import InvalidFiles, PageRulesError
from engine.events.stream import read_events
from engine.events.types import event_id
from engine.language.model import RuleSet
from engine.language.rules import load_ruleset
from engine.pagerduty.backend import Live, make_client
from engine.pagerduty.state import State, StateError

log = logging.getLogger("pagerules.watch")
STABLE_SECONDS = 0.3      # a file written in place is read once its size holds this long
RESCAN_SECONDS = 5.0      # a directory listing now and then, in case a notification was missed
RELOAD_DEBOUNCE = 0.2     # an editor's save is several events
STOP_GRACE_SECONDS = 8.0  # after SIGTERM, stop between events past this, so the exit comes within 10 s


@dataclass
class Pending:
    path: Path
    ready_at: float
    order: tuple[float, str]
    size: int | None = None  # set while waiting for a file written in place to settle
    attempts: int = 0


@dataclass
class Loaded:
    config: Config
    ruleset: RuleSet
    dispatcher: Dispatcher
    pipeline: Pipeline


class Daemon:
    def __init__(self, config_path: str | None, overrides: dict[str, Any], events_dir: str | None = None,
                 once: bool = False, state_path: str | None = None, clock: Callable[[], float] = time.time):
        self.config_path, self.overrides, self.once, self.clock = config_path, overrides, once, clock
        config = load_config(config_path, overrides=overrides)
        self.events = Path(events_dir or config.events_dir).resolve()
        self.events.mkdir(parents=True, exist_ok=True)
        self.state = State(state_path or config.state_path)
        self.requests: queue.Queue[tuple[str, Path | None]] = queue.Queue()
        self.stop_at: float | None = None
        self.pending: dict[Path, Pending] = {}
        self.status = StatusFile(status_path(self.events), clock)
        self.warned: set[str] = set()  # event types warned about: once per daemon, not per reload
        self.loaded = self._load()  # a config or rules that do not validate at start: exit 2
        self.reload_due: float | None = None
        self.next_reconcile = 0.0
        self.failures = 0

    # ---- loading -----------------------------------------------------------
    def _load(self) -> Loaded:
        config = load_config(self.config_path, overrides=self.overrides)
        ruleset = load_ruleset(config)
        backend: Backend = DryRun()
        if config.enabled:
            config.require_live()
            backend = Live(config, make_client(config), self.state)
        self.status.update(ruleset_version=ruleset.version, rules_loaded_at=self.clock(), last_reload_error=None)
        dispatcher = Dispatcher(config, backend)
        return Loaded(config, ruleset, dispatcher, Pipeline(ruleset, dispatcher, on_unhandled=self._count_unhandled,
                                                            warned=self.warned))

    def reload(self) -> None:
        """Swap in new rules and config only if they validate; otherwise keep the last good ones."""
        try:
            self.loaded = self._load()
            log.info("reloaded: ruleset %s", self.loaded.ruleset.version)
        except Exception as exc:  # noqa: BLE001 - nothing in a rules folder may stop the daemon
            lines = [str(p) for p in exc.problems] if isinstance(exc, InvalidFiles) else \
                [str(exc) if isinstance(exc, PageRulesError) else f"{type(exc).__name__}: {exc}"]
            for line in lines:
                log.error("reload refused, keeping ruleset %s: %s", self.loaded.ruleset.version, line)
            self.status.update(last_reload_error="; ".join(lines))

    # ---- the loop ----------------------------------------------------------
    def run(self) -> int:
        """Handle the backlog, then each new file, until SIGTERM/SIGINT (or, with --once, the backlog is done)."""
        self._signals()
        observer = None if self.once else self._observe()
        self._forget_stale_progress()
        self._reconcile()
        self._rescan()
        next_scan = self.clock() + RESCAN_SECONDS
        self.status.update(state="running")
        try:
            while self.stop_at is None:
                self._drain(self._wait_seconds())
                now = self.clock()
                if self.reload_due is not None and now >= self.reload_due:
                    self.reload_due = None
                    self.reload()
                if now >= self.next_reconcile:
                    self._reconcile()
                if now >= next_scan:
                    self._rescan()
                    next_scan = now + RESCAN_SECONDS
                entry = self._next_ready(now)
                if entry is not None:
                    self._handle(entry)
                elif self.once and not any(p.attempts == 0 for p in self.pending.values()):
                    break
                self.status.update(files_pending=len(self.pending))
                self.status.flush()
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=2)
            self.status.update(state="stopped", files_pending=len(self.pending))
        # --once (cron): 1 when a file went to failed/ or still waits for PagerDuty
        return 1 if self.once and (self.pending or self.failures) else 0

    def _wait_seconds(self) -> float:
        if any(p.ready_at <= self.clock() for p in self.pending.values()):
            return 0.0
        soonest = min((p.ready_at for p in self.pending.values()), default=self.clock() + 1.0)
        return max(0.0, min(1.0, soonest - self.clock()))

    def _drain(self, timeout: float) -> None:
        try:
            kind, path = self.requests.get(timeout=timeout) if timeout > 0 else self.requests.get_nowait()
        except queue.Empty:
            return
        while True:
            self._request(kind, path)
            try:
                kind, path = self.requests.get_nowait()
            except queue.Empty:
                return

    def _request(self, kind: str, path: Path | None) -> None:
        now = self.clock()
        if kind == "reload":
            self.reload_due = now + RELOAD_DEBOUNCE
        elif kind == "stop":
            self.stop_at = self.stop_at or now
        elif path is not None and path.parent == self.events and is_event_file(path) and os.path.lexists(path) \
                and not path.is_dir():
            entry = self.pending.get(path)
            complete = kind == "complete"  # renamed in, or closed after writing
            if entry is None:
                self.pending[path] = Pending(path, now if complete else now + STABLE_SECONDS, (now, path.name),
                                             None if complete else _size(path))
            elif complete and entry.attempts == 0:
                entry.ready_at, entry.size = now, None

    def _next_ready(self, now: float) -> Pending | None:
        """The oldest ready file; a file waiting to retry PagerDuty holds back every newer one."""
        for entry in sorted(self.pending.values(), key=lambda p: p.order):
            if entry.attempts:
                if self.once:  # --once: one try per file and run; it waits for the next run
                    return None
                return entry if entry.ready_at <= now else None
            if entry.ready_at <= now and self._settled(entry, now):
                return entry
        return None

    def _settled(self, entry: Pending, now: float) -> bool:
        if entry.size is None:
            return True
        try:
            size = entry.path.lstat().st_size
        except FileNotFoundError:
            self.pending.pop(entry.path, None)
            return False
        if size != entry.size:
            entry.size, entry.ready_at = size, now + STABLE_SECONDS
            return False
        return True

    # ---- one file ----------------------------------------------------------
    def _handle(self, entry: Pending) -> None:
        path, started = entry.path, self.clock()
        try:
            opened = _open_regular(path)
        except FileNotFoundError:
            self.pending.pop(path, None)
            return
        except OSError as exc:
            return self._finish(entry, [f"{path.name}: cannot read it: {exc.strerror or exc}"], {}, None, started)
        if isinstance(opened, str):
            return self._finish(entry, [f"{path.name}: {opened}"], {}, None, started)
        fd, identity = opened
        live = self.loaded.config.enabled  # a dry run acts on nothing, so it records no progress
        try:
            with open(fd, encoding="utf-8", errors="replace") as lines:
                outcome = self._units(entry, lines, identity if live else None)
        except StateError as exc:  # the state file is locked or unusable: nothing is lost, try again
            return self._retry_later(entry, f"state file: {exc}")
        if outcome is None:
            return
        problems, counts = outcome
        self._finish(entry, problems, counts, identity if live else None, started)

    def _units(self, entry: Pending, lines: Any, identity: str | None
               ) -> tuple[list[str], dict[str, int]] | None:
        """Act on a file's units (an event, or a document that could not be read) in order, skipping
        those a previous try already acted on; None when the file must wait (PagerDuty, a stop)."""
        path, loaded = entry.path, self.loaded
        done, problems = self.state.progress(identity) if identity else (0, [])
        unsaved: list[str] = []  # error lines of units after the last saved one
        counts: dict[str, int] = {"already done": done} if done else {}
        default_type = type_from_name(path.name, loaded.ruleset.event_types)
        unit = 0
        try:
            for item in read_events(lines, path.name):
                if self.stop_at is not None and self.clock() - self.stop_at > STOP_GRACE_SECONDS:
                    log.warning("%s: stopping mid-file; the rest is handled on restart", path.name)
                    return None
                events = [None] if item.event is None else list(loaded.pipeline.events(item.event, default_type))
                for event in events:
                    unit += 1
                    if unit <= done:
                        continue
                    if event is None:
                        unsaved.append(item.error or item.where)
                        continue
                    acted = self._event(event, item.where, loaded, unsaved, counts)
                    if acted is None:
                        self._retry_later(entry)
                        return None
                    if acted and identity:  # a unit that did something is never done twice
                        problems += unsaved
                        unsaved = []
                        self.state.save_progress(identity, unit, problems, self.clock())
        except StateError:
            raise
        except Exception as exc:  # noqa: BLE001 - no input may stop the daemon: this file fails
            unsaved.append(f"{path.name}: cannot handle it ({type(exc).__name__}: {exc}); "
                           "the events before this point were acted on")
        return problems + unsaved, counts

    def _finish(self, entry: Pending, problems: list[str], counts: dict[str, int], identity: str | None,
                started: float) -> None:
        path = entry.path
        folder = self.events / (FAILED if problems else PROCESSED)
        try:
            target = move(path, folder, "\n".join(problems) if problems else None)
        except OSError as exc:  # the file stays; its done units are skipped on the next try
            log.error("%s: handled, but cannot move it to %s/: %s; it stays and is tried again", path.name,
                      folder.name, exc)
            return self._retry_later(entry, "cannot move it")
        if identity:
            self.state.forget_progress(identity)
        self.pending.pop(path, None)
        self.status.bump("files_failed" if problems else "files_processed")
        self.failures += bool(problems)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no actions"
        log.info("%s -> %s/%s: %s (%.0f ms)", path.name, folder.name, target.name, summary,
                 (self.clock() - started) * 1000)

    def _event(self, event: dict[str, Any], where: str, loaded: Loaded, problems: list[str],
               counts: dict[str, int]) -> bool | None:
        """Act on one event: None when PagerDuty could not be reached (the file must wait), else
        whether any action reached the backend (so the event must never be acted on again)."""
        acted = False
        try:
            for outcome in loaded.pipeline.outcomes(event):
                key = f"{outcome.action} {outcome.status.value}"
                counts[key] = counts.get(key, 0) + 1
                if outcome.status is Status.FAILED and outcome.retry:
                    self.status.update(last_pagerduty_error=outcome.error, last_pagerduty_error_at=self.clock())
                    return None
                if outcome.failed:
                    problems.append(f"{where}: event {_event_id(outcome, event)}: {outcome.error}")
                if outcome.action != "error":
                    acted = True
        except StateError:
            raise
        except Exception as exc:  # noqa: BLE001 - one event that breaks something fails, the rest go on
            problems.append(f"{where}: cannot handle this event ({type(exc).__name__}: {exc})")
        return acted

    def _count_unhandled(self, kind: str) -> None:
        """An event of a type no rule handles (its pack off): the pipeline warns once, the status counts it."""
        unhandled = dict(self.status.data.get("unhandled_events") or {})
        unhandled[kind] = unhandled.get(kind, 0) + 1
        self.status.update(unhandled_events=unhandled)

    def _retry_later(self, entry: Pending, why: str = "PagerDuty unreachable") -> None:
        entry.attempts += 1
        delay = min(2.0 ** (entry.attempts - 1), self.loaded.config.watch_retry_max_seconds)
        entry.ready_at = self.clock() + delay
        log.warning("%s stays in %s: %s (try %d); next try in %.0f s",
                    entry.path.name, self.events.name, why, entry.attempts, delay)

    # ---- background duties ---------------------------------------------------
    def _rescan(self) -> None:
        for path in backlog(self.events):
            if path in self.pending:
                continue
            try:
                settled = self.clock() - path.lstat().st_mtime > STABLE_SECONDS
            except FileNotFoundError:  # gone since the listing
                continue
            self._request("complete" if settled else "written", path)

    def _reconcile(self) -> None:
        config = self.loaded.config
        self.next_reconcile = self.clock() + config.reconcile_interval_seconds
        try:
            counts = self.loaded.dispatcher.backend.reconcile()  # a dry run has nothing to ask
            if counts["resolved"] or counts["acknowledged"]:
                log.info("reconciled with PagerDuty: %s", counts)
        except PageRulesError as exc:
            log.warning("reconcile with PagerDuty failed: %s", exc)

    def _signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_signal)
        signal.signal(signal.SIGHUP, lambda *_: self.requests.put(("reload", None)))

    def _stop_signal(self, *_: Any) -> None:
        # Set here too, not only queued: the file in hand checks it between events.
        self.stop_at = self.stop_at or self.clock()
        self.requests.put(("stop", None))

    def _forget_stale_progress(self) -> None:
        """Progress records of files no longer waiting here (moved out just before a kill -9)."""
        prefix = f"{self.events}{os.sep}"
        current = set()
        for path in backlog(self.events):
            try:
                current.add(_identity(path, path.lstat()))
            except FileNotFoundError:  # gone since the listing: its record is stale too
                continue
        for file in self.state.files_in_progress():
            if file.startswith(prefix) and file not in current:
                self.state.forget_progress(file)

    def _observe(self) -> Any:
        observer = Observer()
        handler = _Handler(self)
        observer.schedule(handler, str(self.events), recursive=False)
        observer.schedule(handler, self.loaded.config.rules_dir, recursive=True)
        observer.schedule(handler, str(Path(self.loaded.config.source).resolve().parent), recursive=False)
        observer.start()
        return observer


def _open_regular(path: Path) -> tuple[int, str] | str:
    """(fd, identity) of a regular file, opened without blocking and without following a link;
    else why it is refused. A FIFO would block the daemon; a link may point anywhere."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link; only regular files are read (links are never followed)"
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) \
            else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a file"
        return f"is {kind}, not a regular file; only regular files are read"
    os.set_blocking(fd, True)
    return fd, _identity(path, info)


def _identity(path: Path, info: os.stat_result) -> str:
    """One delivery: the same name with new bytes, or the same bytes in a new file, is another."""
    return f"{path} {info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


def _event_id(outcome: Outcome, event: dict[str, Any]) -> Any:
    """The event as its outcome names it (an error may name none: the event's own id then)."""
    return event_id(event) if outcome.action == "error" and outcome.event_id is None else outcome.event_id


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return -1


# Notifications that mean a file changed; opening or reading one (ours included) is not a change.
_WRITES = {"created", "modified", "moved", "deleted", "closed"}


class _Handler(FileSystemEventHandler):
    """Turns filesystem notifications into requests; does no work itself."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.config_file = Path(daemon.loaded.config.source).resolve()
        self.rules = Path(daemon.loaded.config.rules_dir).resolve()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _WRITES:
            return
        changed = [(Path(str(event.src_path)), event.event_type)]
        if event.event_type == "moved":
            changed = [(Path(str(event.src_path)), "moved away"), (Path(str(event.dest_path)), "moved in")]
        for path, what in changed:
            if path == self.config_file or path == self.rules or self.rules in path.parents:
                self.daemon.requests.put(("reload", None))
            elif path.parent == self.daemon.events and not event.is_directory:
                if what in ("moved in", "closed"):  # renamed into place, or closed after writing
                    self.daemon.requests.put(("complete", path))
                elif what in ("created", "modified"):
                    self.daemon.requests.put(("written", path))
