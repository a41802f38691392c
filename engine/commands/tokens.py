"""`pagerules token add|revoke|list`: named API tokens, one per person (README "People and tokens").

The tokens file keeps hashes only; `add` prints the new token once, on stdout alone, so a script can
capture it, and nothing else these commands print is secret.
"""
from __future__ import annotations

import time

import click

from engine.commands.common import emit, fail_cleanly
from engine.config import Config, load_config
from engine.errors import ConfigError
from engine.web import tokens as store

config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")


def _path(config: Config) -> str:
    if not config.tokens_file:
        raise ConfigError("no tokens file is configured: set tokens_file in pagerduty.yaml (a path from the "
                          "config file's folder) or PAGERULES_TOKENS_FILE")
    return config.tokens_file


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at)) if at is not None else ""


@click.group()
def token() -> None:
    """Named API tokens: one per person, so the audit trail says who acknowledged or resolved.

    Example: pagerules token add alice
    """


@token.command()
@click.argument("name")
@config_option
@fail_cleanly
def add(name: str, config_path: str | None) -> None:
    """Give NAME a new token and print it once (only its hash is kept; it cannot be shown again).
    A revoked NAME gets a new token; one with an active token must be revoked first.

    Example: TOKEN=$(pagerules token add alice)
    """
    path = _path(load_config(config_path))
    secret = store.add(path, name, time.time())
    click.echo(secret)
    click.echo(f"pagerules: a new token for {name} (shown only now; only its hash is kept in {path}). "
               f"Give it to {name} for the dashboard or Authorization: Bearer; revoke it with "
               f"`pagerules token revoke {name}`.", err=True)


@token.command()
@click.argument("name")
@config_option
@fail_cleanly
def revoke(name: str, config_path: str | None) -> None:
    """Revoke NAME's token: the API refuses it and its dashboard sessions end at their next request,
    without a restart. The name stays listed as revoked.

    Example: pagerules token revoke alice
    """
    entry = store.revoke(_path(load_config(config_path)), name, time.time())
    click.echo(f"revoked: {entry.name} (since {_when(entry.revoked)})")


@token.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@config_option
@fail_cleanly
def list_tokens(as_json: bool, config_path: str | None) -> None:
    """The names with a token: when each was created and whether it is revoked (never a token or hash).

    Example: pagerules token list
    """
    entries = store.load_tokens(_path(load_config(config_path)))
    rows = [{"name": e.name, "created": _when(e.created), "revoked": _when(e.revoked) or None} for e in entries]
    human = "\n".join(f"{r['name']:<24} created {r['created']}" + (f"  revoked {r['revoked']}" if r["revoked"]
                                                                   else "  active") for r in rows)
    emit(rows, as_json, human or "no named tokens yet (pagerules token add NAME)")


COMMANDS: list[click.Command] = [token]
