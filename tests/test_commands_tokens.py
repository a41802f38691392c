"""`pagerules token add|revoke|list` (engine/commands/tokens.py): the token printed once on stdout alone,
nothing secret otherwise, the file relative to the config's folder, and clean errors with exit 2."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from builders import AUTH, ROOT, app_for
from click.testing import CliRunner
from fake_pagerduty import FakePagerDuty

from cli import main

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}


def config_in(folder: Path) -> Path:
    (folder / "secure").mkdir()
    config = folder / "pagerduty.yaml"
    config.write_text("tokens_file: secure/people.tokens\n")
    return config


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True,
                          env=CLEAN_ENV, timeout=60, check=False)


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env={k: None for k in os.environ
                                                     if k.startswith(("PAGERDUTY_", "PAGERULES_"))})


def test_add_prints_the_token_once_on_stdout_and_keeps_only_its_hash(tmp_path: Path, fake: FakePagerDuty) -> None:
    config = config_in(tmp_path)
    added = run("token", "add", "alice", "--config", str(config))
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert added.stdout == token + "\n" and token.startswith("pgr_")
    assert "a new token for alice (shown only now" in added.stderr and token not in added.stderr
    stored = (tmp_path / "secure" / "people.tokens").read_text()  # from the config file's folder
    assert token not in stored and hashlib.sha256(token.encode()).hexdigest() in stored

    listed = run("token", "list", "--config", str(config))
    as_json = run("token", "list", "--json", "--config", str(config))
    assert listed.returncode == 0 and listed.stdout.startswith("alice ") and listed.stdout.rstrip().endswith("active")
    assert [row["name"] for row in json.loads(as_json.stdout)] == ["alice"]
    for output in (listed.stdout + listed.stderr, as_json.stdout):
        assert token not in output and hashlib.sha256(token.encode()).hexdigest() not in output

    client = app_for(fake, tmp_path, PAGERULES_TOKENS_FILE=str(tmp_path / "secure" / "people.tokens")).test_client()
    made = client.post("/api/incidents", headers={"Authorization": f"Bearer {token}"},
                       json={"title": "db down", "severity": "high", "repo": "acme/db"})
    assert made.status_code == 201
    revoked = run("token", "revoke", "alice", "--config", str(config))
    assert revoked.returncode == 0 and revoked.stdout.startswith("revoked: alice (since ")
    assert client.get("/api/incidents", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.get("/api/incidents", headers=AUTH).status_code == 200  # PAGERULES_API_TOKEN still works
    after = run("token", "list", "--config", str(config)).stdout
    assert "revoked 20" in after and token not in after


def test_wrong_names_and_a_missing_setting_are_clean_errors_with_exit_2(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    assert invoke("token", "add", "alice", "--config", str(config)).exit_code == 0
    cases = {("add", "alice"): "alice already has an active token; revoke it first",
             ("add", "api"): "'api' is reserved",
             ("add", "two words"): "'two words' is not a valid name",
             ("revoke", "bob"): "no token named 'bob' (names: alice)"}
    for (command, name), message in cases.items():
        result = invoke("token", command, name, "--config", str(config))
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
    bare = tmp_path / "bare.yaml"
    bare.write_text("{}\n")
    result = invoke("token", "list", "--config", str(bare))
    assert result.exit_code == 2 and "no tokens file is configured: set tokens_file in pagerduty.yaml" in result.output


def test_a_broken_tokens_file_is_named_by_line(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    (tmp_path / "secure" / "people.tokens").write_text("# people\nalice sha256:nothex 2026-12-03T14:29:33Z\n")
    result = invoke("token", "list", "--config", str(config))
    assert result.exit_code == 2
    assert f"{tmp_path / 'secure' / 'people.tokens'}:2: alice: the second field must be sha256:" in result.output


def test_list_says_when_there_is_nobody_yet(tmp_path: Path) -> None:
    result = invoke("token", "list", "--config", str(config_in(tmp_path)))
    assert result.exit_code == 0 and result.output == "no named tokens yet (pagerules token add NAME)\n"
