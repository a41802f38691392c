"""`pagerules watch --queue`: one of any number of workers on the shared queue in PostgreSQL
(README "Run it on more than one machine").

A worker claims a batch (engine/pagerduty/queue.py), acts on each row's events with the same
Pipeline and Dispatcher as the file daemon, records per row how many events it acted on (a retry
never repeats one), and finishes the row: done, failed with the reason, or released to be tried
again with capped backoff when PagerDuty cannot be reached. With ``--events-dir`` it also feeds the
queue from that folder. When the database goes away it backs off and reconnects; the rows it held
go back to the queue. One replica at a time reconciles with PagerDuty (the leader lock).
"""
from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import logs, metrics
from engine.config import load_config
from engine.daemon.files import Loaded, _log_outcome, act, daemon_backend, log_unreadable, open_regular
from engine.daemon.inbox import FAILED, PROCESSED, backlog, move, type_from_name
from engine.daemon.notifications import RELOAD_DEBOUNCE, RuleEdits, edited_since, observe
from engine.dispatch.dispatcher import Dispatcher
from engine.dispatch.outcomes import Status
from engine.dispatch.pipeline import UNKNOWN_TYPE, Pipeline
from engine.errors import InvalidFiles, PageRulesError
from engine.events.stream import read_events
from engine.language.loading import RuleCache
from engine.pagerduty.keylock import KeyBusy, KeyLocked, KeyLocks
from engine.pagerduty.pgqueue import EventQueue
from engine.pagerduty.queue import Entry, Job, ordering_key
from engine.pagerduty.records import is_postgresql_url
from engine.pagerduty.state import StateError
from engine.pagerduty.store import open_state

log = logging.getLogger("pagerules.worker")
BATCH = 32                # rows claimed at once
IDLE_SECONDS = 0.1        # the wait before asking again when nothing was claimable
RECONNECT_MAX_SECONDS = 10.0
FEED_STABLE_SECONDS = 0.3  # a file written in place is fed once unchanged this long
KEEP_DONE_SECONDS = 7 * 86400.0  # done rows are deleted this long after they finished (0: kept forever)
PURGE_EVERY_SECONDS = 60.0  # how often the leader deletes them,
PURGE_BATCH, PURGE_BATCHES = 500, 20  # in batches of this many, at most this many batches a round


def queue_url(config_url: str | None, override: str | None) -> str:
    """The PostgreSQL URL the queue lives in (the state's): --state, else state_url; refused otherwise."""
    target = override or config_url or ""
    if not is_postgresql_url(target):
        raise PageRulesError("--queue needs the state in PostgreSQL: set state_url (or PAGERULES_STATE_URL, or "
                             "--state) to a postgresql:// URL; the queue lives in that database")
    return target


class QueueWorker:
    def __init__(self, config_path: str | None, overrides: dict[str, Any], state_path: str | None = None,
                 events_dir: str | None = None, lease_seconds: float = 30.0, name: str | None = None,
                 keep_done_seconds: float = KEEP_DONE_SECONDS,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic):
        self.config_path, self.overrides, self.clock, self.monotonic = config_path, overrides, clock, monotonic
        config = load_config(config_path, overrides=overrides)
        url = queue_url(config.state_url, state_path)
        self.state = open_state(config, url)  # applies the migrations, the queue's among them
        self.queue = EventQueue(url, lease_seconds)
        self.locks = KeyLocks(url)  # the database decides which worker calls PagerDuty for an incident_key
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.events = Path(events_dir).resolve() if events_dir else None
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()  # SIGHUP, or an edit made while it started
        self.reload_at: float | None = None  # when the last rule or config edit is due to be reloaded
        self.warned: set[str] = set()
        self.rule_cache = RuleCache()
        self.loaded = self._load()
        self.next_reconcile = 0.0
        self.keep_done_seconds, self.next_purge = keep_done_seconds, 0.0
        self.leading = False  # whether this worker holds the leader lock, so it is the one that reconciles
        self.handled = 0
        self.held: set[int] = set()  # the rows claimed and not yet finished, kept leased by the heartbeat
        # Until then (self.monotonic) every held row is surely still this worker's: half a lease from when the
        # claim or a heartbeat that renewed them all was sent. Past it, a row is asked for before it is handled.
        self.sure_until = 0.0
        self._held_lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None

    # ---- loading (as the file daemon) ------------------------------------------
    def _load(self) -> Loaded:
        config = load_config(self.config_path, overrides=self.overrides)
        ruleset = self.rule_cache.load(config)
        backend = daemon_backend(config, self.state)
        if config.enabled:  # a dry run calls nobody, so it has nothing to take turns on
            backend = KeyLocked(backend, self.locks)
        metrics.observe_reload(True, self.clock(), rules=len(ruleset.all_rules()))
        dispatcher = Dispatcher(config, backend)
        pipeline = Pipeline(ruleset, dispatcher, warned=self.warned, meter=metrics.count_outcome)
        return Loaded(config, ruleset, dispatcher, pipeline)

    def reload(self) -> None:
        try:
            self.loaded = self._load()
            log.info("reloaded: ruleset %s", self.loaded.ruleset.version)
        except Exception as exc:  # noqa: BLE001 - a bad edit keeps the last good rules
            lines = [str(p) for p in exc.problems] if isinstance(exc, InvalidFiles) else [str(exc)]
            metrics.observe_reload(False, self.clock())
            for line in lines:
                log.error("reload refused, keeping ruleset %s: %s", self.loaded.ruleset.version, line)

    # ---- the loop ------------------------------------------------------------
    def run(self) -> int:
        """Claim and handle rows until SIGTERM/SIGINT; the rows in hand are finished or released first."""
        self._signals()
        config = self.loaded.config
        observer = observe(RuleEdits(self._edited, Path(config.source), Path(config.rules_dir)))
        if edited_since(config, self.rule_cache, self.config_path, self.overrides):
            self.reload_requested.set()  # edited while it started, before anything observed it
        log.info("worker %s on the queue in %s (ruleset %s)", self.name, self.queue.where,
                 self.loaded.ruleset.version)
        try:
            self._work()
        finally:
            observer.stop()
            observer.join(timeout=2)
        return 0

    def _edited(self) -> None:
        """A rule or config edit (the observer's thread): reload once the editor's burst of writes is over."""
        self.reload_at = self.monotonic() + RELOAD_DEBOUNCE

    def _work(self) -> None:
        """Steps until stopped, backing off while the database is away; then the rows held go back."""
        failures = 0
        while not self.stopping.is_set():
            try:
                if failures:  # back: the rows held when it went go back first, so their keys are not held up
                    released = self.queue.release_all(self.name)
                    log.info("the queue database is back after %d failed tries; %d held rows back in the queue",
                             failures, released)
                failures = 0
                busy = self.step()
            except StateError as exc:  # QueueUnavailable too: the database is down or restarting
                failures += 1
                delay = min(0.2 * 2 ** (failures - 1), RECONNECT_MAX_SECONDS)
                log.warning("queue database unavailable (try %d), next try in %.1f s: %s", failures, delay, exc)
                self.stopping.wait(delay)
                continue
            if not busy:
                self.stopping.wait(IDLE_SECONDS)
        self._let_go()

    def step(self) -> bool:
        """One round: reload, reconcile, feed, claim and handle a batch. Whether anything was claimed."""
        edited = self.reload_at is not None and self.monotonic() >= self.reload_at
        if self.reload_requested.is_set() or edited:
            self.reload_requested.clear()
            self.reload_at = None
            self.reload()
        self._reconcile()
        self._purge()
        self._fire_pending()
        if self.events is not None:
            self.feed()
        self._start_heartbeat()
        sent = self.monotonic()
        jobs = self.queue.claim(self.name, BATCH)
        with self._held_lock:
            self.held = {j.id for j in jobs}
            self.sure_until = sent + self.queue.lease_seconds / 2
        try:
            for job in jobs:
                if self.stopping.is_set():
                    break
                if not self._still_mine(job):  # its lease ended: another worker has it now
                    log.warning("queue row %d: its lease ended before this worker reached it; left to the "
                                "worker that holds it", job.id)
                else:
                    self.handle(job)
                with self._held_lock:
                    self.held.discard(job.id)
        finally:
            with self._held_lock:
                self.held = set()
        return bool(jobs)

    def _still_mine(self, job: Job) -> bool:
        """Whether this worker still holds ``job``: surely so within half a lease of the last claim or renewal
        of every held row (no other worker may take a row before its lease ends), else asked of the database,
        which renews it (a worker that stalled past its lease finds the rows another took since)."""
        with self._held_lock:
            if self.monotonic() < self.sure_until:
                return True
        return self.queue.renew(self.name, [job.id]) == 1

    def _start_heartbeat(self) -> None:
        """One thread for the worker's life renews the leases of the rows it holds every third of a lease,
        so a row stays this worker's while one PagerDuty call takes long (retries, Retry-After), and goes to
        another worker only when this one dies."""
        if self._heartbeat is not None and self._heartbeat.is_alive():
            return
        self._heartbeat = threading.Thread(target=self._beat, name=f"lease-{self.name}", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self.stopping.wait(self.queue.lease_seconds / 3):
            with self._held_lock:
                ids = sorted(self.held)
            sent = self.monotonic()
            try:
                renewed = self.queue.renew(self.name, ids)
            except StateError as exc:  # the main loop meets the outage too and backs off
                log.warning("could not renew the leases of %d rows: %s", len(ids), exc)
                continue
            with self._held_lock:
                if ids and renewed == len(ids) and self.held <= set(ids):  # every row held now was renewed
                    self.sure_until = max(self.sure_until, sent + self.queue.lease_seconds / 2)

    def _fire_pending(self) -> None:
        """Page the triggers held by ``for:`` whose duration passed with no recovery (README "Pending
        triggers"), as the file daemon does each tick; with several workers, one takes each hold."""
        try:
            outcomes = self.loaded.dispatcher.fire_due(self.clock())
        except StateError:
            raise  # the database is down: the loop backs off
        except PageRulesError as exc:
            log.warning("pending triggers not checked: %s", exc)
            return
        for outcome in outcomes:
            _log_outcome(outcome, "pending", log)
            metrics.count_outcome("pending", outcome.status.value)

    def _let_go(self) -> None:
        try:
            released = self.queue.release_all(self.name)
            if released:
                log.info("stopping: %d claimed rows back to the queue", released)
        except StateError as exc:
            log.warning("stopping without the database; the rows held come back when their lease ends: %s", exc)

    # ---- one row -------------------------------------------------------------
    def handle(self, job: Job) -> None:
        """Act on the row's events in order, skipping those a previous try acted on; then finish it, or
        release it when PagerDuty cannot be reached."""
        loaded, where = self.loaded, f"queue row {job.id} ({job.source})"
        done, problems, unsaved, unit = job.units_done, list(job.problems), [], 0
        try:
            items = list(read_events(io.StringIO(job.body), where))  # parsed only: nothing acted on yet
            for number, item in enumerate(items, 1):
                events = [None] if item.event is None else list(loaded.pipeline.events(item.event, job.default_type))
                for index, event in enumerate(events, 1):
                    unit += 1
                    if unit <= done:
                        continue
                    if event is None:
                        unsaved.append(item.error or item.where)
                        log_unreadable(unsaved[-1], log)
                        metrics.count_outcome(UNKNOWN_TYPE, Status.REJECTED.value)
                        continue
                    acted = self._event(event, where, loaded, unsaved)
                    if acted is None:
                        self._retry(job, "PagerDuty unreachable")
                        return
                    if acted:  # an event that did something is never done twice
                        problems, unsaved = problems + unsaved, []
                        if number == len(items) and index == len(events):
                            break  # the row's last event: finishing it below records it, in one round trip
                        if not self.queue.save_progress(self.name, job, unit, problems):
                            log.warning("%s: lease lost mid-row; its holder goes on from event %d", where, unit)
                            return
        except KeyBusy as exc:  # one key held elsewhere past the wait: this row waits, the others go on
            self._retry(job, str(exc))
            return
        except StateError:
            raise
        except Exception as exc:  # noqa: BLE001 - no input stops a worker: the row fails with the reason
            unsaved.append(f"{where}: cannot handle it ({type(exc).__name__}: {exc}); "
                           "the events before this point were acted on")
        problems += unsaved
        if not self.queue.finish(self.name, job, problems):
            log.warning("%s: handled, but its lease had ended; another worker may handle the rest", where)
        self.handled += 1
        log.info("%s -> %s", where, "failed" if problems else "done",
                 extra=logs.fields(event="row_handled", row=job.id, source=job.source,
                                   status="failed" if problems else "done", problems=len(problems)))

    def _event(self, event: dict[str, Any], where: str, loaded: Loaded, problems: list[str]) -> bool | None:
        """As the file daemon (engine/daemon/files.py ``act``), each outcome logged with the row it came from."""
        return act(event, where, loaded, problems, lambda outcome: _log_outcome(outcome, where, log))

    def _retry(self, job: Job, why: str) -> None:
        delay = min(2.0 ** job.attempts, self.loaded.config.watch_retry_max_seconds)
        self.queue.release(self.name, job, delay, why)
        log.warning("queue row %d (%s) waits: %s (try %d); next try in %.0f s", job.id, job.source, why,
                    job.attempts + 1, delay)

    # ---- feeding from an events directory --------------------------------------------
    def feed(self) -> int:
        """Files settled in the events directory go into the queue (one row per input object, in one
        transaction), then to processed/ (failed/ beside NAME.error with the lines that cannot be read)."""
        events, fed = self.events, 0
        assert events is not None
        for path in backlog(events):
            try:
                if self.clock() - path.lstat().st_mtime < FEED_STABLE_SECONDS:
                    continue
            except FileNotFoundError:
                continue
            fed += self._feed_file(events, path)
        return fed

    def _feed_file(self, events: Path, path: Path) -> int:
        try:
            opened = open_regular(path)
        except OSError as exc:
            move(path, events / FAILED, f"{path.name}: cannot read it: {exc.strerror or exc}")
            return 0
        if isinstance(opened, str):
            move(path, events / FAILED, f"{path.name}: {opened}")
            return 0
        fd, delivery = opened
        kind = type_from_name(path.name, self.loaded.ruleset.event_types)
        entries, problems = [], []
        with open(fd, encoding="utf-8", errors="replace") as lines:
            for item in read_events(lines, path.name):
                if item.event is None:
                    problems.append(item.error or item.where)
                    continue
                body = json.dumps(item.event, ensure_ascii=False)
                entries.append(Entry(body, kind, f"file {delivery}", ordering_key(item.event, kind)))
        ids = self.queue.enqueue_once(f"file {delivery}", entries)
        folder = events / (FAILED if problems else PROCESSED)
        move(path, folder, "\n".join(problems) if problems else None)
        log.info("%s: %s into the queue -> %s/", path.name,
                 f"{len(entries)} rows" if ids is not None else "already", folder.name)
        return len(entries) if ids is not None else 0

    # ---- background duties ---------------------------------------------------------
    def _reconcile(self) -> None:
        """Only the leader reconciles, every reconcile_interval_seconds."""
        if self.clock() < self.next_reconcile:
            return
        self.next_reconcile = self.clock() + self.loaded.config.reconcile_interval_seconds
        leading = self.queue.lead()
        if leading != self.leading:
            self.leading = leading
            log.info("worker %s %s", self.name, "leads: it reconciles with PagerDuty" if leading else
                     "no longer leads (its connection to the database went): another worker reconciles",
                     extra=logs.fields(event="leader", worker=self.name, leading=leading))
        if not leading:
            return
        try:
            counts = self.loaded.dispatcher.backend.reconcile()
            if counts["resolved"] or counts["acknowledged"]:
                log.info("reconciled with PagerDuty: %s", counts)
        except PageRulesError as exc:
            log.warning("reconcile with PagerDuty failed: %s", exc)

    def _purge(self) -> int:
        """The leader deletes the done rows older than keep_done_seconds, a few small batches a minute (as
        pg-boss and Procrastinate remove finished jobs); failed rows stay until `pagerules queue retry`."""
        if not self.leading or not self.keep_done_seconds or self.clock() < self.next_purge:
            return 0
        self.next_purge = self.clock() + PURGE_EVERY_SECONDS
        deleted = 0
        for _ in range(PURGE_BATCHES):
            gone = self.queue.purge_done(self.keep_done_seconds, PURGE_BATCH)
            deleted += gone
            if gone < PURGE_BATCH or self.stopping.is_set():
                break
        if deleted:
            log.info("deleted %d done queue rows finished over %.0f s ago", deleted, self.keep_done_seconds,
                     extra=logs.fields(event="queue_purged", rows=deleted))
        return deleted

    def _signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        """Let go of the database connections (a worker run in a test, or by a caller that is done)."""
        self.stopping.set()
        self.queue.close()
        self.locks.close()
        self.state.close()
