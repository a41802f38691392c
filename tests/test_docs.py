"""The README documents every command, matcher, filter and setting."""
from __future__ import annotations

from builders import ROOT

from cli import main
from engine.config import setting_names
from engine.language.matchers import OPERATORS
from engine.language.templates import FILTERS

README = (ROOT / "README.md").read_text()


def test_every_command_is_in_the_readme() -> None:
    for name in main.commands:
        assert f"`pagerules {name}" in README, name


def test_every_matcher_has_a_row_with_an_example() -> None:
    for name in OPERATORS:
        assert f"| `{name}` | `" in README, name


def test_every_filter_of_ours_is_documented() -> None:
    for name in FILTERS:
        assert f"| `{name}` |" in README, name


def test_every_setting_is_in_the_readme() -> None:
    for key, env in setting_names():
        assert f"| {key} |" in README, key
        assert env is None or f"| {env} |" in README, env


def test_every_command_help_ends_with_an_example() -> None:
    for name, command in main.commands.items():
        assert "Example: " in (command.help or ""), name


def test_the_readme_test_command_is_what_ci_runs() -> None:
    assert "    bash .ci/run\n" in README and (ROOT / ".ci/run").exists()


def test_the_readme_rule_example_compiles_and_behaves() -> None:
    from builders import dry_run, rules_from
    example = next(block.split("```", 1)[0] for block in README.split("```yaml\n")[1:]
                   if block.startswith("triggers:"))
    rules = rules_from(example)
    event = {"type": "build", "id": "b", "repo": "a/b", "branch": "main", "build_number": 3, "status": "failed"}
    lines = dry_run([event, {**event, "id": "c", "status": "passed"}], rules)
    assert [(o["action"], o["status"], o["incident_key"]) for o in lines] == [
        ("trigger", "planned", "codespar-a-b-build-3"), ("resolve", "planned", "codespar-a-b-build-3")]


def test_every_event_type_a_pack_handles_is_in_the_readmes_pack_section() -> None:
    import yaml
    section = README.split("## Rule packs", 1)[1].split("\n## ", 1)[0]
    # PyYAML reads the key `on` as the boolean True (YAML 1.1)
    handled = {rule[True] for path in (ROOT / "rules" / "packs").glob("*/*.yaml")
               for part in ("triggers", "recoveries") for rule in yaml.safe_load(path.read_text()).get(part) or []}
    assert {"github.workflow_job", "sentry.event_alert", "alertmanager.alert"} <= handled
    assert sorted(t for t in handled if f"`{t}`" not in section) == []


def test_the_layout_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "engine").rglob("*.py")
                     if p.name != "__init__.py" and "shipped" not in p.parts and "migrations" not in p.parts)
    assert [m for m in modules if m not in layout] == []
