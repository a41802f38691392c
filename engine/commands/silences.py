"""`pagerules silence add|list|expire`: mute triggers for a while (README "Silences and maintenance windows").

Silences live in the state, so a running `watch` or `serve` sharing it honours one within a second or two.
"""
from __future__ import annotations

import getpass
import os
import time
from typing import TYPE_CHECKING, Any

import click

from engine.commands.common import emit, fail_cleanly, state_option
from engine.config import load_config
from engine.errors import ConfigError
from engine.language.silences import Silence, SilenceError, iso, matchers_from_pairs, silence_from_request

# The field of a SilenceError, as the option that gave it.
OPTION_OF = {"match": "--match", "comment": "--comment", "starts_at": "--from", "ends_at": "--until", "for": "--for",
             "weekly.weekdays": "--weekly", "weekly.between": "--between", "weekly.tz": "--tz",
             "created_by": "--by"}


def _creator() -> str:
    return os.environ.get("USER") or getpass.getuser()


if TYPE_CHECKING:
    from engine.pagerduty.state import State


def _open(config_path: str | None, state_path: str | None) -> State:
    from engine.pagerduty.store import open_state

    return open_state(load_config(config_path), state_path)


@click.group()
def silence() -> None:
    """Mute pages for a while: maintenance, a known outage, a noisy rule being fixed.

    Example: pagerules silence add --match repo=acme/api --for 2h --comment "database upgrade"
    """


@silence.command()
@click.option("--match", "matches", multiple=True, required=True, metavar="LABEL=VALUE",
              help="A label the incident must have with this value; repeat for more (all must hold).")
@click.option("--for", "duration", metavar="DURATION", help="How long from the start: 30m, 2h, 1d, 1h30m.")
@click.option("--until", metavar="TIME", help="When it ends: ISO 8601 (2026-12-03T22:00:00Z; no offset: UTC).")
@click.option("--from", "starts", metavar="TIME", help="When it starts (ISO 8601); default now.")
@click.option("--comment", required=True, help="Why: who is working on what.")
@click.option("--by", "by", metavar="NAME", help="Who makes it, for the audit trail (default: $USER).")
@click.option("--weekly", metavar="DAYS", help="Recur on these weekdays only: mon-fri, sat,sun (needs --between).")
@click.option("--between", metavar="HH:MM-HH:MM", help="Recur between these times of day (every day unless --weekly).")
@click.option("--tz", metavar="ZONE", help="The IANA time zone of --between (default UTC): Europe/Berlin.")
@click.option("--json", "as_json", is_flag=True, help="Print the silence as JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@fail_cleanly
def add(matches: tuple[str, ...], duration: str | None, until: str | None, starts: str | None, comment: str,
        by: str | None, weekly: str | None, between: str | None, tz: str | None, as_json: bool,
        config_path: str | None, state_path: str | None) -> None:
    """Mute triggers whose labels match, from now (or --from) for --for or until --until; print its id.

    Resolves are never muted. With --between (and --weekly, --tz) it is a maintenance window: it mutes
    only at those times, from its start to its end.

    Example: pagerules silence add --match repo=acme/api --until 2027-01-31T00:00:00Z --weekly sat,sun
    --between 02:00-04:00 --tz Europe/Berlin --comment "weekend backups"
    """
    if (weekly is not None or tz is not None) and between is None:
        raise ConfigError("--weekly and --tz need --between HH:MM-HH:MM (the hours of the window)")
    try:
        request: dict[str, Any] = {"match": matchers_from_pairs(matches), "comment": comment, "starts_at": starts,
                                   "ends_at": until, "for": duration}
        if between is not None:  # an empty one (an unset variable) is refused, never taken for none
            request["weekly"] = {"weekdays": "mon-sun" if weekly is None else weekly, "between": between,
                                 "tz": "UTC" if tz is None else tz}
        made = silence_from_request(request, by or _creator(), time.time())
    except SilenceError as exc:  # said with the option's name, not the API's field
        raise ConfigError(f"{OPTION_OF.get(exc.field, exc.field)}: {exc.reason}") from None
    state = _open(config_path, state_path)
    try:
        state.add_silence(made)
    finally:
        state.close()
    emit(made.to_json(time.time()), as_json, made.id)


@silence.command(name="list")
@click.option("--all", "everything", is_flag=True, help="Also the silences that ended (newest first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@fail_cleanly
def list_(everything: bool, as_json: bool, config_path: str | None, state_path: str | None) -> None:
    """The silences not yet ended (active, waiting for their window, or not started), or --all.

    Example: pagerules silence list --json
    """
    now = time.time()
    state = _open(config_path, state_path)
    try:
        found = state.silences(now, include_ended=everything)
    finally:
        state.close()
    emit([s.to_json(now) for s in found], as_json, "\n".join(_row(s, now) for s in found) or "no silences")


def _row(made: Silence, now: float) -> str:
    match = " ".join(f"{k}={v}" if isinstance(v, str) else f"{k}:{v}" for k, v in made.match.items())
    window = f" [{made.weekly.describe()}]" if made.weekly else ""
    return (f"{made.id}  {made.state_at(now):<8} {iso(made.starts_at)} -> {iso(made.ends_at)}{window}  "
            f"{made.created_by}  {match}  {made.comment}")


@silence.command()
@click.argument("silence_id", metavar="ID")
@click.option("--by", "by", metavar="NAME", help="Who ends it, for the audit trail (default: $USER).")
@click.option("--json", "as_json", is_flag=True, help="Print the silence as JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@fail_cleanly
def expire(silence_id: str, by: str | None, as_json: bool, config_path: str | None, state_path: str | None) -> None:
    """End a silence now: the next trigger it would have muted pages.

    Example: pagerules silence expire 3f2a9c1e-0b7d-4c55-9a57-1c3e8f0d2b44
    """
    now = time.time()
    state = _open(config_path, state_path)
    try:
        ended = state.expire_silence(silence_id, now, by or _creator())
    finally:
        state.close()
    emit(ended.to_json(now), as_json, f"expired {ended.id}")


COMMANDS: list[click.Command] = [silence]
