"""Webhook intake (engine.web.hooks, intake and strict_json): known senders only, types from the header
alone, every sender's credentials checked, unhandled event types answered and not spooled, poison bodies
refused."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from builders import AUTH, ROOT, Daemon, app_for, build
from fake_pagerduty import FakePagerDuty
from pg_server import pg_server, pg_url  # noqa: F401

from engine.events.types import load_event_types

CORPUS = ROOT / "tests" / "fixtures" / "corpus"
SENTRY_SECRET = "sentry-client-secret-9d1e"
AM_TOKEN = "alertmanager-token-c4b2"
GITHUB_SECRET = "github-hook-secret-55"


def stored(tmp_path: Path) -> list[Path]:
    events = tmp_path / "events"
    return sorted(p for p in events.iterdir() if p.is_file()) if events.exists() else []


def sign(secret: str, raw: bytes) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def test_github_hook_checks_the_signature_and_writes_the_typed_file(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path, PAGERULES_GITHUB_WEBHOOK_SECRET=GITHUB_SECRET).test_client()
    raw = json.dumps({"action": "completed", "workflow_run": {"conclusion": "failure"}}).encode()
    good = "sha256=" + hmac.new(GITHUB_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    for signature in (None, "sha256=" + "0" * 64):
        headers = {"X-GitHub-Event": "workflow_run", **({"X-Hub-Signature-256": signature} if signature else {})}
        response = client.post("/hooks/github", data=raw, headers=headers, content_type="application/json")
        assert response.status_code == 401
    assert not (tmp_path / "events").exists() or not list((tmp_path / "events").iterdir())
    response = client.post("/hooks/github", data=raw, content_type="application/json",
                           headers={"X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": good})
    assert response.status_code == 202 and response.get_json()["type"] == "github.workflow_run"
    [written] = (tmp_path / "events").iterdir()
    assert re.match(r"^\d{8}T\d{6}-github-[0-9a-f]{12}\.github\.workflow_run\.json$", written.name)
    assert written.read_bytes() == raw


def test_hooks_reject_bad_json_and_type_sentry_and_alertmanager(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    assert client.post("/hooks/sentry", data="{oops", content_type="application/json").status_code == 400
    sentry = client.post("/hooks/sentry", json={"action": "created"}, headers={"Sentry-Hook-Resource": "issue"})
    assert sentry.get_json()["type"] == "sentry.issue"
    assert client.post("/hooks/alertmanager", json={"alerts": []}).get_json()["type"] == "alertmanager"
    assert client.post("/hooks/Bad$ource", json={}).status_code == 404


# ---- issue 11 item 1: forgery ---------------------------------------------------------------------

@pytest.mark.parametrize("source", ["githubx", "sentry2", "build", "Bad$ource"])
def test_an_unknown_source_is_404_naming_the_known_ones(fake: FakePagerDuty, tmp_path: Path, source: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post(f"/hooks/{source}", json={"type": "github.workflow_run", "action": "completed"},
                           headers={"X-GitHub-Event": "workflow_run"})
    assert (response.status_code, response.get_json()) == (404, {
        "error": "unknown hook source; the known ones are alertmanager, github, sentry",
        "known": ["alertmanager", "github", "sentry"]})
    assert stored(tmp_path) == []


def test_a_type_in_the_body_never_picks_the_stored_type(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    forged = {"type": "build", "repo": "acme/victim", "branch": "main", "build_number": 2, "status": "passed"}
    response = client.post("/hooks/sentry", json=forged, headers={"Sentry-Hook-Resource": "issue"})
    assert response.status_code == 202 and response.get_json()["type"] == "sentry.issue"
    [written] = stored(tmp_path)
    assert json.loads(written.read_bytes())["type"] == "sentry.issue"
    assert written.name.endswith(".sentry.issue.json")


def test_a_hook_without_its_event_header_is_refused(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    forged = {"type": "build", "repo": "acme/victim", "branch": "main", "build_number": 2, "status": "passed"}
    response = client.post("/hooks/sentry", json=forged)
    assert (response.status_code, response.get_json()) == (400, {
        "error": "header Sentry-Hook-Resource: missing; sentry names the event there, and the type comes from it"})
    bad = client.post("/hooks/github", json={}, headers={"X-GitHub-Event": "workflow_run\u00e9"})
    assert bad.status_code == 400 and "X-GitHub-Event: not an event name" in bad.get_json()["error"]
    assert stored(tmp_path) == []


def test_a_json_array_body_is_refused(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/hooks/alertmanager", json=[{"type": "build", "status": "passed"}])
    assert (response.status_code, response.get_json()) == (400, {
        "error": "body must be a JSON object (alertmanager sends one per delivery)"})


def test_forged_sentry_hook_cannot_resolve_another_repos_incident_end_to_end(fake: FakePagerDuty,
                                                                             tmp_path: Path) -> None:
    """Issue 11's reproduction, through the real daemon: before, the body's type won and this resolved."""
    daemon = Daemon(tmp_path, fake)
    daemon.drop("open.json", [build(1, repo="acme/victim")])
    assert daemon.once().returncode == 0
    assert fake.open_keys() == ["codespar-acme-victim-build-1"]
    client = app_for(fake, tmp_path).test_client()
    forged = {"type": "build", "repo": "acme/victim", "branch": "main", "build_number": 2, "status": "passed"}
    assert client.post("/hooks/sentry", json=forged, headers={"Sentry-Hook-Resource": "issue"}).status_code == 202
    daemon.once()
    assert fake.open_keys() == ["codespar-acme-victim-build-1"]  # still open: nothing resolved it
    [failed] = (tmp_path / "events" / "failed").glob("*.sentry.issue.json")  # a sentry.issue that fails its schema
    assert "sentry.issue" in (failed.parent / (failed.name + ".error")).read_text()


def test_a_real_payload_is_stored_unchanged_and_the_daemon_types_it_from_the_name(fake: FakePagerDuty,
                                                                                  tmp_path: Path) -> None:
    raw = (CORPUS / "github" / "workflow_run" / "captured_delivery_completed_failure_main.json").read_bytes()
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/hooks/github", data=raw, content_type="application/json",
                           headers={"X-GitHub-Event": "workflow_run"})
    assert response.status_code == 202
    [written] = stored(tmp_path)
    assert written.read_bytes() == raw


# ---- issue 12 item 8: Sentry and Alertmanager credentials -------------------------------------------

def test_sentry_needs_a_valid_signature_when_its_secret_is_set(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path, PAGERULES_SENTRY_CLIENT_SECRET=SENTRY_SECRET).test_client()
    raw = (CORPUS / "sentry" / "issue" / "ipe_created.json").read_bytes()
    for signature in (None, "0" * 64, sign("another-secret", raw), sign(SENTRY_SECRET, raw + b" ")):
        headers = {"Sentry-Hook-Resource": "issue", **({"Sentry-Hook-Signature": signature} if signature else {})}
        response = client.post("/hooks/sentry", data=raw, headers=headers, content_type="application/json")
        assert (response.status_code, response.get_json()) == (401, {
            "error": "missing or wrong Sentry-Hook-Signature (HMAC-SHA256 of the body with the client secret)"})
    assert stored(tmp_path) == []
    good = client.post("/hooks/sentry", data=raw, content_type="application/json",
                       headers={"Sentry-Hook-Resource": "issue", "Sentry-Hook-Signature": sign(SENTRY_SECRET, raw)})
    assert good.status_code == 202 and [p.read_bytes() for p in stored(tmp_path)] == [raw]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("authorization", [f"Bearer {AM_TOKEN}", f"bearer {AM_TOKEN}", _basic("alertmanager", AM_TOKEN),
                                           _basic("", AM_TOKEN)])
def test_alertmanager_accepts_its_token_as_bearer_or_basic_auth(fake: FakePagerDuty, tmp_path: Path,
                                                                authorization: str) -> None:
    client = app_for(fake, tmp_path, PAGERULES_ALERTMANAGER_TOKEN=AM_TOKEN).test_client()
    raw = (CORPUS / "alertmanager" / "firing" / "prometheus_msteams_firing_warning_single.json").read_bytes()
    response = client.post("/hooks/alertmanager", data=raw, content_type="application/json",
                           headers={"Authorization": authorization})
    assert response.status_code == 202 and [p.read_bytes() for p in stored(tmp_path)] == [raw]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Token {AM_TOKEN}", _basic(AM_TOKEN, "x"),
                                           "Basic !!notbase64", f"Bearer {AM_TOKEN}x", "Bearer t\u00f6ken"])
def test_alertmanager_without_its_token_is_401_and_nothing_is_written(fake: FakePagerDuty, tmp_path: Path,
                                                                       authorization: str | None) -> None:
    client = app_for(fake, tmp_path, PAGERULES_ALERTMANAGER_TOKEN=AM_TOKEN).test_client()
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post("/hooks/alertmanager", json={"alerts": []}, headers=headers)
    assert (response.status_code, response.get_json()) == (401, {
        "error": "missing or wrong credentials: send Authorization: Bearer <PAGERULES_ALERTMANAGER_TOKEN> or basic "
                 "auth with it as the password"})
    assert stored(tmp_path) == []


def test_start_up_warns_about_each_source_anyone_may_post_to(fake: FakePagerDuty, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "pagerules.server")
    app_for(fake, tmp_path, PAGERULES_SENTRY_CLIENT_SECRET=SENTRY_SECRET)
    assert [r.getMessage() for r in caplog.records if "/hooks/" in r.getMessage()] == [
        "/hooks/alertmanager accepts deliveries from anyone: set PAGERULES_ALERTMANAGER_TOKEN to require the "
        "sender's credentials",
        "/hooks/github accepts deliveries from anyone: set PAGERULES_GITHUB_WEBHOOK_SECRET to require the "
        "sender's credentials"]


def test_sources_without_a_credential_set_stay_open(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path, PAGERULES_SENTRY_CLIENT_SECRET=SENTRY_SECRET).test_client()
    assert client.post("/hooks/alertmanager", json={"alerts": []}).status_code == 202
    assert client.post("/hooks/github", json={}, headers={"X-GitHub-Event": "workflow_run"}).status_code == 202


# ---- issue 12 item 4: ping and unhandled event types ---------------------------------------------------

def test_a_github_ping_is_200_and_stores_nothing(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path, PAGERULES_GITHUB_WEBHOOK_SECRET=GITHUB_SECRET).test_client()
    raw = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1, "hook": {"type": "Repository"}}).encode()
    unsigned = client.post("/hooks/github", data=raw, content_type="application/json",
                           headers={"X-GitHub-Event": "ping"})
    assert unsigned.status_code == 401  # a ping is signed like every delivery
    signed = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + sign(GITHUB_SECRET, raw)}
    response = client.post("/hooks/github", data=raw, content_type="application/json", headers=signed)
    assert (response.status_code, response.get_json()) == (200, {"status": "pong", "stored": False})
    assert stored(tmp_path) == []


@pytest.mark.parametrize("source, header, value, fixture", [
    ("github", "X-GitHub-Event", "push", "github/push/octokit_push_new_branch_master.json"),
    ("sentry", "Sentry-Hook-Resource", "installation", "sentry/installation/ipe_created.json"),
    ("sentry", "Sentry-Hook-Resource", "comment", "sentry/comment/ipe_created.json"),
    ("sentry", "Sentry-Hook-Resource", "errors", "sentry/error/sentry_docs_error_created.json"),
])
def test_event_types_without_a_schema_are_answered_202_ignored_and_not_stored(
        fake: FakePagerDuty, tmp_path: Path, caplog: pytest.LogCaptureFixture, source: str, header: str, value: str,
        fixture: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    raw = (CORPUS / fixture).read_bytes()
    caplog.set_level(logging.INFO, "pagerules.server")
    for _ in range(3):
        response = client.post(f"/hooks/{source}", data=raw, content_type="application/json", headers={header: value})
        body = response.get_json()
        assert response.status_code == 202 and (body["status"], body["stored"]) == ("ignored", False)
        assert body["type"] == f"{source}.{value}" and "has no event schema" in body["reason"]
    assert stored(tmp_path) == []
    assert sum(f"ignoring {source}.{value} deliveries" in r.getMessage() for r in caplog.records) == 1  # once
    assert client.get("/healthz").get_json()["hooks_ignored"] == 3
    assert client.get("/healthz", headers=AUTH).get_json()["hooks_ignored"] == {f"{source}.{value}": 3}


def test_the_ignored_reason_names_the_types_that_are_stored(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    reason = client.post("/hooks/github", json={}, headers={"X-GitHub-Event": "push"}).get_json()["reason"]
    assert reason.startswith("github.push has no event schema, so no rule can act on it; github types that are "
                             "stored: ")
    assert "github.workflow_run" in reason and "sentry" not in reason


# ---- issue 11 items 2, 9, 10: poison bodies are refused at intake ------------------------------------------

POISON = [
    (b'{"repo": "acme/\\ud800"}',
     "body.repo: holds a lone surrogate escape (like \\ud800), which is not valid Unicode"),
    (b'{"\\udfff": 1}', "body (a key): holds a lone surrogate escape (like \\ud800), which is not valid Unicode"),
    (b'{"error_rate": NaN}', "NaN is not valid JSON (RFC 8259 has no NaN or Infinity)"),
    (b'{"error_rate": -Infinity}', "-Infinity is not valid JSON (RFC 8259 has no NaN or Infinity)"),
    (b'{"error_rate": 1e999}', "the number 1e999... is too large for a float"),
    (b'{"n": ' + b"9" * 5000 + b"}", "a number of 5000 characters (at most 100)"),
    (b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}", "body is nested deeper than 64 levels"),
    (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", "body is nested deeper than 64 levels"),
    (b'{"repo": "\xff"}', "body is not UTF-8 (byte 0xff at offset 10)"),
    (b'{"repo": ', "body is not valid JSON: Expecting value: line 1 column 10 (char 9)"),
]


@pytest.mark.parametrize("raw, message", POISON, ids=[m[:30] for _, m in POISON])
def test_poison_bodies_are_400_and_never_spooled(fake: FakePagerDuty, tmp_path: Path, raw: bytes,
                                                  message: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/hooks/alertmanager", data=raw, content_type="application/json")
    assert (response.status_code, response.get_json()) == (400, {"error": message})
    assert stored(tmp_path) == []


def test_a_body_at_the_depth_limit_is_accepted(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    nested: Any = {}
    for _ in range(63):
        nested = {"a": nested}
    assert client.post("/hooks/alertmanager", json=nested).status_code == 202


# ---- every GitHub type with an event schema is stored, typed from X-GitHub-Event alone -------------------

GITHUB_REAL = sorted(p for p in (CORPUS / "github").glob("*/*.json") if p.parent.name != "push")


@pytest.mark.parametrize("path", GITHUB_REAL, ids=[f"{p.parent.name}/{p.stem}" for p in GITHUB_REAL])
def test_every_real_github_delivery_is_stored_unchanged_under_its_header_type(fake: FakePagerDuty, tmp_path: Path,
                                                                              path: Path) -> None:
    """The folder name is the X-GitHub-Event value the delivery came with (tests/fixtures/corpus/INDEX.md)."""
    raw, event = path.read_bytes(), path.parent.name
    client = app_for(fake, tmp_path, PAGERULES_GITHUB_WEBHOOK_SECRET=GITHUB_SECRET).test_client()
    response = client.post("/hooks/github", data=raw, content_type="application/json", headers={
        "X-Github-Event": event, "X-Hub-Signature-256": "sha256=" + sign(GITHUB_SECRET, raw)})
    if f"github.{event}" not in load_event_types():  # deployment: no schema, answered and dropped
        assert response.status_code == 202 and response.get_json()["status"] == "ignored"
        assert stored(tmp_path) == []
        return
    assert (response.status_code, response.get_json()["type"]) == (202, f"github.{event}")
    [written] = stored(tmp_path)
    assert written.read_bytes() == raw and written.name.endswith(f".github.{event}.json")


def test_github_signatures_match_githubs_own_test_vector(fake: FakePagerDuty, tmp_path: Path) -> None:
    """GitHub's docs ("Validating webhook deliveries"): secret "It's a Secret to Everybody", payload
    "Hello, World!", signature sha256=757107ea…e17. The signature passes; the body then fails as JSON."""
    client = app_for(fake, tmp_path, PAGERULES_GITHUB_WEBHOOK_SECRET="It's a Secret to Everybody").test_client()
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    response = client.post("/hooks/github", data=b"Hello, World!", headers={
        "X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": signature})
    assert (response.status_code, response.get_json()) == (400, {
        "error": "body is not valid JSON: Expecting value: line 1 column 1 (char 0)"})
    tampered = client.post("/hooks/github", data=b"Hello, World?", headers={
        "X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": signature})
    assert tampered.status_code == 401 and stored(tmp_path) == []


# ---- issue 18: intake into the shared queue ------------------------------------------------------

def queued_app(fake: FakePagerDuty, tmp_path: Path, url: str) -> Any:
    from engine.pagerduty.pgqueue import EventQueue
    from engine.pagerduty.pgstate import PgState

    if "127.0.0.1:1/" not in url:
        PgState(url).close()  # the queue's table (migration 5)
    app = app_for(fake, tmp_path)
    app.extensions["pagerules"].intake.use_queue(EventQueue(url))
    return app


def queue_rows(url: str) -> list[tuple[Any, ...]]:
    import psycopg
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT ordering_key, default_type, source, status, body FROM event_queue"
                            " ORDER BY id").fetchall()


def test_a_hook_goes_into_the_queue_committed_before_the_202(fake: FakePagerDuty, tmp_path: Path,
                                                             pg_url: str) -> None:  # noqa: F811
    client = queued_app(fake, tmp_path, pg_url).test_client()
    raw = json.dumps({"action": "completed", "repository": {"full_name": "acme/web"}}).encode()
    response = client.post("/hooks/github", data=raw, content_type="application/json",
                           headers={"X-GitHub-Event": "workflow_run"})
    assert response.status_code == 202
    body = response.get_json()
    assert body["type"] == "github.workflow_run" and isinstance(body["id"], int)
    assert queue_rows(pg_url) == [("repo:acme/web", "github.workflow_run", "hooks/github", "todo", raw.decode())]
    assert stored(tmp_path) == []  # not the events directory


def test_a_hook_is_503_with_retry_after_when_the_queue_is_unreachable(fake: FakePagerDuty, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    password = "db-pass-never-shown-71"
    client = queued_app(fake, tmp_path, f"postgresql://pagerules:{password}@127.0.0.1:1/pagerules").test_client()
    with caplog.at_level(logging.INFO):
        response = client.post("/hooks/alertmanager", json={"alerts": []})
    assert response.status_code == 503 and response.headers["Retry-After"] == "10"
    # The sender (anyone on the network, the hook may be open) learns what to do, not where the database is;
    # the log says where, for the on-call engineer.
    assert response.get_json()["error"] == "the event queue is unavailable, nothing was stored; try again"
    assert "127.0.0.1:1" not in response.get_data(as_text=True)
    assert "cannot connect to the queue database postgresql://pagerules@127.0.0.1:1/pagerules" in caplog.text
    assert password not in response.get_data(as_text=True) and password not in caplog.text
    assert stored(tmp_path) == []


def test_serve_queue_puts_intake_into_the_states_database(fake: FakePagerDuty, tmp_path: Path,
                                                          pg_url: str) -> None:  # noqa: F811
    from builders import live_config

    from engine.commands.serving import _app
    from engine.errors import PageRulesError

    config = live_config(fake)
    app = _app(config, pg_url, str(tmp_path / "events"), queue=True)  # `serve --queue --state URL`
    response = app.test_client().post("/hooks/alertmanager", json={"alerts": []})
    assert response.status_code == 202 and isinstance(response.get_json()["id"], int)
    assert [row[:4] for row in queue_rows(pg_url)] == [("source:alertmanager", "alertmanager", "hooks/alertmanager",
                                                        "todo")]
    with pytest.raises(PageRulesError, match="^--queue needs the state in PostgreSQL"):
        _app(config, str(tmp_path / "state.db"), None, queue=True)
