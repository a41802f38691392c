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
@state_option
@fail_cleanly
def watch(config_path: str | None, rules_dir: str | None, packs: str | None, events_dir: str | None, once: bool,
          log_format: str, http_bind: str | None, state_path: str | None) -> None:
    """Run as a daemon over an events directory: each *.json or *.ndjson file dropped there is acted on,
    then moved to processed/ (or failed/ beside NAME.error).

    Rule and config edits apply to the next event; an edit that does not validate keeps the last
    good rules. SIGHUP reloads; SIGTERM or SIGINT finishes the file in hand and exits 0.

    Example: pagerules watch --events-dir /var/spool/pagerules
    """
    from engine.daemon.watch import Daemon
    from engine.web import app as server

    if log_format == "json":
        logs.use_json()
    daemon = Daemon(config_path, {"rules_dir": rules_dir, "packs": packs}, events_dir, once, state_path)
    if http_bind:
        app = _app(daemon.loaded.config, state_path, str(daemon.events))
        threading.Thread(target=server.serve, args=(app, http_bind), daemon=True, name="http").start()
    log.info("watching %s (ruleset %s)", daemon.events, daemon.loaded.ruleset.version)
    sys.exit(daemon.run())


@click.command()
@click.option("--bind", help="HOST:PORT to listen on (default: bind from the config, 127.0.0.1:8080).")
@click.option("--events-dir", type=click.Path(file_okay=False), help="Where webhook payloads go (default: events_dir).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@fail_cleanly
def serve(bind: str | None, events_dir: str | None, config_path: str | None, state_path: str | None) -> None:
    """Serve the JSON API, the dashboard and webhook intake.

    Needs PAGERULES_API_TOKEN (callers send it as a bearer token; the dashboard asks for it) and the
    PagerDuty settings. Binds to loopback unless told otherwise.

    Example: PAGERULES_API_TOKEN=... pagerules serve --bind 127.0.0.1:8080
    """
    from engine.web import app as server

    config = load_config(config_path, overrides={"bind": bind})
    server.serve(_app(config, state_path, events_dir), config.bind)


def _app(config: Config, state_path: str | None, events_dir: str | None) -> Any:
    config.require_live()
    from engine.pagerduty.backend import live_backend
    from engine.web import app as server

    return server.create_app(config, live_backend(config, state_path, "api"), events_dir)


COMMANDS = [watch, serve]
