"""The daemon's per-file work (README "The daemon"): one file's events acted on in order, then the
file moved to processed/ or failed/ beside NAME.error, or left waiting to be tried again.

Progress through the file in hand is recorded per delivery (its name, inode, size and modification
time), so a retry or a restart after kill -9 never repeats an action already taken; the record goes
when the file moves. No input stops the daemon: a file that is not a regular file, cannot be read,
or raises anything unexpected goes to failed/ with the reason.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import logs, metrics
from engine.config import Config
from engine.daemon.inbox import FAILED, PROCESSED, move, type_from_name
from engine.daemon.status import StatusFile
from engine.dispatch.dispatcher import Backend, Dispatcher, DryRun
from engine.dispatch.outcomes import Outcome, Status
from engine.dispatch.pipeline import UNKNOWN_TYPE, Pipeline
from engine.events.stream import read_events
from engine.events.types import event_id
from engine.language.model import RuleSet
from engine.pagerduty.backend import Live, make_client
from engine.pagerduty.state import State, StateError

log = logging.getLogger("pagerules.watch")
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


class FileWork:
    """Acts on the files the loop hands it, with the rules and config in force (``loaded``)."""

    def __init__(self, events: Path, state: State, status: StatusFile, pending: dict[Path, Pending],
                 loaded: Callable[[], Loaded], stop_at: Callable[[], float | None], clock: Callable[[], float]):
        self.events, self.state, self.status, self.pending = events, state, status, pending
        self.loaded, self.stop_at, self.clock = loaded, stop_at, clock
        self.failures = 0  # files moved to failed/

    def handle(self, entry: Pending) -> None:
        """Act on one file, then move it out; or leave it waiting (PagerDuty, the state file, a stop)."""
        path, started = entry.path, self.clock()
        try:
            opened = open_regular(path)
        except FileNotFoundError:
            self.pending.pop(path, None)
            return
        except OSError as exc:
            return self._finish(entry, [f"{path.name}: cannot read it: {exc.strerror or exc}"], {}, None, started)
        if isinstance(opened, str):
            return self._finish(entry, [f"{path.name}: {opened}"], {}, None, started)
        fd, identity = opened
        live = self.loaded().config.enabled  # a dry run acts on nothing, so it records no progress
        try:
            with open(fd, encoding="utf-8", errors="replace") as lines:
                outcome = self._units(entry, lines, identity if live else None)
        except StateError as exc:  # the state file is locked or unusable: nothing is lost, try again
            return self.retry_later(entry, f"state file: {exc}")
        if outcome is None:
            return
        problems, counts = outcome
        self._finish(entry, problems, counts, identity if live else None, started)

    def _units(self, entry: Pending, lines: Any, identity: str | None
               ) -> tuple[list[str], dict[str, int]] | None:
        """Act on a file's units (an event, or a document that could not be read) in order, skipping
        those a previous try already acted on; None when the file must wait (PagerDuty, a stop)."""
        path, loaded = entry.path, self.loaded()
        done, problems = self.state.progress(identity) if identity else (0, [])
        unsaved: list[str] = []  # error lines of units after the last saved one
        counts: dict[str, int] = {"already done": done} if done else {}
        default_type = type_from_name(path.name, loaded.ruleset.event_types)
        unit = 0
        try:
            for item in read_events(lines, path.name):
                stop_at = self.stop_at()
                if stop_at is not None and self.clock() - stop_at > STOP_GRACE_SECONDS:
                    log.warning("%s: stopping mid-file; the rest is handled on restart", path.name)
                    return None
                events = [None] if item.event is None else list(loaded.pipeline.events(item.event, default_type))
                for event in events:
                    unit += 1
                    if unit <= done:
                        continue
                    if event is None:  # unreadable: an error of the file, and a rejected outcome for /metrics
                        unsaved.append(item.error or item.where)
                        log_unreadable(unsaved[-1])
                        metrics.count_outcome(UNKNOWN_TYPE, Status.REJECTED.value)
                        continue
                    acted = self._event(event, item.where, loaded, unsaved, counts)
                    if acted is None:
                        self.retry_later(entry)
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
            return self.retry_later(entry, "cannot move it")
        if identity:
            self.state.forget_progress(identity)
        self.pending.pop(path, None)
        self.status.bump("files_failed" if problems else "files_processed")
        self.failures += bool(problems)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no actions"
        elapsed_ms = (self.clock() - started) * 1000
        log.info("%s -> %s/%s: %s (%.0f ms)", path.name, folder.name, target.name, summary, elapsed_ms,
                 extra=logs.fields(event="file_handled", file=path.name, folder=folder.name, moved_to=target.name,
                                   outcomes=dict(counts), problems=len(problems), duration_ms=round(elapsed_ms, 1)))

    def _event(self, event: dict[str, Any], where: str, loaded: Loaded, problems: list[str],
               counts: dict[str, int]) -> bool | None:
        """Act on one event (see ``act``), counting its outcomes for the file's log line."""
        def seen(outcome: Outcome) -> None:
            _log_outcome(outcome, where)
            key = f"{outcome.action} {outcome.status.value}"
            counts[key] = counts.get(key, 0) + 1
            if outcome.status is Status.FAILED and outcome.retry:
                self.status.update(last_pagerduty_error=outcome.error, last_pagerduty_error_at=self.clock())
        return act(event, where, loaded, problems, seen)

    def retry_later(self, entry: Pending, why: str = "PagerDuty unreachable") -> None:
        entry.attempts += 1
        delay = min(2.0 ** (entry.attempts - 1), self.loaded().config.watch_retry_max_seconds)
        entry.ready_at = self.clock() + delay
        log.warning("%s stays in %s: %s (try %d); next try in %.0f s",
                    entry.path.name, self.events.name, why, entry.attempts, delay)


def _log_outcome(outcome: Outcome, where: str, logger: logging.Logger = log) -> None:
    """One line per outcome: the daemon has no stdout, so this is where its outcome lines go (README "Logs")."""
    line = outcome.to_line()
    target = line.get("incident_key") or line.get("error") or "(no incident_key)"
    facts = {("resolution" if name == "message" else name): value for name, value in line.items()}  # message: the log's
    logger.log(logging.WARNING if "error" in line else logging.INFO, "%s %s: %s (%s)", line["action"],
               line["status"], target, where, extra=logs.fields(event="outcome", where=where, **facts))


def log_unreadable(error: str, logger: logging.Logger = log) -> None:
    """A document the reader refused (bad JSON): a warning with its reason, beside its line in NAME.error."""
    logger.warning("unreadable: %s", error, extra=logs.fields(event="unreadable", error=error))


def open_regular(path: Path) -> tuple[int, str] | str:
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
    return fd, identity(path, info)


def identity(path: Path, info: os.stat_result) -> str:
    """One delivery: the same name with new bytes, or the same bytes in a new file, is another."""
    return f"{path} {info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


def daemon_backend(config: Config, state: State) -> Backend:
    """The backend of the file daemon and the queue workers: PagerDuty when enabled (its settings are then
    required), else a dry run that sends nothing."""
    if not config.enabled:
        return DryRun()
    config.require_live()
    return Live(config, make_client(config), state)


def act(event: dict[str, Any], where: str, loaded: Loaded, problems: list[str],
        seen: Callable[[Outcome], None]) -> bool | None:
    """Act on one event, the file daemon's and the queue workers' way alike: None when PagerDuty could not
    be reached (the event must wait), else whether any action reached the backend (so it is never acted on
    again). ``seen`` hears of every outcome first; a failed action or rule error is added to ``problems``."""
    acted = False
    try:
        for outcome in loaded.pipeline.outcomes(event):
            seen(outcome)
            if outcome.status is Status.FAILED and outcome.retry:
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


def _event_id(outcome: Outcome, event: dict[str, Any]) -> Any:
    """The event as its outcome names it (an error may name none: the event's own id then)."""
    return event_id(event) if outcome.action == "error" and outcome.event_id is None else outcome.event_id
