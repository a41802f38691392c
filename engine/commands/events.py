"""The commands that run events through the rules: `process`, `explain` and `replay`."""
from __future__ import annotations

import json
import logging
import sys

import click

from engine.commands.common import config_options, fail_cleanly, load_all, make_backend, state_option, write_lines
from engine.config import Config, load_config
from engine.dispatch.dispatcher import Dispatcher, DryRun, MemoryView
from engine.dispatch.pipeline import Pipeline
from engine.dryrun.explain import explain_all, format_report
from engine.dryrun.silences import state_silences
from engine.errors import ConfigError
from engine.events.stream import read_events
from engine.language.loading import load_ruleset
from engine.language.silences import SilenceError, parse_duration, parse_time

log = logging.getLogger("pagerules")


@click.command()
@config_options
@click.option("--dry-run", is_flag=True,
              help="Contact nothing and write no state (its silences are read, and honoured); print what would "
                   "happen.")
@click.option("--type", "default_type", help="Type for input events that have none (e.g. github.workflow_run).")
@state_option
@fail_cleanly
def process(config_path: str | None, rules_dir: str | None, packs: str | None, dry_run: bool,
            default_type: str | None, state_path: str | None) -> None:
    """Read events on stdin and act on them.

    Input: one JSON object, a JSON array, or JSON lines. Prints one JSON line per
    outcome; exits 1 if any event was rejected or any action failed.

    Example: python cli.py process --dry-run < examples/events.jsonl
    """
    config, ruleset = load_all(config_path, rules_dir, packs)
    backend = dry_run_backend(config, state_path) if dry_run or not config.enabled else \
        make_backend(config, dry_run, state_path)
    dispatcher = Dispatcher(config, backend)
    pipeline = Pipeline(ruleset, dispatcher)
    tally = pipeline.tally
    write_lines(pipeline.lines(read_events(sys.stdin, "stdin"), default_type), sys.stdout)
    sys.stdout.flush()
    dispatcher.backend.notifier.flush()  # live: let queued channel announcements go out before exiting
    log.info(tally.summary())
    sys.exit(1 if tally.failed else 0)


@click.command()
@config_options
@click.option("--json", "as_json", is_flag=True, help="One JSON report per event instead of text.")
@click.option("--type", "default_type", help="Type for input events that have none.")
@state_option
@fail_cleanly
def explain(config_path: str | None, rules_dir: str | None, packs: str | None, as_json: bool,
            default_type: str | None, state_path: str | None) -> None:
    """For each event on stdin: every rule of its type, whether it matched, and why not.

    Open incidents carry from one event to the next as in a dry run, so a failed
    build followed by a passed one shows the resolve. A trigger an active silence of the
    state would mute says which silence (the state is only read).

    Example: echo '{"type": "build", "repo": "a/b", "branch": "dev", "build_number": 1, "status": "failed"}' \
    | python cli.py explain
    """
    _, ruleset = load_all(config_path, rules_dir, packs)
    config = load_config(config_path, overrides={"rules_dir": rules_dir, "packs": packs})
    pipeline = Pipeline(ruleset, Dispatcher(config, dry_run_backend(config, state_path)))
    for report in explain_all(read_events(sys.stdin, "stdin"), pipeline, default_type):
        click.echo(json.dumps(report, ensure_ascii=False) if as_json else format_report(report) + "\n")


@click.command()
@click.argument("events", nargs=-1, required=True)
@click.option("--rules", "new_rules", required=True, type=click.Path(file_okay=False, exists=True),
              help="The changed rules folder.")
@click.option("--against", "old_rules", type=click.Path(file_okay=False, exists=True),
              help="The rules in force (default: rules_dir from the config).")
@click.option("--packs", help="Comma-separated rule packs to enable in both.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per difference, then the summary.")
@click.option("--until", "until_text", metavar="TIME|+DURATION",
              help="Run the last wake-up (for: triggers now due) at this ISO 8601 time, or this long after "
                   "the last event (+15m); default: at the last event's time.")
@fail_cleanly
def replay(events: tuple[str, ...], new_rules: str, old_rules: str | None, packs: str | None,
           config_path: str | None, as_json: bool, until_text: str | None) -> None:
    """Show how a rule change would have changed paging on recorded events.

    EVENTS are files, folders (such as the daemon's processed/) or - for JSON lines on stdin. Prints
    only the differences and a count per rule; exits 0 when there are none, 1 when there are. Time is
    the events' own: before each event, and at the end, the daemon's wake-up pages the for: triggers
    whose time has passed.

    Example: pagerules replay --rules ../new-rules/rules --against rules /var/spool/pagerules/processed
    """
    from engine.dryrun import replay as replay_engine

    until, past_end = _until(until_text)
    new_config = load_config(config_path, overrides={"rules_dir": new_rules, "packs": packs})
    old_config = load_config(config_path, overrides={"rules_dir": old_rules, "packs": packs})
    warned: set[str] = set()  # one warning per type, not one per ruleset
    clock = replay_engine.ReplayClock()
    new = Pipeline(load_ruleset(new_config), Dispatcher(new_config, DryRun(), clock), warned=warned)
    old = Pipeline(load_ruleset(old_config), Dispatcher(old_config, DryRun(), clock), warned=warned)
    found = list(replay_engine.replay(replay_engine.recorded_events(list(events)), new, old, clock, until,
                                      past_end))
    counts = replay_engine.summary(found)
    for difference in found:
        click.echo(json.dumps(difference.as_dict(), ensure_ascii=False, default=str) if as_json else str(difference))
    if as_json:
        click.echo(json.dumps({"summary": counts, "differences": len(found)}))
    else:
        per_rule = "; ".join(f"{rule}: " + ", ".join(f"{n} {kind}" for kind, n in kinds.items())
                             for rule, kinds in counts.items())
        click.echo(f"{len(found)} differences" + (f" ({per_rule})" if per_rule else ""))
    sys.exit(1 if found else 0)


def dry_run_backend(config: Config, state_path: str | None) -> DryRun:
    """A dry run that honours the state's silences as a live run would (README "Silences and maintenance
    windows"), read-only; a state it cannot read is one warning, and the run goes on unsilenced."""
    found = state_silences(config, state_path)
    if found.warning:
        log.warning("%s", found.warning)
    return DryRun(MemoryView(silences=found.silences))


def _until(text: str | None) -> tuple[float | None, float]:
    """--until: an ISO 8601 time (absolute), or +DURATION after the last event; a bad one exits 2 naming it."""
    if text is None:
        return None, 0.0
    try:
        if text.strip().startswith("+"):
            return None, parse_duration(text.strip()[1:], "--until")
        return parse_time(text, "--until"), 0.0
    except SilenceError as exc:
        raise ConfigError(f"--until: {exc.reason} (an ISO 8601 time, or +15m after the last event)") from None


COMMANDS = [process, explain, replay]
