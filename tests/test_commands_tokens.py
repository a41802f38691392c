"""`pagerules token add|revoke|list` (engine/commands/tokens.py): the token printed once on stdout alone,
nothing secret otherwise, the file relative to the config's folder, and clean errors with exit 2."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import requests
from builders import AUTH, ROOT, app_for, wait_for
from click.testing import CliRunner
from fake_pagerduty import FROM_EMAIL, POLICY, SERVICE, TOKEN, FakePagerDuty

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


def test_serve_starts_with_only_a_tokens_file_and_a_revocation_takes_effect_without_a_restart(
        tmp_path: Path, fake: FakePagerDuty) -> None:
    """`pagerules serve` with no PAGERULES_API_TOKEN: the person's token works until `token revoke`."""
    config = config_in(tmp_path)
    token = run("token", "add", "alice", "--config", str(config)).stdout.strip()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    live = {"PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL, "PAGERDUTY_SERVICE_ID": SERVICE,
            "PAGERDUTY_ESCALATION_POLICY_ID": POLICY, "PAGERDUTY_API_URL": fake.url}  # type: ignore[attr-defined]
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "serve", "--config", str(config), "--bind",
                               f"127.0.0.1:{port}", "--state", str(tmp_path / "state.db"), "--events-dir",
                               str(tmp_path / "events")], env={**CLEAN_ENV, **live}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    base, bearer = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    try:
        wait_for(lambda: _answers(f"{base}/healthz"), 30, "serve to answer /healthz")
        made = requests.post(f"{base}/api/incidents", headers=bearer, timeout=10,
                             json={"title": "db down", "severity": "high", "repo": "acme/db"})
        assert made.status_code == 201, made.text
        audit = requests.get(f"{base}/api/audit", headers=bearer, timeout=10).json()["entries"]
        assert audit[0]["actor"] == "alice" and audit[0]["action"] == "create"
        assert run("token", "revoke", "alice", "--config", str(config)).returncode == 0
        assert requests.get(f"{base}/api/audit", headers=bearer, timeout=10).status_code == 401
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert token not in out + err and hashlib.sha256(token.encode()).hexdigest() not in out + err


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
