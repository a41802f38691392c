"""The package as a user gets it: built into a wheel and an sdist, installed into a fresh virtual
environment outside the checkout, and run from a folder that has nothing of the project in it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import ROOT

pytestmark = pytest.mark.packaging


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and the sdist, built from the checkout with the test environment's setuptools."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (not editable); returns its bin folder."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = next(dist.glob("*.whl"))
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    return venv / "bin"


def _clean_env(tmp: Path) -> dict[str, str]:
    """No PAGERDUTY_/PAGERULES_ settings and a home of its own, so only the packaged defaults apply."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_", "XDG_"))}
    env["HOME"] = str(tmp)
    return env


def _run(bin_dir: Path, cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "pagerules"), *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, env=_clean_env(cwd), timeout=120)


def _names(dist: Path) -> Iterator[tuple[str, list[str]]]:
    wheel = next(dist.glob("*.whl"))
    yield "wheel", zipfile.ZipFile(wheel).namelist()
    sdist = next(dist.glob("*.tar.gz"))
    with tarfile.open(sdist) as tar:
        yield "sdist", [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]


def test_the_wheel_carries_rules_packs_schemas_config_and_templates_but_no_tests(dist: Path) -> None:
    names = dict(_names(dist))["wheel"]
    for needed in ("engine/shipped/pagerduty.yaml", "engine/shipped/rules/build.yaml",
                   "engine/shipped/rules/tests/build.yaml", "engine/shipped/rules/packs/github/github.yaml",
                   "engine/shipped/schemas/config.schema.json", "engine/shipped/schemas/events/build.json",
                   "engine/shipped/events.jsonl", "engine/web/templates/dashboard.html", "engine/commands/cli.py"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("tests/", "cli.py")) or "fixtures" in n]
    top_level = {n.split("/")[0] for n in names if not n.startswith("pagerules-")}
    assert top_level == {"engine"}


def test_the_sdist_carries_the_tests_and_their_fixtures(dist: Path) -> None:
    names = dict(_names(dist))["sdist"]
    for needed in ("pyproject.toml", "cli.py", "pagerduty.yaml", "rules/build.yaml", "schemas/rules.schema.json",
                   "tests/conftest.py", "tests/fixtures/corpus/INDEX.md",
                   "tests/fixtures/pagerduty-api/REST/openapiv3.json", "engine/shipped/rules/build.yaml"):
        assert needed in names, needed


def test_the_installed_command_works_from_any_folder(installed: Path, tmp_path: Path) -> None:
    version = _run(installed, tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("pagerules "), version.stderr
    validate = _run(installed, tmp_path, "validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "(from the packaged defaults)" in validate.stderr
    assert "site-packages/engine/shipped/rules" in validate.stderr
    events = (ROOT / "examples" / "events.jsonl").read_text()
    process = _run(installed, tmp_path, "process", "--dry-run", stdin=events)
    assert process.returncode == 0, process.stderr
    lines = [json.loads(line) for line in process.stdout.splitlines()]
    assert {"trigger", "resolve"} <= {line["action"] for line in lines}
    assert not (tmp_path / "state").exists()  # a dry run writes no state, even from the packaged config
    tests = _run(installed, tmp_path, "test")
    assert tests.returncode == 0 and tests.stdout.splitlines()[-1].endswith(" passed, 0 failed"), tests.stdout
    assert not list(installed.parent.glob("lib/python*/site-packages/cli.py"))


def test_init_makes_a_setup_that_validates_and_tests(installed: Path, tmp_path: Path) -> None:
    made = _run(installed, tmp_path, "init", "ops")
    assert made.returncode == 0, made.stderr
    ops = tmp_path / "ops"
    validate = _run(installed, ops, "validate")
    assert validate.returncode == 0 and f"config: {ops / 'pagerduty.yaml'} (from the working directory)" \
        in validate.stderr, validate.stderr
    assert f"rules: {ops / 'rules'}" in validate.stderr
    tests = _run(installed, ops, "test")
    assert tests.returncode == 0 and tests.stdout.splitlines()[-1].endswith(" passed, 0 failed"), tests.stdout
    again = _run(installed, tmp_path, "init", "ops")
    assert again.returncode == 2 and "not overwriting" in again.stderr and "--force" in again.stderr
