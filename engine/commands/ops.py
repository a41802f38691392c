"""The operator commands: manual trigger, resolve and ack, on-call, checks, audit, daemon status.

cli.py registers them on the `pagerules` group; each parses options, calls one engine function
and prints human-readable text or `--json`.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from engine.commands.common import actor, emit, fail_cleanly, make_backend, state_option
from engine.config import Config, load_config
from engine.dispatch.outcomes import Result, Status, acknowledged
from engine.errors import ConfigError
from engine.settings import BY_NAME


@click.command()
@click.option("--title", required=True, help="What is wrong, as the incident title's text.")
@click.option("--severity", required=True, help="low, medium, high or critical.")
@click.option("--repo", required=True, help="The repository (owner/name) the incident is about.")
@click.option("--key", help="incident_key (the prefix is added); default: from repo and title.")
@click.option("--details", help="JSON object sent as the incident's details.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome line as JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@fail_cleanly
def trigger(title: str, severity: str, repo: str, key: str | None, details: str | None, as_json: bool,
            config_path: str | None, state_path: str | None) -> None:
    """Page by hand, with the same prefix, threshold and dedup as events.

    Example: pagerules trigger --title "checkout is down" --severity critical --repo acme/shop
    """
    from engine.pagerduty import manual

    config = load_config(config_path)
    parsed = _json_object(details, "--details")
    line = manual.trigger(config, make_backend(config, False, state_path, actor()), title, severity.lower(), repo,
                          key, parsed)
    emit(line, as_json, f"{line['status']}: {line['incident_key']} {line['title']}"
          + (f" ({line['incident_id']})" if line.get("incident_id") else "") + _error_suffix(line))
    sys.exit(1 if line["status"] == Status.FAILED else 0)


@click.command()
@click.option("--key", required=True, help="incident_key, with or without the prefix.")
@click.option("--message", help="Resolution message (also added as a note).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome line as JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@fail_cleanly
def resolve(key: str, message: str | None, as_json: bool, config_path: str | None, state_path: str | None) -> None:
    """Resolve an incident by key in PagerDuty, with a message.

    Example: pagerules resolve --key codespar-acme-backend-api-build-349 --message "fixed by hand"
    """
    from engine.pagerduty import manual

    config = load_config(config_path)
    line = manual.resolve(config, make_backend(config, False, state_path, actor()), key, message)
    emit(line, as_json, f"{line['status']}: {line['incident_key']}" + _error_suffix(line))
    sys.exit(1 if line["status"] == Status.FAILED else 0)


@click.command()
@click.option("--key", required=True, help="incident_key, with or without the prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@fail_cleanly
def ack(key: str, as_json: bool, config_path: str | None, state_path: str | None) -> None:
    """Acknowledge an incident by key in PagerDuty.

    Example: pagerules ack --key codespar-acme-backend-api-build-349
    """
    from engine.pagerduty import manual

    config = load_config(config_path)
    backend = make_backend(config, False, state_path, actor())
    # Disabled: the key as given, as this command has always printed it (manual.acknowledge would prefix it).
    line = manual.acknowledge(config, backend, key) if config.enabled else \
        acknowledged(key, Result(Status.DISABLED)).to_line()
    emit(line, as_json, f"{line['status']}: {line['incident_key']}" + _error_suffix(line))
    sys.exit(1 if line["status"] == Status.FAILED else 0)


@click.command()
@click.option("--repo", help="A repository (owner/name): the on-call of the route its incidents take.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@fail_cleanly
def oncall(repo: str | None, as_json: bool, config_path: str | None) -> None:
    """Who is on call now, lowest level first: for the escalation policy, or with --repo for the route
    that repository's incidents take (its policy; the global one when no route takes them).

    Exits 1 when that policy is unknown (an Events API route without escalation_policy_id, or no
    global policy), saying what to add.

    Example: pagerules oncall --repo acme/payments --json
    """
    from engine.pagerduty import manual
    from engine.pagerduty.backend import make_client

    config = load_config(config_path)
    if repo is None:
        _needs(config, "api_token", "escalation_policy_id")
        people = manual.oncall(make_client(config), str(config.escalation_policy_id))
        emit([p.__dict__ for p in people], as_json, _people(people, "nobody is on call for this escalation policy"))
        return
    if not repo.strip():
        raise ConfigError("--repo: expected a repository (owner/name), got empty text")
    target = manual.project_target(config, repo)  # a bad route config stops here: exit 2, FILE:LINE
    people = []
    if target.escalation_policy_id is not None:
        _needs(config, "api_token")
        people = manual.oncall(make_client(config), target.escalation_policy_id)
    lines = [f"{repo}: {target.why}" + (f", escalation policy {target.escalation_policy_id}"
                                        if target.escalation_policy_id else "")]
    lines += [f"also: {target.also}"] if target.also else []
    lines.append(target.unknown or _people(people, f"nobody is on call for {target.escalation_policy_id}"))
    emit(manual.project_view(target, people), as_json, "\n".join(lines))
    sys.exit(1 if target.unknown else 0)


def _needs(config: Config, *names: str) -> None:
    """On-call is asked of the REST API (GET /oncalls needs no From user), whatever route kinds there are."""
    missing = [str(BY_NAME[name].env) for name in names if not getattr(config, name)]
    if missing:
        them = "it" if len(missing) == 1 else "them"
        raise ConfigError(f"oncall needs {', '.join(missing)}: set {them} in the environment or in {config.source}")


def _people(people: list[Any], nobody: str) -> str:
    return "\n".join(f"level {p.escalation_level}: {p.name} <{p.email}>" + (f", {p.schedule}" if p.schedule else "")
                     + (f", until {p.until}" if p.until else "") for p in people) or nobody


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@fail_cleanly
def check(as_json: bool, config_path: str | None) -> None:
    """Verify the token, the From user, the service and the escalation policy, then every route's:
    a REST route's service_id and escalation_policy_id are asked of PagerDuty; an Events API route's
    routing key is checked to be set and 32 characters (PagerDuty cannot verify one without an event).

    Exits 1 and says what to fix when any of them is wrong.

    Example: PAGERDUTY_API_TOKEN=... pagerules check
    """
    from engine.pagerduty import manual
    from engine.pagerduty.backend import make_client

    config = load_config(config_path)
    results = manual.check(config, None if config.missing_for_live(rest=True) else make_client(config), os.environ)
    emit([r.__dict__ for r in results], as_json,
          "\n".join(f"{'ok  ' if r.ok else 'FAIL'} {r.name}: {r.message}" for r in results))
    sys.exit(0 if all(r.ok for r in results) else 1)


@click.command()
@click.option("--events-dir", type=click.Path(file_okay=False), help="The daemon's folder (default: events_dir).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@fail_cleanly
def status(events_dir: str | None, as_json: bool, config_path: str | None) -> None:
    """The watch daemon's health: ruleset in force, last reload error, files handled, failed and
    pending, last PagerDuty error. Exits 1 when no daemon is running.

    Example: pagerules status --events-dir /var/spool/pagerules
    """
    from engine.daemon.status import read_status, status_path

    folder = Path(events_dir or load_config(config_path).events_dir)
    data = read_status(status_path(folder))
    if data is None:
        emit({"running": False}, as_json, f"no daemon has run on {folder}")
        sys.exit(1)
    human = "\n".join([
        f"{'running' if data['running'] else 'NOT running'} (pid {data['pid']}), ruleset {data['ruleset_version']}",
        f"files: {data['files_processed']} processed, {data['files_failed']} failed, {data['files_pending']} pending",
        f"last reload error: {data['last_reload_error'] or 'none'}",
        f"last PagerDuty error: {data['last_pagerduty_error'] or 'none'}",
        "events no rule handles (is their pack on?): "
        + (", ".join(f"{kind} {n}" for kind, n in sorted((data.get("unhandled_events") or {}).items())) or "none")])
    emit(data, as_json, human)
    sys.exit(0 if data["running"] else 1)


@click.command()
@click.option("--limit", default=50, show_default=True, help="How many entries, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@fail_cleanly
def audit(limit: int, as_json: bool, config_path: str | None, state_path: str | None) -> None:
    """Recent audit entries: every create, dedup, resolve, acknowledge and manual action.

    Example: pagerules audit --limit 20
    """
    from engine.pagerduty.store import open_state

    config = load_config(config_path)
    state = open_state(config, state_path)
    try:
        entries = state.recent_audit(limit)
    finally:
        state.close()
    human = "\n".join(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e['at']))}Z {e['actor']:<14} "
                       f"{e['action']:<12} {e['incident_key'] or ''} {e['incident_id'] or ''}".rstrip()
                       for e in entries) or "no audit entries"
    emit(entries, as_json, human)


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--state", "state_path", help="a file or a postgresql:// URL")
@fail_cleanly
def migrate(config_path: str | None, state_path: str | None) -> None:
    """Bring the state's schema up to this release (a newer one is refused, exit 2), and say what was done.

    Every command applies missing migrations when it opens the state; this does it ahead of a deploy.

    Example: pagerules migrate --state postgresql://pagerules@db/pagerules
    """
    from engine.pagerduty.store import migrate_state

    click.echo(migrate_state(load_config(config_path), state_path).line())


def _json_object(text: str | None, option: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{option}: expected a JSON object")
    return value


def _error_suffix(line: dict[str, Any]) -> str:
    return f": {line['error']}" if line.get("error") else ""


COMMANDS = [trigger, resolve, ack, oncall, check, status, audit, migrate]
