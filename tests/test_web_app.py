"""The web app as a whole (engine.web.app): its blueprints on one app, JSON errors, the body cap, and
no secret in any answer or log line; channel delivery with `responses`. ``app_for`` builds the app
on the fake PagerDuty for every tests/test_web_*.py."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import responses
from builders import API_TOKEN, AUTH, app_for, live_config, open_one
from fake_pagerduty import TOKEN, FakePagerDuty

from engine.errors import PageRulesError
from engine.pagerduty import channels
from engine.pagerduty.backend import live_backend
from engine.pagerduty.channels import Notifier, payload
from engine.web import tokens
from engine.web.app import create_app, serve

SLACK = "https://hooks.slack.test/services/T000/B000/secretpath"










def test_request_bodies_are_capped(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/hooks/github", data=b"x" * (1024 * 1024 + 1), content_type="application/json")
    assert response.status_code == 413 and "error" in response.get_json()


def test_the_api_token_never_shows_in_responses(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    client.post("/login", data={"token": API_TOKEN})
    bodies = [client.get("/").get_data(as_text=True), client.get("/healthz").get_data(as_text=True),
              client.get("/api/audit", headers=AUTH).get_data(as_text=True)]
    assert all(API_TOKEN not in b and TOKEN not in b for b in bodies)


NOT_FOUND = ("The requested URL was not found on the server. If you entered the URL manually please check your "
             "spelling and try again.")


def test_the_app_needs_the_api_token_or_a_named_token(fake: FakePagerDuty, tmp_path: Path) -> None:
    config = dataclasses.replace(live_config(fake), server_api_token=None)
    backend = live_backend(config, str(tmp_path / "state.db"), "api")
    with pytest.raises(PageRulesError) as caught:
        create_app(config, backend, str(tmp_path / "events"))
    assert str(caught.value) == ("PAGERULES_API_TOKEN is not set and no tokens_file (PAGERULES_TOKENS_FILE) is set: "
                                 "the API and dashboard need one of them to sign callers in (pagerules token add NAME)")
    people = tmp_path / "people.tokens"
    with_file = dataclasses.replace(config, tokens_file=str(people))
    with pytest.raises(PageRulesError) as caught:  # no file yet, or every token revoked: nobody could sign in
        create_app(with_file, backend, str(tmp_path / "events"))
    assert f"the tokens file {people} holds no active token" in str(caught.value)
    alice = tokens.add(people, "alice", 1000.0)
    client = create_app(with_file, backend, str(tmp_path / "events")).test_client()
    assert client.get("/api/incidents", headers={"Authorization": f"Bearer {alice}"}).status_code == 200
    for unset in ("None", "", "Bearer"):  # an unset PAGERULES_API_TOKEN matches nothing
        assert client.get("/api/incidents", headers={"Authorization": f"Bearer {unset}"}).status_code == 401
        assert client.post("/login", data={"token": unset}).status_code == 401


def test_a_broken_tokens_file_stops_the_app_from_starting_and_names_the_line(fake: FakePagerDuty,
                                                                            tmp_path: Path) -> None:
    people = tmp_path / "people.tokens"
    people.write_text("# people\nalice sha256:abc 2026-12-03T14:29:33Z\n")
    with pytest.raises(PageRulesError) as caught:
        app_for(fake, tmp_path, PAGERULES_TOKENS_FILE=str(people))
    assert str(caught.value).startswith(f"{people}:2: alice: the second field must be sha256:")


@pytest.mark.parametrize("bind", ["8080", "localhost", "localhost:http", ":8080"])
def test_serve_needs_host_and_port(fake: FakePagerDuty, tmp_path: Path, bind: str) -> None:
    with pytest.raises(PageRulesError) as caught:
        serve(app_for(fake, tmp_path), bind)
    assert str(caught.value) == f"--bind {bind!r}: expected HOST:PORT, e.g. 127.0.0.1:8080"


def test_an_unrouted_api_path_is_401_without_the_token_so_it_reveals_nothing(fake: FakePagerDuty,
                                                                           tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    for method, path in (("GET", "/api/nope"), ("DELETE", "/api/incidents"), ("GET", "/api/")):
        response = client.open(path, method=method)
        assert (response.status_code, response.get_json()) == (401, {
            "error": "missing or wrong bearer token (Authorization: Bearer <PAGERULES_API_TOKEN>)"})
    missing = client.get("/api/nope", headers=AUTH)
    assert (missing.status_code, missing.get_json()) == (404, {"error": NOT_FOUND})
    wrong_method = client.delete("/api/incidents", headers=AUTH)
    assert (wrong_method.status_code, wrong_method.get_json()) == (405, {
        "error": "The method is not allowed for the requested URL."})


def test_errors_outside_the_api_and_intake_stay_html_pages(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    page = client.get("/nope")
    assert (page.status_code, page.mimetype) == (404, "text/html") and NOT_FOUND in page.get_data(as_text=True)
    hook = client.get("/hooks/github")  # intake answers in JSON, even to a wrong method
    assert (hook.status_code, hook.get_json()) == (405, {"error": "The method is not allowed for the requested URL."})


def test_an_unexpected_error_is_a_json_500_and_a_logged_traceback(fake: FakePagerDuty, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    app = app_for(fake, tmp_path)

    def broken(limit: int) -> list[dict[str, Any]]:
        raise RuntimeError("disk on fire under /var/lib/pagerules")
    app.extensions["pagerules"].backend.state.recent_audit = broken
    response = app.test_client().get("/api/audit", headers=AUTH)
    assert (response.status_code, response.get_json()) == (500, {"error": "internal error; see the server log"})
    [record] = [r for r in caplog.records if r.name == "pagerules.server" and r.levelno == logging.ERROR]
    assert record.getMessage() == "unexpected error on GET /api/audit"
    assert record.exc_info is not None and str(record.exc_info[1]) == "disk on fire under /var/lib/pagerules"


def test_two_apps_in_one_process_share_no_state(fake: FakePagerDuty, tmp_path: Path) -> None:
    """The login limit, the refresh pacing and the intake counters belong to one app, not to the module."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first, second = app_for(fake, tmp_path / "a").test_client(), app_for(fake, tmp_path / "b").test_client()
    for _ in range(5):
        first.post("/login", data={"token": "guess"})
    first.post("/hooks/github", json={}, headers={"X-GitHub-Event": "push"})
    assert first.post("/login", data={"token": API_TOKEN}).status_code == 429
    assert second.post("/login", data={"token": API_TOKEN}).status_code == 302
    assert (first.get("/healthz").get_json()["hooks_ignored"], second.get("/healthz").get_json()["hooks_ignored"]) \
        == (1, 0)


@responses.activate
def test_channels_announce_acknowledgments_from_the_dashboard(fake: FakePagerDuty, tmp_path: Path) -> None:
    responses.add_passthru(fake.url)  # type: ignore[attr-defined]
    responses.post(SLACK, json={"ok": True})
    responses.post("https://bot.test/hook", json={})
    channels = ("channels:\n"
                f"  - {{name: ops, url: '{SLACK}', kind: slack}}\n"
                "  - {name: bot, url: 'https://bot.test/hook', kind: json, announce: [acknowledged]}\n")
    client = app_for(fake, tmp_path, channels).test_client()
    line = client.post("/api/incidents", headers=AUTH, json={"title": "db down", "severity": "high",
                                                             "repo": "acme/db"}).get_json()
    client.post(f"/api/incidents/{line['incident_key']}/acknowledge", headers=AUTH)
    sent = [(c.request.url, json.loads(c.request.body)) for c in responses.calls]
    assert sent == [
        (SLACK, {"text": ":rotating_light: Triggered by api: [CodeSpar] High: db down"}),
        (SLACK, {"text": ":eyes: Acknowledged by api: [CodeSpar] High: db down"}),
        ("https://bot.test/hook", {"event": "acknowledged", "incident_key": line["incident_key"],
                                   "incident_id": line["incident_id"], "title": "[CodeSpar] High: db down",
                                   "actor": "api"})]


@responses.activate
def test_a_failing_channel_never_fails_the_pagerduty_action(fake: FakePagerDuty, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    responses.add_passthru(fake.url)  # type: ignore[attr-defined]
    for _ in range(4):
        responses.post(SLACK, status=500)
    app = app_for(fake, tmp_path, f"channels: [{{name: ops, url: '{SLACK}'}}]")
    line = app.test_client().post("/api/incidents", headers=AUTH, json={"title": "x", "severity": "high",
                                                                        "repo": "a/b"}).get_json()
    assert line["status"] == "created" and len(fake.incidents) == 1
    client = app.test_client()
    client.post("/login", data={"token": API_TOKEN})
    assert "Channel deliveries that failed" in client.get("/").get_data(as_text=True)
    assert "channel ops: announcement not delivered after retries" in caplog.text
    assert "secretpath" not in caplog.text  # a webhook URL is a credential


def test_notifier_payloads_and_background_delivery() -> None:
    assert payload("resolved", "slack", {"title": "t", "actor": "rules"}) == {
        "text": ":white_check_mark: Resolved by rules: t"}
    with responses.RequestsMock() as mock:
        mock.post("https://x.test/h", json={})
        notifier = Notifier([{"name": "n", "url": "https://x.test/h", "kind": "json", "announce": ("triggered",)}])
        notifier.announce("triggered", {"incident_key": "k"})
        notifier.announce("resolved", {"incident_key": "k"})  # not announced on this channel
        notifier.flush()
        assert [json.loads(c.request.body) for c in mock.calls] == [{"event": "triggered", "incident_key": "k"}]


def test_flush_waits_for_a_delivery_still_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """The delivery holds until flush has paused to wait with it in flight (a condition, not a pause
    of fixed length): a flush that returned while it was in flight would find it not yet delivered."""
    waited, delivered = threading.Event(), threading.Event()

    def pause(seconds: float) -> None:
        waited.set()
        time.sleep(seconds)
    monkeypatch.setattr(channels, "time", SimpleNamespace(monotonic=time.monotonic, time=time.time, sleep=pause))
    with responses.RequestsMock() as mock:
        def slow(request: Any) -> tuple[int, dict[str, str], str]:
            if waited.wait(timeout=30):
                delivered.set()
            return 200, {}, "{}"
        mock.add_callback(responses.POST, "https://x.test/slow", callback=slow)
        notifier = Notifier([{"name": "n", "url": "https://x.test/slow", "kind": "json", "announce": ("resolved",)}])
        notifier.announce("resolved", {"incident_key": "k"})
        notifier.flush(timeout=60)
        assert delivered.is_set() and len(mock.calls) == 1 and not notifier.failures


def test_no_secret_appears_in_any_response_log_line_or_audit_row(fake: FakePagerDuty, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    secrets = {"PAGERULES_GITHUB_WEBHOOK_SECRET": "gh-SECRET-a1b2c3", "PAGERULES_SENTRY_CLIENT_SECRET":
               "sentry-SECRET-d4e5f6", "PAGERULES_ALERTMANAGER_TOKEN": "am-SECRET-0a9b8c"}
    caplog.set_level(logging.DEBUG)
    people = tmp_path / "people.tokens"
    alice, bob = tokens.add(people, "alice", 1000.0), tokens.add(people, "bob", 1000.0)
    tokens.revoke(people, "bob", 1001.0)
    app = app_for(fake, tmp_path, PAGERULES_TOKENS_FILE=str(people), **secrets)
    client = app.test_client()
    bodies = [client.get("/api/audit", headers={"Authorization": f"Bearer {bob}"}).get_data(as_text=True),
              client.post("/login", data={"token": bob}, environ_base={"REMOTE_ADDR": "10.9.9.9"}).get_data(
                  as_text=True)]
    for source, headers in (("github", {"X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": "sha256=00"}),
                            ("sentry", {"Sentry-Hook-Resource": "issue", "Sentry-Hook-Signature": "00"}),
                            ("alertmanager", {"Authorization": "Bearer nope"}), ("githubx", {})):
        bodies.append(client.post(f"/hooks/{source}", json={"a": 1}, headers=headers).get_data(as_text=True))
    raw = b'{"alerts": []}'
    bodies.append(client.post("/hooks/alertmanager", data=raw, content_type="application/json",
                              headers={"Authorization": "Bearer am-SECRET-0a9b8c"}).get_data(as_text=True))
    for _ in range(6):
        bodies.append(client.post("/login", data={"token": "wrong"}).get_data(as_text=True))
    line = open_one(client)
    acked = client.post(f"/api/incidents/{line['incident_key']}/acknowledge",
                        headers={"Authorization": f"Bearer {alice}"})
    bodies.append(acked.get_data(as_text=True))
    client.post("/login", data={"token": alice}, environ_base={"REMOTE_ADDR": "10.1.1.1"})
    bodies += [client.get(path, headers=AUTH).get_data(as_text=True) for path in ("/", "/healthz", "/api/audit",
                                                                                  "/api/incidents")]
    state = app_for(fake, tmp_path).test_client().get("/api/audit?limit=1000", headers=AUTH).get_data(as_text=True)
    assert "alice" in {e["actor"] for e in json.loads(state)["entries"]}  # the person acted, and is named
    logged = "\n".join(r.getMessage() for r in caplog.records)
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in (alice, bob)]
    for secret in (*secrets.values(), API_TOKEN, TOKEN, alice, bob, *hashes):
        assert all(secret not in body for body in bodies), secret
        assert secret not in logged and secret not in state, secret


@responses.activate
def test_channels_name_the_person_who_acknowledged_and_resolved(fake: FakePagerDuty, tmp_path: Path) -> None:
    responses.add_passthru(fake.url)  # type: ignore[attr-defined]
    responses.post(SLACK, json={"ok": True})
    people = tmp_path / "people.tokens"
    alice = tokens.add(people, "alice", 1000.0)
    bearer = {"Authorization": f"Bearer {alice}"}
    client = app_for(fake, tmp_path, f"channels: [{{name: ops, url: '{SLACK}', kind: slack}}]",
                     PAGERULES_TOKENS_FILE=str(people)).test_client()
    line = open_one(client)
    client.post(f"/api/incidents/{line['incident_key']}/acknowledge", headers=bearer)
    client.post(f"/api/incidents/{line['incident_key']}/resolve", headers=bearer, json={"message": "failed over"})
    assert [json.loads(c.request.body)["text"] for c in responses.calls if c.request.url == SLACK] == [
        ":rotating_light: Triggered by api: [CodeSpar] High: db down",
        ":eyes: Acknowledged by alice: [CodeSpar] High: db down",
        f":white_check_mark: Resolved by alice: {line['incident_key']} (failed over)"]
    assert all(alice not in str(c.request.body) for c in responses.calls)
