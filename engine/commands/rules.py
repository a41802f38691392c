"""The commands about rules: `validate`, `init` and `test`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.commands.common import config_options, fail_cleanly
from engine.config import Config, load_config
from engine.errors import InvalidFiles, PageRulesError, Problem
from engine.language.loading import load_ruleset, rule_folders
from engine.language.model import RuleSet
from engine.language.routes import config_routes, unreachable_routes


@click.command()
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
            problems.extend(route_warnings(config, ruleset))
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


def route_warnings(config: Config, ruleset: RuleSet) -> list[Problem]:
    """Routes no incident or change can take: every trigger's and change rule's labels (and a page by
    hand's) lack a label the route's match needs, as a typo in a label name would make it."""
    from engine.pagerduty.manual import MANUAL_LABELS  # here: it brings requests, which a dry run never needs

    routes, _ = config_routes(config)  # their errors were reported when the config loaded
    label_sets = [[name for name, _ in rule.labels]
                  for group in (ruleset.triggers, ruleset.changes) for rules in group.values() for rule in rules]
    return unreachable_routes(routes, [*label_sets, MANUAL_LABELS])


@click.command()
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


@click.command(name="test")
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


COMMANDS = [validate, init, test_command]
