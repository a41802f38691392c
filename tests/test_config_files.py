"""Where the config file and the rules come from, and the errors a broken or odd file gives."""
from __future__ import annotations

from pathlib import Path

import pytest
from builders import ROOT
from click.testing import CliRunner

from cli import main
from engine import resources
from engine.config import find_config, load_config
from engine.errors import ConfigError, InvalidFiles

SECRET = "tok-NEWLINE-secret-42"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with nothing of the project in it, and no user config."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("PAGERULES_CONFIG", "PAGERULES_RULES_DIR", "PAGERULES_STATE", "PAGERULES_EVENTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _write(path: Path, text: str = "enabled: true\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_config_is_looked_up_in_the_documented_order(elsewhere: Path) -> None:
    flag, env_file = _write(elsewhere / "flag.yaml"), _write(elsewhere / "env.yaml")
    user = _write(elsewhere / "xdg" / "pagerules" / "pagerduty.yaml")
    env = {"XDG_CONFIG_HOME": str(elsewhere / "xdg")}
    assert find_config(None, env) == (user, "the user's config folder")
    local = _write(elsewhere / "pagerduty.yaml")
    assert find_config(None, env) == (Path("pagerduty.yaml"), "the working directory")
    assert local.exists()
    assert find_config(None, {**env, "PAGERULES_CONFIG": str(env_file)}) == (env_file, "PAGERULES_CONFIG")
    assert find_config(str(flag), {**env, "PAGERULES_CONFIG": str(env_file)}) == (flag, "--config")


def test_with_no_config_file_anywhere_the_packaged_defaults_and_shipped_rules_apply(elsewhere: Path) -> None:
    config = load_config(env={"XDG_CONFIG_HOME": str(elsewhere / "xdg")})
    assert (Path(config.source), config.found_by) == (resources.DEFAULT_CONFIG, "the packaged defaults")
    assert config.rules_dir == str(resources.RULES)
    # Runtime paths of the packaged config are the working directory's, never inside the package.
    assert config.state_path == str(elsewhere / "state" / "pagerules.db")
    assert config.events_dir == str(elsewhere / "events")


def test_a_rules_folder_in_the_working_directory_wins_over_the_shipped_one(elsewhere: Path) -> None:
    (elsewhere / "rules").mkdir()
    assert load_config(env={}).rules_dir == str(elsewhere / "rules")


def test_a_rules_flag_is_taken_from_the_working_directory_not_the_config_folder(elsewhere: Path) -> None:
    config_file = _write(elsewhere / "etc" / "pagerduty.yaml")
    config = load_config(str(config_file), env={}, overrides={"rules_dir": "mine"})
    assert config.rules_dir == str(elsewhere / "mine")
    in_file = load_config(str(_write(elsewhere / "etc" / "b.yaml", "rules_dir: theirs\n")), env={})
    assert in_file.rules_dir == str(elsewhere / "etc" / "theirs")


def test_a_config_file_that_is_not_utf8_names_the_file_and_line(elsewhere: Path) -> None:
    bad = elsewhere / "bad.yaml"
    bad.write_bytes(b"enabled: true\nbind: caf\xe9:80\n")
    with pytest.raises(InvalidFiles) as caught:
        load_config(str(bad), env={})
    assert [str(p) for p in caught.value.problems] == [
        f"{bad}:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"]


def test_a_config_path_that_is_a_folder_is_a_file_line_problem(elsewhere: Path) -> None:
    (elsewhere / "conf.yaml").mkdir()
    with pytest.raises(InvalidFiles) as caught:
        load_config(str(elsewhere / "conf.yaml"), env={})
    assert [str(p) for p in caught.value.problems] == [f"{elsewhere / 'conf.yaml'}:1: is a folder, not a file: "
                                                       "rename or move it"]


@pytest.mark.parametrize("content, expected", [
    (b"enabled: true\nbind: a\x00b\n", "bad.yaml:2: invalid YAML: the character U+0000 is not allowed in YAML text "
                                        "(a control character or a lone surrogate); remove it"),
    (b"bind: caf\xe9\n", "bad.yaml:1: not UTF-8 text (byte 0xe9); save the file as UTF-8"),
    (None, "bad.yaml:1: is a folder, not a file: rename or move it"),
])
def test_validate_reports_an_unreadable_config_as_file_line(elsewhere: Path, content: bytes | None,
                                                            expected: str) -> None:
    bad = elsewhere / "bad.yaml"
    bad.mkdir() if content is None else bad.write_bytes(content)
    result = CliRunner().invoke(main, ["validate"], env={"PAGERULES_CONFIG": "bad.yaml"})
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [expected]
    assert "Traceback" not in result.output and "rules directory does not exist" not in result.output


@pytest.mark.parametrize("variable, value, why", [
    ("PAGERDUTY_API_TOKEN", SECRET + "\n", "contains a newline, tab or space at the ends"),
    ("PAGERDUTY_API_TOKEN", "tok-\u00e9t\u00e9-" + SECRET, "contains a character that is not printable ASCII"),
    ("PAGERDUTY_FROM_EMAIL", "oncall@example.com\r\n", "contains a newline, tab or space at the ends"),
])
def test_a_header_value_that_would_break_every_request_is_a_config_error(elsewhere: Path, variable: str, value: str,
                                                                         why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(str(_write(elsewhere / "c.yaml")), env={variable: value})
    message = str(caught.value)
    assert f"{variable}: {why}" in message
    assert SECRET not in message


def test_validate_says_which_config_and_rule_folders_it_read() -> None:
    result = CliRunner().invoke(main, ["validate", "--packs", "github"])
    assert result.exit_code == 0, result.output
    assert f"config: {ROOT / 'pagerduty.yaml'} (from the working directory)" in result.stderr
    assert f"rules: {ROOT / 'rules'}, {ROOT / 'rules' / 'packs' / 'github'}" in result.stderr


def test_an_invalid_config_gives_no_spurious_rules_error(elsewhere: Path) -> None:
    bad = _write(elsewhere / "bad.yaml", "severity_threshold: loud\n")
    result = CliRunner().invoke(main, ["validate", "--config", str(bad)])
    assert result.exit_code == 1
    assert "rules directory does not exist" not in result.output
    assert "the rules are checked once the config is valid" in result.stderr


def test_a_team_rules_folder_can_turn_on_a_shipped_pack_without_copying_it(elsewhere: Path) -> None:
    _write(elsewhere / "rules" / "own.yaml", (ROOT / "rules" / "build.yaml").read_text())
    result = CliRunner().invoke(main, ["validate", "--packs", "sentry"])
    assert result.exit_code == 0, result.output
    assert f"rules: {elsewhere / 'rules'}, {resources.RULES / 'packs' / 'sentry'}" in result.stderr
