"""The long-running commands: `watch` (the daemon) and `serve` (the API, dashboard and webhook intake).

The daemon and the web server are imported inside the commands: other commands start without
Flask and watchdog.
"""
from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import click

from engine import logs
from engine.commands.common import config_options, fail_cleanly, state_option
from engine.config import Config, load_config

log = logging.getLogger("pagerules")


@click.command()
@config_options
@click.option("--events-dir", type=click.Path(file_okay=False), help="Folder to watch (default: events_dir).")
@click.option("--once", is_flag=True, help="Handle the files already there, then exit (cron, tests).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per log line, for log shippers.")
@click.option("--http", "http_bind", metavar="HOST:PORT", help="Also serve the API and dashboard (as `serve`).")
@click.option("--queue", "use_queue", is_flag=True,
              help="Be one of several workers on the shared queue in the PostgreSQL state (state_url); with "
                   "--events-dir, files dropped there go into the queue.")
@click.option("--lease", "lease_seconds", type=click.FloatRange(min=1), default=30.0, show_default=True,
              envvar="PAGERULES_QUEUE_LEASE", help="With --queue: seconds a claimed event is held before another "
                                                   "worker may take it (PAGERULES_QUEUE_LEASE).")
@click.option("--keep-done", "keep_done_seconds", type=click.FloatRange(min=0), default=7 * 86400.0,
              show_default=True, envvar="PAGERULES_QUEUE_KEEP_DONE",
              help="With --queue: seconds a done event stays in the queue before the leader deletes it; 0 keeps "
                   "them forever; failed ones stay until `pagerules queue retry` (PAGERULES_QUEUE_KEEP_DONE).")
@state_option
@fail_cleanly
def watch(config_path: str | None, rules_dir: str | None, packs: str | None, events_dir: str | None, once: bool,
          log_format: str, http_bind: str | None, use_queue: bool, lease_seconds: float, keep_done_seconds: float,
          state_path: str | None) -> None:
    """Run as a daemon over an events directory: each *.json or *.ndjson file dropped there is acted on,
    then moved to processed/ (or failed/ beside NAME.error). With --queue, claim events from the
    shared queue in PostgreSQL instead, beside any number of other workers.

    Rule and config edits apply to the next event; an edit that does not validate keeps the last
    good rules. SIGHUP reloads; SIGTERM or SIGINT finishes the file in hand and exits 0.

    Example: pagerules watch --events-dir /var/spool/pagerules
    """
    from engine.daemon.watch import Daemon
    from engine.web import app as server

    if log_format == "json":
        logs.use_json()
    if use_queue:
        _work_the_queue(config_path, {"rules_dir": rules_dir, "packs": packs}, events_dir, once, http_bind,
                        lease_seconds, keep_done_seconds, state_path)
        return
    daemon = Daemon(config_path, {"rules_dir": rules_dir, "packs": packs}, events_dir, once, state_path)
    if http_bind:
        app = _app(daemon.loaded.config, state_path, str(daemon.events))
        threading.Thread(target=server.serve, args=(app, http_bind), daemon=True, name="http").start()
    log.info("watching %s (ruleset %s)", daemon.events, daemon.loaded.ruleset.version)
    sys.exit(daemon.run())


def _work_the_queue(config_path: str | None, overrides: dict[str, Any], events_dir: str | None, once: bool,
                    http_bind: str | None, lease_seconds: float, keep_done_seconds: float,
                    state_path: str | None) -> None:
    from engine.daemon.queue_worker import QueueWorker
    from engine.web import app as server

    if once:
        raise click.UsageError("--once reads an events directory; a queue worker runs until stopped")
    worker = QueueWorker(config_path, overrides, state_path, events_dir, lease_seconds,
                         keep_done_seconds=keep_done_seconds)
    if http_bind:
        app = _app(worker.loaded.config, state_path, events_dir, queue=True)
        threading.Thread(target=server.serve, args=(app, http_bind), daemon=True, name="http").start()
    sys.exit(worker.run())


@click.command()
@click.option("--bind", help="HOST:PORT to listen on (default: bind from the config, 127.0.0.1:8080).")
@click.option("--events-dir", type=click.Path(file_okay=False), help="Where webhook payloads go (default: events_dir).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--queue", "use_queue", is_flag=True,
              help="Put webhook payloads and POST /api/events into the shared queue in the PostgreSQL state "
                   "(state_url), for `watch --queue` workers, instead of the events directory.")
@state_option
@fail_cleanly
def serve(bind: str | None, events_dir: str | None, config_path: str | None, use_queue: bool,
          state_path: str | None) -> None:
    """Serve the JSON API, the dashboard and webhook intake.

    Needs PAGERULES_API_TOKEN or a tokens file with a named token (`pagerules token add NAME`; callers
    send it as a bearer token, the dashboard asks for it) and the PagerDuty settings. Binds to loopback
    unless told otherwise. With --queue, intake answers 202 once the event is committed to the queue,
    and 503 (Retry-After) when PostgreSQL cannot be reached.

    Example: PAGERULES_API_TOKEN=... pagerules serve --bind 127.0.0.1:8080
    """
    from engine.web import app as server

    config = load_config(config_path, overrides={"bind": bind})
    server.serve(_app(config, state_path, events_dir, use_queue), config.bind)


def _app(config: Config, state_path: str | None, events_dir: str | None, queue: bool = False) -> Any:
    config.require_live()
    from engine.pagerduty.backend import live_backend
    from engine.web import app as server
    from engine.web.context import EXTENSION, WebContext

    app = server.create_app(config, live_backend(config, state_path, "api"), events_dir)
    if queue:
        from engine.daemon.queue_worker import queue_url
        from engine.pagerduty.pgqueue import EventQueue

        context: WebContext = app.extensions[EXTENSION]
        context.intake.use_queue(EventQueue(queue_url(config.state_url, state_path)))
    return app


COMMANDS = [watch, serve]
