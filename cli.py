"""pagerules command line. Each command parses options, calls the engine, and turns
its errors into a message and an exit status: 0 all handled, 1 an event or action
failed, 2 usage or configuration error.

The live layer, the daemon and the web server are imported inside the commands
that use them: `process --dry-run` starts in half the time without Flask,
requests and watchdog.
"""
from __future__ import annotations

import getpass
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, TextIO

import click

from engine.config import Config, load_config
from engine.dispatch import Backend, Dispatcher, DryRun
from engine.errors import ConfigError, InvalidFiles, PageRulesError, Problem
from engine.events import prepare, read_events
from engine.explain import explain_event, format_report
from engine.pipeline import Tally, run
from engine.rules import RuleSet, load_ruleset

log = logging.getLogger("pagerules")


def _fail_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
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
                        help="State file (default: state_path from the config, PAGERULES_STATE).")(func)


def _load(config_path: str | None, rules_dir: str | None, packs: str | None) -> tuple[Config, RuleSet]:
    config = load_config(config_path, overrides={"rules_dir": rules_dir, "packs": packs})
    return config, load_ruleset(config)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _backend(config: Config, dry_run: bool, state_path: str | None, actor: str = "rules") -> Backend:
    """Dry run, or live (which needs every PagerDuty setting). Disabled sends nothing either way."""
    if dry_run or not config.enabled:
        return DryRun()
    config.require_live()
    from engine.live import live_backend

    return live_backend(config, state_path, actor)


def _emit(data: Any, as_json: bool, human: str) -> None:
    click.echo(json.dumps(data, ensure_ascii=False) if as_json else human)


# One encoder for every line: json.dumps(..., ensure_ascii=False) would build a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


def _write_lines(lines: Iterable[dict[str, Any]], out: TextIO) -> None:
    write = out.write
    for line in lines:
        write(_encode(line) + "\n")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
def main(verbose: bool) -> None:
    """pagerules: decide when to wake someone up.

    YAML rules turn JSON events into PagerDuty incidents, and recoveries resolve them.

    Example: python cli.py process --dry-run < examples/events.jsonl
    """
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@config_options
@click.option("--strict", is_flag=True, help="Treat warnings as problems (exit 1).")
def validate(config_path: str | None, rules_dir: str | None, packs: str | None, strict: bool) -> None:
    """Check the config, every rule file and the event schemas.

    Prints every problem as FILE:LINE: rule ID: message and exits 1 if there is one.

    Example: python cli.py validate --packs github
    """
    problems: list[Problem | str] = []
    try:
        config = load_config(config_path, overrides={"rules_dir": rules_dir, "packs": packs})
    except InvalidFiles as exc:
        problems.extend(exc.problems)
        config = Config()
    except PageRulesError as exc:
        problems.append(str(exc))
        config = Config()
    try:
        ruleset = load_ruleset(config)
        problems.extend(ruleset.warnings)
    except InvalidFiles as exc:
        problems.extend(exc.problems)
        ruleset = None
    for problem in problems:
        click.echo(str(problem))
    errors = [p for p in problems if not (isinstance(p, Problem) and p.warning and not strict)]
    if errors:
        click.echo(f"{len(errors)} problem(s) found", err=True)
        sys.exit(1)
    assert ruleset is not None
    count = len(ruleset.all_rules())
    click.echo(f"ok: {count} rules in {len(ruleset.files)} files (ruleset {ruleset.version})", err=True)


@main.command()
@config_options
@click.option("--dry-run", is_flag=True, help="Contact nothing and write no state; print what would happen.")
@click.option("--type", "default_type", help="Type for input events that have none (e.g. github.workflow_run).")
@state_option
@_fail_cleanly
def process(config_path: str | None, rules_dir: str | None, packs: str | None, dry_run: bool,
            default_type: str | None, state_path: str | None) -> None:
    """Read events on stdin and act on them.

    Input: one JSON object, a JSON array, or JSON lines. Prints one JSON line per
    outcome; exits 1 if any event was rejected or any action failed.

    Example: python cli.py process --dry-run < examples/events.jsonl
    """
    config, ruleset = _load(config_path, rules_dir, packs)
    dispatcher = Dispatcher(config, _backend(config, dry_run, state_path))
    tally = Tally()
    _write_lines(run(read_events(sys.stdin, "stdin"), ruleset, dispatcher, tally, default_type), sys.stdout)
    sys.stdout.flush()
    notifier = getattr(dispatcher.backend, "notifier", None)
    if notifier is not None:  # live: let queued channel announcements go out before exiting
        notifier.flush()
    log.info(tally.summary())
    sys.exit(1 if tally.failed else 0)


@main.command()
@config_options
@click.option("--json", "as_json", is_flag=True, help="One JSON report per event instead of text.")
@click.option("--type", "default_type", help="Type for input events that have none.")
@_fail_cleanly
def explain(config_path: str | None, rules_dir: str | None, packs: str | None, as_json: bool,
            default_type: str | None) -> None:
    """For each event on stdin: every rule of its type, whether it matched, and why not.

    Open incidents carry from one event to the next as in a dry run, so a failed
    build followed by a passed one shows the resolve.

    Example: echo '{"type": "build", "repo": "a/b", "branch": "dev", "build_number": 1, "status": "failed"}' | python cli.py explain
    """
    _, ruleset = _load(config_path, rules_dir, packs)
    config = load_config(config_path, overrides={"rules_dir": rules_dir, "packs": packs})
    dispatcher = Dispatcher(config, DryRun())
    for report in _explain_all(read_events(sys.stdin, "stdin"), ruleset, dispatcher, default_type):
        click.echo(json.dumps(report, ensure_ascii=False) if as_json else format_report(report) + "\n")


def _explain_all(items: Any, ruleset: RuleSet, dispatcher: Dispatcher, default_type: str | None
                 ) -> Iterator[dict[str, Any]]:
    for item in items:
        if item.event is None:
            yield {"event_id": None, "type": None, "rejected": item.error}
            continue
        if default_type and "type" not in item.event:
            item.event["type"] = default_type
        for event in prepare(item.event, ruleset.event_types):
            yield explain_event(event, ruleset, dispatcher)


@main.command(name="test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@config_options
@click.option("--strict", is_flag=True, help="Warnings (dedup-key lint, PagerDuty limits) fail too.")
@_fail_cleanly
def test_command(paths: tuple[str, ...], config_path: str | None, rules_dir: str | None, packs: str | None,
                 strict: bool) -> None:
    """Run rule test cases: events in, expected outcomes out, on the dry-run engine.

    With no PATH, runs the rules folder's tests/ (rules/tests/*.yaml). Prints one line per case, a
    diff for each failing one, and last `N passed, M failed`; exits 1 when any case fails.

    Example: pagerules test rules/tests/build.yaml
    """
    from engine import ruletest

    base = {"rules_dir": rules_dir, "packs": packs}
    config = load_config(config_path, overrides=base)
    warnings = {str(w) for w in load_ruleset(config).warnings}
    passed = failed = 0
    for path in ruletest.test_files(list(paths), config):
        for result in ruletest.run_file(path, config_path, base):
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
@_fail_cleanly
def replay(events: tuple[str, ...], new_rules: str, old_rules: str | None, packs: str | None,
           config_path: str | None, as_json: bool) -> None:
    """Show how a rule change would have changed paging on recorded events.

    EVENTS are files, folders (such as the daemon's processed/) or - for JSON lines on stdin. Prints
    only the differences and a count per rule; exits 0 when there are none, 1 when there are.

    Example: pagerules replay --rules ../new-rules/rules --against rules /var/spool/pagerules/processed
    """
    from engine import replay as replay_engine

    new_config = load_config(config_path, overrides={"rules_dir": new_rules, "packs": packs})
    old_config = load_config(config_path, overrides={"rules_dir": old_rules, "packs": packs})
    new, old = load_ruleset(new_config), load_ruleset(old_config)
    found = list(replay_engine.replay(replay_engine.recorded_events(list(events)), new, old,
                                      Dispatcher(new_config, DryRun()), Dispatcher(old_config, DryRun())))
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
@click.option("--title", required=True, help="What is wrong, as the incident title's text.")
@click.option("--severity", required=True, help="low, medium, high or critical.")
@click.option("--repo", required=True, help="The repository (owner/name) the incident is about.")
@click.option("--key", help="incident_key (the prefix is added); default: from repo and title.")
@click.option("--details", help="JSON object sent as the incident's details.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome line as JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@_fail_cleanly
def trigger(title: str, severity: str, repo: str, key: str | None, details: str | None, as_json: bool,
            config_path: str | None, state_path: str | None) -> None:
    """Page by hand, with the same prefix, threshold and dedup as events.

    Example: pagerules trigger --title "checkout is down" --severity critical --repo acme/shop
    """
    from engine import manual

    config = load_config(config_path)
    parsed = _json_object(details, "--details")
    line = manual.trigger(config, _backend(config, False, state_path, _actor()), title, severity.lower(), repo,
                          key, parsed)
    _emit(line, as_json, f"{line['status']}: {line['incident_key']} {line['title']}"
          + (f" ({line['incident_id']})" if line.get("incident_id") else "") + _error_suffix(line))
    sys.exit(1 if line["status"] == "failed" else 0)


@main.command()
@click.option("--key", required=True, help="incident_key, with or without the prefix.")
@click.option("--message", help="Resolution message (also added as a note).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome line as JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@_fail_cleanly
def resolve(key: str, message: str | None, as_json: bool, config_path: str | None, state_path: str | None) -> None:
    """Resolve an incident by key in PagerDuty, with a message.

    Example: pagerules resolve --key codespar-acme-backend-api-build-349 --message "fixed by hand"
    """
    from engine import manual

    config = load_config(config_path)
    line = manual.resolve(config, _backend(config, False, state_path, _actor()), key, message)
    _emit(line, as_json, f"{line['status']}: {line['incident_key']}" + _error_suffix(line))
    sys.exit(1 if line["status"] == "failed" else 0)


@main.command()
@click.option("--key", required=True, help="incident_key, with or without the prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@_fail_cleanly
def ack(key: str, as_json: bool, config_path: str | None, state_path: str | None) -> None:
    """Acknowledge an incident by key in PagerDuty.

    Example: pagerules ack --key codespar-acme-backend-api-build-349
    """
    from engine import manual
    from engine.live import Live

    config = load_config(config_path)
    backend = _backend(config, False, state_path, _actor())
    line = manual.acknowledge(config, backend, key) if isinstance(backend, Live) else \
        {"action": "ack", "status": "disabled", "incident_key": key}
    _emit(line, as_json, f"{line['status']}: {line['incident_key']}" + _error_suffix(line))
    sys.exit(1 if line["status"] == "failed" else 0)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@_fail_cleanly
def oncall(as_json: bool, config_path: str | None) -> None:
    """Who is on call now for the escalation policy, lowest level first.

    Example: pagerules oncall --json
    """
    from engine import manual
    from engine.live import make_client

    config = load_config(config_path)
    config.require_live()
    people = manual.oncall(make_client(config), str(config.escalation_policy_id))
    human = "\n".join(f"level {p.escalation_level}: {p.name} <{p.email}>"
                       + (f", {p.schedule}" if p.schedule else "") + (f", until {p.until}" if p.until else "")
                       for p in people) or "nobody is on call for this escalation policy"
    _emit([p.__dict__ for p in people], as_json, human)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@_fail_cleanly
def check(as_json: bool, config_path: str | None) -> None:
    """Verify the token, the From user, the service and the escalation policy.

    Exits 1 and says what to fix when any of them is wrong.

    Example: PAGERDUTY_API_TOKEN=... pagerules check
    """
    from engine import manual
    from engine.live import make_client

    config = load_config(config_path)
    results = manual.check(config, None if config.missing_for_live() else make_client(config))
    _emit([r.__dict__ for r in results], as_json,
          "\n".join(f"{'ok  ' if r.ok else 'FAIL'} {r.name}: {r.message}" for r in results))
    sys.exit(0 if all(r.ok for r in results) else 1)


@main.command()
@config_options
@click.option("--events-dir", type=click.Path(file_okay=False), help="Folder to watch (default: events_dir).")
@click.option("--once", is_flag=True, help="Handle the files already there, then exit (cron, tests).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per log line, for log shippers.")
@click.option("--http", "http_bind", metavar="HOST:PORT", help="Also serve the API and dashboard (as `serve`).")
@state_option
@_fail_cleanly
def watch(config_path: str | None, rules_dir: str | None, packs: str | None, events_dir: str | None, once: bool,
          log_format: str, http_bind: str | None, state_path: str | None) -> None:
    """Run as a daemon over an events directory: each *.json or *.ndjson file dropped there is acted on,
    then moved to processed/ (or failed/ beside NAME.error).

    Rule and config edits apply to the next event; an edit that does not validate keeps the last
    good rules. SIGHUP reloads; SIGTERM or SIGINT finishes the file in hand and exits 0.

    Example: pagerules watch --events-dir /var/spool/pagerules
    """
    from engine import server
    from engine.watch import Daemon

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
@_fail_cleanly
def serve(bind: str | None, events_dir: str | None, config_path: str | None, state_path: str | None) -> None:
    """Serve the JSON API, the dashboard and webhook intake.

    Needs PAGERULES_API_TOKEN (callers send it as a bearer token; the dashboard asks for it) and the
    PagerDuty settings. Binds to loopback unless told otherwise.

    Example: PAGERULES_API_TOKEN=... pagerules serve --bind 127.0.0.1:8080
    """
    from engine import server

    config = load_config(config_path, overrides={"bind": bind})
    server.serve(_app(config, state_path, events_dir), config.bind)


def _app(config: Config, state_path: str | None, events_dir: str | None) -> Any:
    config.require_live()
    from engine import server
    from engine.live import live_backend

    return server.create_app(config, live_backend(config, state_path, "api"), events_dir)


@main.command()
@click.option("--events-dir", type=click.Path(file_okay=False), help="The daemon's folder (default: events_dir).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@_fail_cleanly
def status(events_dir: str | None, as_json: bool, config_path: str | None) -> None:
    """The watch daemon's health: ruleset in force, last reload error, files handled, failed and
    pending, last PagerDuty error. Exits 1 when no daemon is running.

    Example: pagerules status --events-dir /var/spool/pagerules
    """
    from engine.status import read_status

    folder = Path(events_dir or load_config(config_path).events_dir)
    data = read_status(folder / ".pagerules-status.json")
    if data is None:
        _emit({"running": False}, as_json, f"no daemon has run on {folder}")
        sys.exit(1)
    human = "\n".join([
        f"{'running' if data['running'] else 'NOT running'} (pid {data['pid']}), ruleset {data['ruleset_version']}",
        f"files: {data['files_processed']} processed, {data['files_failed']} failed, {data['files_pending']} pending",
        f"last reload error: {data['last_reload_error'] or 'none'}",
        f"last PagerDuty error: {data['last_pagerduty_error'] or 'none'}"])
    _emit(data, as_json, human)
    sys.exit(0 if data["running"] else 1)


def _json_logs() -> None:
    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return json.dumps({"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                               "message": record.getMessage()}, ensure_ascii=False)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())


@main.command()
@click.option("--limit", default=50, show_default=True, help="How many entries, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@state_option
@_fail_cleanly
def audit(limit: int, as_json: bool, config_path: str | None, state_path: str | None) -> None:
    """Recent audit entries: every create, dedup, resolve, acknowledge and manual action.

    Example: pagerules audit --limit 20
    """
    from engine.state import State

    config = load_config(config_path)
    entries = State(state_path or config.state_path).recent_audit(limit)
    human = "\n".join(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e['at']))}Z {e['actor']:<14} "
                       f"{e['action']:<12} {e['incident_key'] or ''} {e['incident_id'] or ''}".rstrip()
                       for e in entries) or "no audit entries"
    _emit(entries, as_json, human)


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


if __name__ == "__main__":
    main()
