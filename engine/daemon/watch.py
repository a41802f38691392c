"""The `watch` daemon (README "The daemon"): an events directory in, pages out, nothing lost.

One loop owns all the work; watchdog's thread (notifications.py) and the signal handlers only put
requests on a queue. The loop takes the oldest file that is ready and hands it to the per-file work
(files.py). When PagerDuty cannot be reached, the file stays and is retried with capped backoff, and
newer files wait behind it so a resolve is never sent before the trigger it follows. A reload builds
new rules and config and swaps them in only when they validate.
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import metrics
from engine.config import load_config
from engine.daemon.files import FileWork, Loaded, Pending, _log_outcome, daemon_backend, identity
from engine.daemon.inbox import backlog, is_event_file
from engine.daemon.notifications import RELOAD_DEBOUNCE, Notifications, Request, edited_since, observe
from engine.daemon.status import StatusFile, status_path
from engine.dispatch.dispatcher import Dispatcher
from engine.dispatch.pipeline import Pipeline
from engine.errors import InvalidFiles, PageRulesError
from engine.language.loading import RuleCache
from engine.pagerduty.store import open_state

log = logging.getLogger("pagerules.watch")
STABLE_SECONDS = 0.3      # a file written in place is read once its size holds this long
RESCAN_SECONDS = 5.0      # a directory listing now and then, in case a notification was missed


class Daemon:
    def __init__(self, config_path: str | None, overrides: dict[str, Any], events_dir: str | None = None,
                 once: bool = False, state_path: str | None = None, clock: Callable[[], float] = time.time):
        self.config_path, self.overrides, self.once, self.clock = config_path, overrides, once, clock
        config = load_config(config_path, overrides=overrides)
        self.events = Path(events_dir or config.events_dir).resolve()
        self.events.mkdir(parents=True, exist_ok=True)
        self.state = open_state(config, state_path)
        self.requests: queue.Queue[Request] = queue.Queue()
        self.stop_at: float | None = None
        self.pending: dict[Path, Pending] = {}
        self.status = StatusFile(status_path(self.events), clock)
        self.warned: set[str] = set()  # event types warned about: once per daemon, not per reload
        self.rule_cache = RuleCache()  # a reload recompiles only the rule files that changed
        self.loaded = self._load()  # a config or rules that do not validate at start: exit 2
        self.reload_due: float | None = None
        self.next_reconcile = 0.0
        self.work = FileWork(self.events, self.state, self.status, self.pending, lambda: self.loaded,
                             lambda: self.stop_at, clock)

    # ---- loading -----------------------------------------------------------
    def _load(self) -> Loaded:
        config = load_config(self.config_path, overrides=self.overrides)
        ruleset = self.rule_cache.load(config)
        backend = daemon_backend(config, self.state)
        self.status.update(ruleset_version=ruleset.version, rules_loaded_at=self.clock(), last_reload_error=None)
        metrics.observe_reload(True, self.clock(), rules=len(ruleset.all_rules()))
        dispatcher = Dispatcher(config, backend)
        pipeline = Pipeline(ruleset, dispatcher, on_unhandled=self._count_unhandled, warned=self.warned,
                            meter=metrics.count_outcome)
        return Loaded(config, ruleset, dispatcher, pipeline)

    def reload(self) -> None:
        """Swap in new rules and config only if they validate; otherwise keep the last good ones."""
        try:
            self.loaded = self._load()
            log.info("reloaded: ruleset %s", self.loaded.ruleset.version)
        except Exception as exc:  # noqa: BLE001 - nothing in a rules folder may stop the daemon
            lines = [str(p) for p in exc.problems] if isinstance(exc, InvalidFiles) else \
                [str(exc) if isinstance(exc, PageRulesError) else f"{type(exc).__name__}: {exc}"]
            metrics.observe_reload(False, self.clock())
            for line in lines:
                log.error("reload refused, keeping ruleset %s: %s", self.loaded.ruleset.version, line)
            self.status.update(last_reload_error="; ".join(lines))

    # ---- the loop ----------------------------------------------------------
    def run(self) -> int:
        """Handle the backlog, then each new file, until SIGTERM/SIGINT (or, with --once, the backlog is done)."""
        self._signals()
        observer = None if self.once else self._observe()
        if observer is not None and edited_since(self.loaded.config, self.rule_cache, self.config_path, self.overrides):
            self.requests.put(("reload", None))  # edited while it started, before anything observed it
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
                self._fire_pending(now)
                entry = self._next_ready(now)
                if entry is not None:
                    self.work.handle(entry)
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
        return 1 if self.once and (self.pending or self.work.failures) else 0

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

    def _count_unhandled(self, kind: str) -> None:
        """An event of a type no rule handles (its pack off): the pipeline warns once, the status counts it."""
        unhandled = dict(self.status.data.get("unhandled_events") or {})
        unhandled[kind] = unhandled.get(kind, 0) + 1
        self.status.update(unhandled_events=unhandled)

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

    def _fire_pending(self, now: float) -> None:
        """Page the triggers held by ``for:`` whose duration passed with no recovery for their key (README
        "Pending triggers"): each tick asks the state for the earliest due (an index range, empty almost
        always), and each goes through the same gates and backend as an event's trigger, audited there."""
        try:
            outcomes = self.loaded.dispatcher.fire_due(now)
        except PageRulesError as exc:  # the state or PagerDuty failed: the holds stay, tried next tick
            log.warning("pending triggers not checked: %s", exc)
            return
        for outcome in outcomes:
            _log_outcome(outcome, "pending")
            metrics.count_outcome("pending", outcome.status.value)

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
                current.add(identity(path, path.lstat()))
            except FileNotFoundError:  # gone since the listing: its record is stale too
                continue
        for file in self.state.files_in_progress():
            if file.startswith(prefix) and file not in current:
                self.state.forget_progress(file)

    def _observe(self) -> Any:
        config = self.loaded.config
        return observe(Notifications(self.requests, self.events, Path(config.source), Path(config.rules_dir)))


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return -1
