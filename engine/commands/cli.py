"""pagerules command line. Each command parses options, calls the engine, and turns
its errors into a message and an exit status: 0 all handled, 1 an event or action
failed, 2 usage or configuration error.

The live layer, the daemon and the web server are imported inside the commands
that use them: `process --dry-run` starts in half the time without Flask,
requests and watchdog.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import click

from engine.commands import ops as opscli
from engine.commands.common import config_options, fail_cleanly, load_all, make_backend, state_option, write_lines
from engine.config import Config, load_config
from engine.dispatch.dispatcher import Dispatcher, DryRun
from engine.dispatch.pipeline import Pipeline
from engine.dryrun.explain import explain_all, format_report
from engine.errors import InvalidFiles, PageRulesError, Problem
from engine.events.stream import read_events
from engine.language.rules import load_ruleset, rule_folders

log = logging.getLogger("pagerules")


@click.group()
@click.version_option(package_name="pagerules", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
def main(verbose: bool) -> None:
    """pagerules: decide when to wake someone up.

    YAML rules turn JSON events into PagerDuty incidents, and recoveries resolve them.

    Example: python cli.py process --dry-run < examples/events.jsonl
    """
    for stream in (sys.stdout, sys.stderr):  # a lone surrogate prints as its JSON escape, never a crash
        stream.reconfigure(encoding="utf-8", errors="backslashreplace")  # type: ignore[union-attr]
    # Undecodable bytes become U+FFFD, as Go's encoding/json (Alertmanager) does; the JSON is then judged.
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@config_options
@click.option("--strict", is_flag=True, help="Treat warnings as problems (exit 1).")
@fail_cleanly
def validate(config_path: str | None, rules_dir: str | None, packs: str | None, strict: bool) -> None:
    """Check the config, every rule file and the event schemas.

    Prints every problem as FILE:LINE: rule ID: message and exits 1 if there is one; says which
    config file and rule folders it read.

    Example: python cli.py validate --packs github
    """
    problems: list[Problem | str] = []
    ruleset, config_read = None, False
    try:
        config = load_config(config_path, overrides={"rules_dir": rules_dir, "packs": packs})
    except InvalidFiles as exc:
        problems.extend(exc.problems)
    except PageRulesError as exc:
        problems.append(str(exc))
    else:
        config_read = True
        click.echo(f"config: {Path(config.source).resolve()} (from {config.found_by})", err=True)
        try:
            ruleset = load_ruleset(config)
            problems.extend(ruleset.warnings)
        except InvalidFiles as exc:
            problems.extend(exc.problems)
        click.echo(f"rules: {', '.join(rule_folders(config))}", err=True)
    for problem in problems:
        click.echo(str(problem))
    errors = [p for p in problems if not (isinstance(p, Problem) and p.warning and not strict)]
    if errors:
        unchecked = "" if config_read else "; the rules are checked once the config is valid"
        click.echo(f"{len(errors)} problem(s) found{unchecked}", err=True)
        sys.exit(1)
    assert ruleset is not None
    count = len(ruleset.all_rules())
    click.echo(f"ok: {count} rules in {len(ruleset.files)} files (ruleset {ruleset.version})", err=True)


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite files that are already there.")
@fail_cleanly
def init(directory: str, force: bool) -> None:
    """Start a pagerules setup in DIRECTORY (default: here): a pagerduty.yaml with every setting
    commented, rules/ with the shipped rules and their test cases, and examples/events.jsonl.

    Refuses to overwrite an existing file unless --force. `pagerules validate` and `pagerules test`
    pass in the result.

    Example: pagerules init ops/paging && cd ops/paging && pagerules test
    """
    from engine.commands.starter import write_starter

    for path in write_starter(Path(directory), force):
        click.echo(f"wrote {path}")
    click.echo(f"next: cd {directory} && pagerules validate && pagerules test", err=True)


@main.command()
@config_options
@click.option("--dry-run", is_flag=True, help="Contact nothing and write no state; print what would happen.")
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
    dispatcher = Dispatcher(config, make_backend(config, dry_run, state_path))
    pipeline = Pipeline(ruleset, dispatcher)
    tally = pipeline.tally
    write_lines(pipeline.lines(read_events(sys.stdin, "stdin"), default_type), sys.stdout)
    sys.stdout.flush()
    dispatcher.backend.notifier.flush()  # live: let queued channel announcements go out before exiting
    log.info(tally.summary())
    sys.exit(1 if tally.failed else 0)


@main.command()
@config_options
@click.option("--json", "as_json", is_flag=True, help="One JSON report per event instead of text.")
@click.option("--type", "default_type", help="Type for input events that have none.")
@fail_cleanly
def explain(config_path: str | None, rules_dir: str | None, packs: str | None, as_json: bool,
            default_type: str | None) -> None:
    """For each event on stdin: every rule of its type, whether it matched, and why not.

    Open incidents carry from one event to the next as in a dry run, so a failed
    build followed by a passed one shows the resolve.

    Example: echo '{"type": "build", "repo": "a/b", "branch": "dev", "build_number": 1, "status": "failed"}' \
    | python cli.py explain
    """
    _, ruleset = load_all(config_path, rules_dir, packs)
    config = load_config(config_path, overrides={"rules_dir": rules_dir, "packs": packs})
    pipeline = Pipeline(ruleset, Dispatcher(config, DryRun()))
    for report in explain_all(read_events(sys.stdin, "stdin"), pipeline, default_type):
        click.echo(json.dumps(report, ensure_ascii=False) if as_json else format_report(report) + "\n")


@main.command(name="test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@config_options
@click.option("--strict", is_flag=True, help="Warnings (dedup-key lint, PagerDuty limits) fail too.")
@fail_cleanly
def test_command(paths: tuple[str, ...], config_path: str | None, rules_dir: str | None, packs: str | None,
                 strict: bool) -> None:
    """Run rule test cases: events in, expected outcomes out, on the dry-run engine.

    With no PATH, runs the rules folder's tests/ (rules/tests/*.yaml). Prints one line per case, a
    diff for each failing one, and last `N passed, M failed`; exits 1 when any case fails.

    Example: pagerules test rules/tests/build.yaml
    """
    from engine.dryrun import ruletest

    base = {"rules_dir": rules_dir, "packs": packs}
    config = load_config(config_path, overrides=base)
    warnings = {str(w) for w in load_ruleset(config).warnings}
    passed = failed = 0
    run = ruletest.RuleTestRun(config_path, base)
    for path in ruletest.test_files(list(paths), config):
        for result in run.run_file(path):
            warnings |= {str(w) for w in result.warnings}
            click.echo(f"{result.where} {result.name} {'PASSED' if result.passed else 'FAILED'}")
            for line in result.diffs:
                click.echo(f"    {line}")
            passed, failed = passed + result.passed, failed + (not result.passed)
    for warning in sorted(warnings):
        click.echo(warning)
    if strict and warnings:
        failed += len(warnings)
    click.echo(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("events", nargs=-1, required=True)
@click.option("--rules", "new_rules", required=True, type=click.Path(file_okay=False, exists=True),
              help="The changed rules folder.")
@click.option("--against", "old_rules", type=click.Path(file_okay=False, exists=True),
              help="The rules in force (default: rules_dir from the config).")
@click.option("--packs", help="Comma-separated rule packs to enable in both.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per difference, then the summary.")
@fail_cleanly
def replay(events: tuple[str, ...], new_rules: str, old_rules: str | None, packs: str | None,
           config_path: str | None, as_json: bool) -> None:
    """Show how a rule change would have changed paging on recorded events.

    EVENTS are files, folders (such as the daemon's processed/) or - for JSON lines on stdin. Prints
    only the differences and a count per rule; exits 0 when there are none, 1 when there are.

    Example: pagerules replay --rules ../new-rules/rules --against rules /var/spool/pagerules/processed
    """
    from engine.dryrun import replay as replay_engine

    new_config = load_config(config_path, overrides={"rules_dir": new_rules, "packs": packs})
    old_config = load_config(config_path, overrides={"rules_dir": old_rules, "packs": packs})
    warned: set[str] = set()  # one warning per type, not one per ruleset
    new = Pipeline(load_ruleset(new_config), Dispatcher(new_config, DryRun()), warned=warned)
    old = Pipeline(load_ruleset(old_config), Dispatcher(old_config, DryRun()), warned=warned)
    found = list(replay_engine.replay(replay_engine.recorded_events(list(events)), new, old))
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


@main.command()
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
        _json_logs()
    daemon = Daemon(config_path, {"rules_dir": rules_dir, "packs": packs}, events_dir, once, state_path)
    if http_bind:
        app = _app(daemon.loaded.config, state_path, str(daemon.events))
        threading.Thread(target=server.serve, args=(app, http_bind), daemon=True, name="http").start()
    log.info("watching %s (ruleset %s)", daemon.events, daemon.loaded.ruleset.version)
    sys.exit(daemon.run())


@main.command()
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


def _json_logs() -> None:
    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return json.dumps({"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                               "message": record.getMessage()}, ensure_ascii=False)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())


for _command in opscli.COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":
    main()
