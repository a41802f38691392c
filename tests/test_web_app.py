"""The HTTP API, dashboard and webhook intake with Flask's test client and the fake PagerDuty;
channel delivery with `responses`."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest
import responses
from conftest import make_config
from fake_pagerduty import FROM_EMAIL, POLICY, SERVICE, TOKEN, FakePagerDuty

from engine.pagerduty.backend import live_backend
from engine.pagerduty.channels import Notifier, payload
from engine.web.app import create_app

API_TOKEN = "api-token-for-tests-7f3a"
HOOK_SECRET = "github-hook-secret-55"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SLACK = "https://hooks.slack.test/services/T000/B000/secretpath"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def app_for(fake: FakePagerDuty, tmp_path: Path, channels: str = "channels: []", clock: Clock | None = None,
            **env: str) -> Any:
    config = make_config(channels, env={
        "PAGERDUTY_API_TOKEN": TOKEN, "PAGERDUTY_FROM_EMAIL": FROM_EMAIL, "PAGERDUTY_SERVICE_ID": SERVICE,
        "PAGERDUTY_ESCALATION_POLICY_ID": POLICY, "PAGERDUTY_API_URL": fake.url,  # type: ignore[attr-defined]
        "PAGERULES_API_TOKEN": API_TOKEN, "PAGERULES_RETRY_BACKOFF": "0.01", **env})
    backend = live_backend(config, str(tmp_path / "state.db"), "api")
    backend.notifier.synchronous = True
    app = create_app(config, backend, str(tmp_path / "events"), **({"clock": clock} if clock else {}))
    app.testing = True
    return app


@pytest.mark.parametrize("method, path", [("GET", "/api/oncall"), ("GET", "/api/incidents"), ("GET", "/api/audit"),
                                          ("POST", "/api/incidents"), ("POST", "/api/incidents/k/acknowledge"),
                                          ("POST", "/api/incidents/k/resolve")])
def test_every_api_call_needs_the_bearer_token(fake: FakePagerDuty, tmp_path: Path, method: str, path: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}):
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code == 401
        assert response.get_json() == {"error": "missing or wrong bearer token (Authorization: Bearer "
                                                "<PAGERULES_API_TOKEN>)"}
    assert fake.calls() == []  # nothing happened


def test_oncall_gives_the_lowest_level_first(fake: FakePagerDuty, tmp_path: Path) -> None:
    body = app_for(fake, tmp_path).test_client().get("/api/oncall", headers=AUTH).get_json()
    assert {k: body[k] for k in ("name", "email", "escalation_level", "schedule", "until")} == {
        "name": "Ada Oncall", "email": "ada@example.com", "escalation_level": 1, "schedule": "Primary",
        "until": "2026-11-28T18:00:00Z"}
    assert [p["name"] for p in body["levels"]] == ["Ada Oncall", "Bo Backup"]


def test_trigger_list_acknowledge_resolve_and_audit(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    created = client.post("/api/incidents", headers=AUTH, json={
        "title": "checkout is down", "severity": "critical", "repo": "acme/shop", "details": {"runbook": "r1"}})
    assert created.status_code == 201
    line = created.get_json()
    assert (line["status"], line["title"]) == ("created", "[CodeSpar] Critical: checkout is down")
    again = client.post("/api/incidents", headers=AUTH, json={"title": "checkout is down", "severity": "critical",
                                                              "repo": "acme/shop"})
    assert (again.status_code, again.get_json()["status"]) == (200, "deduplicated")
    listed = client.get("/api/incidents?repo=acme/shop", headers=AUTH).get_json()["incidents"]
    assert [i["incident_key"] for i in listed] == [line["incident_key"]]
    assert client.get("/api/incidents?repo=other/repo", headers=AUTH).get_json() == {"incidents": []}
    key = line["incident_key"]
    ack = client.post(f"/api/incidents/{key}/acknowledge", headers=AUTH)
    assert ack.status_code == 200 and ack.get_json()["status"] == "acknowledged"
    resolved = client.post(f"/api/incidents/{key}/resolve", headers=AUTH, json={"message": "rolled back"})
    assert resolved.get_json()["status"] == "resolved"
    assert fake.incidents[line["incident_id"]]["resolution"] == "rolled back"
    actions = [(e["actor"], e["action"]) for e in client.get("/api/audit", headers=AUTH).get_json()["entries"]]
    assert actions == [("api", "resolved"), ("api", "acknowledged"), ("api", "deduplicate"), ("api", "create")]


def test_below_threshold_applies_to_manual_triggers_too(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    body = client.post("/api/incidents", headers=AUTH, json={"title": "t", "severity": "low", "repo": "a/b"})
    assert body.get_json()["status"] == "below_threshold" and fake.calls() == []


@pytest.mark.parametrize("body, message", [
    ("not json", "body is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    ("[1]", "expected a JSON object body (Content-Type: application/json)"),
    ({"title": "t"}, "missing or empty: severity, repo"),
    ({"title": "t", "severity": "high", "repo": "a/b", "details": "x"}, "details: expected an object"),
    ({"title": "t", "severity": "high", "repo": "a/b", "incident_key": 42}, "incident_key: expected non-empty text, "
                                                                            "got a number"),
    ({"title": "t", "severity": "high", "repo": "a/b", "incident_key": ["k"]}, "incident_key: expected non-empty "
                                                                               "text, got a list"),
    ({"title": "t", "severity": "high", "repo": "a/b", "incident_key": {"k": 1}}, "incident_key: expected "
                                                                                  "non-empty text, got an object"),
    ({"title": "t", "severity": "high", "repo": "a/b", "incident_key": ""}, "incident_key: expected non-empty text, "
                                                                           "got empty text"),
    ({"title": 7, "severity": "high", "repo": "a/b"}, "title: expected text, got a number"),
    ({"title": "t", "severity": ["high"], "repo": "a/b"}, "severity: expected text, got a list"),
    ({"title": "t", "severity": "high", "repo": True}, "repo: expected text, got true/false"),
    ('{"title": "t", "severity": "high", "repo": "a/b", "details": ' + "[" * 5000 + "]" * 5000 + "}",
     "body is nested deeper than 64 levels"),
    ('{"title": NaN, "severity": "high", "repo": "a/b"}', "NaN is not valid JSON (RFC 8259 has no NaN or Infinity)"),
])
def test_bad_requests_are_400_with_a_message(fake: FakePagerDuty, tmp_path: Path, body: Any, message: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, str) else {"json": body}
    response = client.post("/api/incidents", headers=AUTH, **kwargs)
    assert (response.status_code, response.get_json()) == (400, {"error": message})


def test_an_unknown_severity_is_a_clear_error_not_a_traceback(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/api/incidents", headers=AUTH, json={"title": "t", "severity": "urgent", "repo": "a/b"})
    assert (response.status_code, response.get_json()) == (400, {
        "error": "severity: 'urgent' is not a severity (known: low, medium, high, critical)"})


def test_request_bodies_are_capped(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/hooks/github", data=b"x" * (1024 * 1024 + 1), content_type="application/json")
    assert response.status_code == 413 and "error" in response.get_json()


def test_github_hook_checks_the_signature_and_writes_the_typed_file(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path, PAGERULES_GITHUB_WEBHOOK_SECRET=HOOK_SECRET).test_client()
    raw = json.dumps({"action": "completed", "workflow_run": {"conclusion": "failure"}}).encode()
    good = "sha256=" + hmac.new(HOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
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


def test_healthz_needs_no_token_and_shows_the_daemon(fake: FakePagerDuty, tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / ".pagerules-status.json").write_text(json.dumps(
        {"pid": 999999, "state": "running", "ruleset_version": "abc", "last_reload_error": "rules/x.yaml:3: bad",
         "files_processed": 4, "files_failed": 1, "files_pending": 0}))
    client = app_for(fake, tmp_path).test_client()
    detailed = client.get("/healthz", headers=AUTH).get_json()
    assert detailed["ok"] and detailed["daemon"]["last_reload_error"] == "rules/x.yaml:3: bad"
    assert detailed["daemon"]["running"] is False  # that pid is gone
    assert detailed["pagerduty_url"] == fake.url and isinstance(detailed["pid"], int)  # type: ignore[attr-defined]


def test_healthz_without_the_token_shows_only_up_down_and_counts(fake: FakePagerDuty, tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / ".pagerules-status.json").write_text(json.dumps(
        {"pid": 999999, "state": "running", "ruleset_version": "abc", "files_processed": 4, "files_failed": 1,
         "files_pending": 2, "last_reload_error": "rules/secret-team/x.yaml:3: rule page-ceo: bad",
         "last_pagerduty_error": "not found in PagerDuty (404): /incidents/PXYZ"}))
    client = app_for(fake, tmp_path).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.get("/healthz", headers=headers)
        assert response.get_json() == {"ok": True, "channel_failures": 0, "hooks_ignored": 0, "daemon": {
            "state": "running", "running": False, "files_processed": 4, "files_failed": 1, "files_pending": 2}}
        text = response.get_data(as_text=True)
        assert "secret-team" not in text and "PXYZ" not in text and "999999" not in text and fake.url not in text  # type: ignore[attr-defined]


def test_dashboard_sign_in_session_cookie_and_csrf(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    assert client.get("/").status_code == 302
    assert client.post("/login", data={"token": "wrong"}).status_code == 401
    signed_in = client.post("/login", data={"token": API_TOKEN})
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    line = client.post("/api/incidents", headers=AUTH, json={"title": "db down", "severity": "high",
                                                             "repo": "acme/db"}).get_json()
    page = client.get("/").get_data(as_text=True)
    assert "Ada Oncall" in page and "db down" in page and "acme/db" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    path = f"/ui/incidents/{line['incident_key']}/acknowledge"
    assert client.post(path, data={"csrf": "forged"}).status_code == 403
    assert fake.incidents[line["incident_id"]]["status"] == "triggered"
    done = client.post(path, data={"csrf": csrf})
    assert done.status_code == 302 and fake.incidents[line["incident_id"]]["status"] == "acknowledged"


def test_the_api_token_never_shows_in_responses(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    client.post("/login", data={"token": API_TOKEN})
    bodies = [client.get("/").get_data(as_text=True), client.get("/healthz").get_data(as_text=True),
              client.get("/api/audit", headers=AUTH).get_data(as_text=True)]
    assert all(API_TOKEN not in b and TOKEN not in b for b in bodies)


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


def test_flush_waits_for_a_delivery_still_in_flight() -> None:
    import time
    with responses.RequestsMock() as mock:
        def slow(request: Any) -> tuple[int, dict[str, str], str]:
            time.sleep(0.8)  # longer than any fixed pause a flush might take
            return 200, {}, "{}"
        mock.add_callback(responses.POST, "https://x.test/slow", callback=slow)
        notifier = Notifier([{"name": "n", "url": "https://x.test/slow", "kind": "json", "announce": ("resolved",)}])
        notifier.announce("resolved", {"incident_key": "k"})
        notifier.flush(timeout=5)
        assert len(mock.calls) == 1 and not notifier.failures


@pytest.mark.parametrize("limit", ["\u00b2", "-1", "0", "1001", "9" * 5000, "1.5", " 5", "abc", ""])
def test_audit_limit_must_be_a_whole_number_in_range(fake: FakePagerDuty, tmp_path: Path, limit: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.get("/api/audit", headers=AUTH, query_string={"limit": limit})
    assert (response.status_code, response.get_json()) == (400, {
        "error": "limit: expected a whole number from 1 to 1000"})
    assert client.get("/api/audit?limit=1000", headers=AUTH).status_code == 200


def _open_one(client: Any) -> dict[str, Any]:
    return client.post("/api/incidents", headers=AUTH, json={"title": "db down", "severity": "high",  # type: ignore[no-any-return]
                                                             "repo": "acme/db"}).get_json()


# ---- the dashboard's sign-in (issue 11 item 12) -------------------------------------------------------

def test_the_session_cookie_is_secure_over_tls_or_behind_a_proxy_that_says_so(fake: FakePagerDuty,
                                                                              tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    plain = client.post("/login", data={"token": API_TOKEN}).headers["Set-Cookie"]
    assert "Secure" not in plain
    tls = client.post("/login", data={"token": API_TOKEN}, base_url="https://localhost").headers["Set-Cookie"]
    proxied = client.post("/login", data={"token": API_TOKEN}, headers={"X-Forwarded-Proto": "https"})
    standard = client.post("/login", data={"token": API_TOKEN}, headers={"Forwarded": "for=1.2.3.4;proto=https"})
    for cookie in (tls, proxied.headers["Set-Cookie"], standard.headers["Set-Cookie"]):
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_login_is_rate_limited_per_client_address(fake: FakePagerDuty, tmp_path: Path) -> None:
    clock = Clock()
    client = app_for(fake, tmp_path, clock=clock).test_client()
    other = {"REMOTE_ADDR": "10.0.0.9"}
    for _ in range(5):
        assert client.post("/login", data={"token": "guess"}).status_code == 401
        clock.now += 1
    limited = client.post("/login", data={"token": API_TOKEN})  # even the right token waits
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "55"
    assert "Too many wrong tokens; try again in 55 s." in limited.get_data(as_text=True)
    assert client.post("/login", data={"token": API_TOKEN}, environ_base=other).status_code == 302
    clock.now += 54
    assert client.post("/login", data={"token": "guess"}).status_code == 429
    clock.now += 1  # the first failure is a minute old now
    assert client.post("/login", data={"token": API_TOKEN}).status_code == 302


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Referer": "https://evil.example/page"},
                                     {"Origin": "http://localhost", "X-Forwarded-Proto": "https"}])
def test_login_refuses_cross_origin_posts(fake: FakePagerDuty, tmp_path: Path, headers: dict[str, str]) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/login", data={"token": API_TOKEN}, headers=headers)
    assert response.status_code == 403 and "Set-Cookie" not in response.headers
    assert "Sign-in refused" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # not signed in


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://localhost"}, {"Referer": "http://localhost/login"},
                                     {"Origin": "https://pager.example", "X-Forwarded-Host": "pager.example",
                                      "X-Forwarded-Proto": "https"}])
def test_login_from_its_own_page_or_a_script_signs_in(fake: FakePagerDuty, tmp_path: Path,
                                                      headers: dict[str, str]) -> None:
    client = app_for(fake, tmp_path).test_client()
    assert client.post("/login", data={"token": API_TOKEN}, headers=headers).status_code == 302
    assert client.get("/").status_code == 200


# ---- serve refreshes from PagerDuty (issue 12 item 9) ---------------------------------------------------

def test_the_incident_list_refreshes_from_pagerduty_at_most_every_30_s(fake: FakePagerDuty, tmp_path: Path) -> None:
    clock = Clock()
    client = app_for(fake, tmp_path, clock=clock).test_client()
    line = _open_one(client)
    assert [i["status"] for i in client.get("/api/incidents", headers=AUTH).get_json()["incidents"]] == ["triggered"]
    fake.resolve_by_hand(line["incident_key"])
    clock.now += 29
    assert len(client.get("/api/incidents", headers=AUTH).get_json()["incidents"]) == 1  # not yet asked again
    gets = len(fake.calls("GET", f"/incidents/{line['incident_id']}"))
    clock.now += 1
    assert client.get("/api/incidents", headers=AUTH).get_json() == {"incidents": []}
    assert len(fake.calls("GET", f"/incidents/{line['incident_id']}")) == gets + 1


def test_the_dashboard_refreshes_on_load(fake: FakePagerDuty, tmp_path: Path) -> None:
    clock = Clock()
    client = app_for(fake, tmp_path, clock=clock).test_client()
    client.post("/login", data={"token": API_TOKEN})
    line = _open_one(client)
    fake.resolve_by_hand(line["incident_key"])
    clock.now += 30
    page = client.get("/").get_data(as_text=True)
    assert "db down" not in page and "No open incidents." in page


def test_an_incident_resolved_in_pagerduty_is_never_acknowledged(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()  # the refresh has not run since: the state is stale
    line = _open_one(client)
    fake.resolve_by_hand(line["incident_key"])
    response = client.post(f"/api/incidents/{line['incident_key']}/acknowledge", headers=AUTH)
    assert response.status_code == 409
    assert response.get_json()["error"] == ("PagerDuty says this incident is already resolved; nothing was "
                                            "acknowledged (acknowledging would re-open it)")
    assert fake.incidents[line["incident_id"]]["status"] == "resolved"  # not re-opened
    assert fake.calls("PUT") == []
    assert client.get("/api/incidents", headers=AUTH).get_json() == {"incidents": []}  # the state knows now


def test_the_dashboard_says_when_an_incident_was_resolved_in_pagerduty(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    client.post("/login", data={"token": API_TOKEN})
    line = _open_one(client)
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    fake.resolve_by_hand(line["incident_key"])  # between the page load and the click
    done = client.post(f"/ui/incidents/{line['incident_key']}/acknowledge", data={"csrf": csrf},
                       follow_redirects=True)
    text = done.get_data(as_text=True)
    assert f"Not acknowledged: {line['incident_key']} is already resolved in PagerDuty" in text
    assert fake.incidents[line["incident_id"]]["status"] == "resolved"


def test_the_dashboard_says_when_it_could_not_refresh(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    client.post("/login", data={"token": API_TOKEN})
    _open_one(client)
    fake.faults = {"count": 100, "status": 403}
    page = client.get("/").get_data(as_text=True)
    assert "Could not refresh from PagerDuty, so the list below may be stale: the API token may not GET" in page
    assert "db down" in page  # the last known state is still shown


# ---- secrets (README "Configuration") ----------------------------------------------------------------------------

def test_no_secret_appears_in_any_response_log_line_or_audit_row(fake: FakePagerDuty, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    import logging
    secrets = {"PAGERULES_GITHUB_WEBHOOK_SECRET": "gh-SECRET-a1b2c3", "PAGERULES_SENTRY_CLIENT_SECRET":
               "sentry-SECRET-d4e5f6", "PAGERULES_ALERTMANAGER_TOKEN": "am-SECRET-0a9b8c"}
    caplog.set_level(logging.DEBUG)
    app = app_for(fake, tmp_path, **secrets)
    client = app.test_client()
    bodies = []
    for source, headers in (("github", {"X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": "sha256=00"}),
                            ("sentry", {"Sentry-Hook-Resource": "issue", "Sentry-Hook-Signature": "00"}),
                            ("alertmanager", {"Authorization": "Bearer nope"}), ("githubx", {})):
        bodies.append(client.post(f"/hooks/{source}", json={"a": 1}, headers=headers).get_data(as_text=True))
    raw = b'{"alerts": []}'
    bodies.append(client.post("/hooks/alertmanager", data=raw, content_type="application/json",
                              headers={"Authorization": "Bearer am-SECRET-0a9b8c"}).get_data(as_text=True))
    for _ in range(6):
        bodies.append(client.post("/login", data={"token": "wrong"}).get_data(as_text=True))
    line = _open_one(client)
    acked = client.post(f"/api/incidents/{line['incident_key']}/acknowledge", headers=AUTH)
    bodies.append(acked.get_data(as_text=True))
    client.post("/login", data={"token": API_TOKEN}, environ_base={"REMOTE_ADDR": "10.1.1.1"})
    bodies += [client.get(path, headers=AUTH).get_data(as_text=True) for path in ("/", "/healthz", "/api/audit",
                                                                                  "/api/incidents")]
    state = app_for(fake, tmp_path).test_client().get("/api/audit?limit=1000", headers=AUTH).get_data(as_text=True)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (*secrets.values(), API_TOKEN, TOKEN):
        assert all(secret not in body for body in bodies), secret
        assert secret not in logged and secret not in state, secret

