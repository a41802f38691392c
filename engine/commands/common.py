"""What the command modules share: option decorators, error handling, backends, output."""
from __future__ import annotations

import getpass
import json
import logging
import sys
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TextIO

import click

from engine.config import Config, load_config
from engine.dispatch.dispatcher import Backend, DryRun
from engine.errors import PageRulesError
from engine.language.loading import load_ruleset
from engine.language.model import RuleSet

log = logging.getLogger("pagerules")


def fail_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Engine errors become a message on stderr and their exit status; never a traceback."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PageRulesError as exc:
            click.echo(f"pagerules: {exc}", err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:  # a bug: one line for the reader, the traceback with -v
            log.debug("unexpected error", exc_info=True)
            click.echo(f"pagerules: internal error: {type(exc).__name__}: {exc} (run with -v for the traceback; "
                       "please report it)", err=True)
            sys.exit(1)
    return wrapper


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --rules and --packs, shared by every command that loads rules."""
    func = click.option("--packs", help="Comma-separated rule packs to enable (PAGERULES_PACKS).")(func)
    func = click.option("--rules", "rules_dir", type=click.Path(file_okay=False),
                        help="Rules folder (default: rules_dir from the config).")(func)
    func = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="Config file (default: ./pagerduty.yaml, else the project's).")(func)
    return func


def state_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--state", "state_path", type=click.Path(dir_okay=False),
                        help="State: a file or a postgresql:// URL "
                             "(default: state_url, else state_path, from the config).")(func)


def load_all(config_path: str | None, rules_dir: str | None, packs: str | None) -> tuple[Config, RuleSet]:
    config = load_config(config_path, overrides={"rules_dir": rules_dir, "packs": packs})
    return config, load_ruleset(config)


def actor() -> str:
    return f"cli:{getpass.getuser()}"


def make_backend(config: Config, dry_run: bool, state_path: str | None, actor: str = "rules") -> Backend:
    """Dry run, or live (which needs every PagerDuty setting). Disabled sends nothing either way."""
    if dry_run or not config.enabled:
        return DryRun()
    config.require_live()
    from engine.pagerduty.backend import live_backend

    return live_backend(config, state_path, actor)


def emit(data: Any, as_json: bool, human: str) -> None:
    click.echo(json.dumps(data, ensure_ascii=False) if as_json else human)


# One encoder for every line: json.dumps(..., ensure_ascii=False) would build a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


def write_lines(lines: Iterable[dict[str, Any]], out: TextIO) -> None:
    write = out.write
    for line in lines:
        write(_encode(line) + "\n")
