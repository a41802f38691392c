"""The dashboard (engine.web.dashboard): sign-in by form with a rate limit and a same-origin check, the
session cookie, the CSRF token on every button, and the page refreshed from PagerDuty on load."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import logging
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from builders import API_TOKEN, AUTH, Clock, app_for, open_one
from fake_pagerduty import POLICY, FakePagerDuty

from engine.errors import PageRulesError
from engine.web import dashboard, tokens
from engine.web.dashboard import short_title


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


def test_the_dashboard_refreshes_on_load(fake: FakePagerDuty, tmp_path: Path) -> None:
    clock = Clock()
    client = app_for(fake, tmp_path, clock=clock).test_client()
    client.post("/login", data={"token": API_TOKEN})
    line = open_one(client)
    fake.resolve_by_hand(line["incident_key"])
    clock.now += 30
    page = client.get("/").get_data(as_text=True)
    assert "db down" not in page and "No open incidents." in page


def test_the_dashboard_says_when_an_incident_was_resolved_in_pagerduty(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    client.post("/login", data={"token": API_TOKEN})
    line = open_one(client)
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
    open_one(client)
    fake.faults = {"count": 100, "status": 403}
    page = client.get("/").get_data(as_text=True)
    assert "Could not refresh from PagerDuty, so the list below may be stale: the API token may not GET" in page
    assert "db down" in page  # the last known state is still shown


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def signed_in(fake: FakePagerDuty, tmp_path: Path) -> Any:
    client = app_for(fake, tmp_path).test_client()
    assert client.post("/login", data={"token": API_TOKEN}).status_code == 302
    return client


def test_the_acknowledge_button_needs_a_signed_in_session(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    line = open_one(client)
    response = client.post(f"/ui/incidents/{line['incident_key']}/acknowledge", data={"csrf": "x"})
    assert response.status_code == 401 and response.mimetype == "text/html"
    assert fake.calls("PUT") == [] and fake.incidents[line["incident_id"]]["status"] == "triggered"


def test_the_acknowledge_button_without_its_form_token_is_403(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = signed_in(fake, tmp_path)
    line = open_one(client)
    response = client.post(f"/ui/incidents/{line['incident_key']}/acknowledge")
    assert response.status_code == 403
    assert "missing or stale form token; reload the page" in response.get_data(as_text=True)
    assert fake.calls("PUT") == []


def test_sign_out_needs_the_form_token_then_ends_the_session(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = signed_in(fake, tmp_path)
    csrf = csrf_of(client.get("/").get_data(as_text=True))
    refused = client.post("/logout", data={"csrf": "forged"})
    assert refused.status_code == 403 and client.get("/").status_code == 200  # still signed in
    out = client.post("/logout", data={"csrf": csrf})
    assert (out.status_code, out.headers["Location"]) == (302, "/login")
    assert client.get("/").headers["Location"] == "/login"


def test_the_page_says_when_pagerduty_cannot_say_who_is_on_call(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = signed_in(fake, tmp_path)
    fake.faults = {"count": 100, "status": 403}
    page = client.get("/").get_data(as_text=True)
    assert "Could not ask PagerDuty: the API token may not GET" in page
    assert "Nobody is on call" not in page


def test_a_wrong_token_says_so_and_sets_no_session(fake: FakePagerDuty, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/login", data={"token": "guess"}, environ_base={"REMOTE_ADDR": "10.2.3.4"})
    assert response.status_code == 401 and "Set-Cookie" not in response.headers
    assert "That token is not right (or it was revoked)." in response.get_data(as_text=True)
    assert "dashboard sign-in with a wrong or revoked token from 10.2.3.4" in caplog.text and "guess" not in caplog.text


def test_the_sign_in_form_is_served(fake: FakePagerDuty, tmp_path: Path) -> None:
    page = app_for(fake, tmp_path).test_client().get("/login")
    assert page.status_code == 200
    assert '<input type="password" name="token" id="token"' in page.get_data(as_text=True)


def test_each_incident_shows_its_age_on_the_clock_that_opened_it(fake: FakePagerDuty, tmp_path: Path) -> None:
    """A relative age (now minus opened_at, both on the backend's clock, here moved by hand) with the exact
    UTC time in <time datetime> and its title, shown on hover."""
    app = app_for(fake, tmp_path)
    clock = Clock(1_000_000.0)
    app.extensions["pagerules"].backend.clock = clock
    client = app.test_client()
    client.post("/login", data={"token": API_TOKEN})
    open_one(client)
    ages = []
    for seconds in (0, 59, 60, 3599, 3600, 86399, 86400 * 3):
        clock.now = 1_000_000.0 + seconds
        page = client.get("/").get_data(as_text=True)
        ages.append(re.findall(r'<td class="opened"><time datetime="1970-01-12T13:46:40Z" '
                               r'title="1970-01-12 13:46:40 UTC">([^<]+)</time></td>', page))
    assert ages == [["just now"], ["just now"], ["1 min ago"], ["59 min ago"], ["1 h ago"], ["23 h ago"], ["3 d ago"]]


def clocked(fake: FakePagerDuty, tmp_path: Path) -> tuple[Any, Clock]:
    """A signed-in client whose backend runs on a clock the test moves."""
    app = app_for(fake, tmp_path, PAGERDUTY_SEVERITY_THRESHOLD="low")
    clock = Clock(1_000_000.0)
    app.extensions["pagerules"].backend.clock = clock
    client = app.test_client()
    assert client.post("/login", data={"token": API_TOKEN}).status_code == 302
    return client, clock


def trigger(client: Any, title: str, severity: str, repo: str) -> dict[str, Any]:
    return client.post("/api/incidents", headers=AUTH,  # type: ignore[no-any-return]
                       json={"title": title, "severity": severity, "repo": repo}).get_json()


def rows(page: str) -> list[str]:
    """The incidents' keys in the order the page lists them."""
    return re.findall(r'<tr class="incident" data-key="([^"]+)">', page)


def test_incidents_across_projects_most_severe_first_then_oldest(fake: FakePagerDuty, tmp_path: Path) -> None:
    client, clock = clocked(fake, tmp_path)
    keys = {}
    for title, severity, repo in (("disk 80%", "low", "acme/a"), ("checkout down", "critical", "acme/b"),
                                  ("search stale", "high", "acme/c"), ("payments down", "critical", "acme/d"),
                                  ("queue slow", "medium", "acme/a")):
        keys[title] = trigger(client, title, severity, repo)["incident_key"]
        clock.now += 10
    order = rows(client.get("/").get_data(as_text=True))
    assert order == [keys[t] for t in ("checkout down", "payments down", "search stale", "queue slow", "disk 80%")]


def test_an_acknowledged_incident_says_who_acknowledged_and_when(fake: FakePagerDuty, tmp_path: Path) -> None:
    client, clock = clocked(fake, tmp_path)
    line = open_one(client)
    page = client.get("/").get_data(as_text=True)
    assert "acked-by" not in page and "Acknowledge</button>" in page
    clock.now += 120
    client.post(f"/ui/incidents/{line['incident_key']}/acknowledge", data={"csrf": csrf_of(page)})
    clock.now += 300
    page = client.get("/").get_data(as_text=True)
    status = re.search(r'<td class="status">(.*?)</td>', page, re.S).group(1)  # type: ignore[union-attr]
    assert status.startswith("acknowledged") and '<span class="acked-by">dashboard</span>' in status
    assert '<time datetime="1970-01-12T13:48:40Z" title="1970-01-12 13:48:40 UTC">5 min ago</time>' in status
    assert "Acknowledge</button>" not in page and "Resolve</button>" in page


def test_the_title_loses_the_prefix_title_format_gave_it(fake: FakePagerDuty, tmp_path: Path) -> None:
    client, _ = clocked(fake, tmp_path)
    trigger(client, "checkout p99 above 4s", "critical", "acme/shop")
    page = client.get("/").get_data(as_text=True)
    assert '<span class="title">checkout p99 above 4s</span>' in page and "[CodeSpar] Critical:" not in page
    assert '<span class="sev sev-critical">critical</span>' in page


@pytest.mark.parametrize(("title_format", "severity", "title", "shown"), [
    ("[CodeSpar] {Severity}: {title}", "critical", "[CodeSpar] Critical: db down", "db down"),
    ("[CodeSpar] {Severity}: {title}", "critical", "[CodeSpar] High: db down", "[CodeSpar] High: db down"),
    ("[CodeSpar] {Severity}: {title}", "high", "db down", "db down"),
    ("[CodeSpar] {Severity}: {title}", "high", "[CodeSpar] High: ", "[CodeSpar] High: "),
    ("{title} ({severity})", "low", "disk full (low)", "disk full"),
    ("{title}", "low", "disk full", "disk full"),
    ("[{Severity}] {title} !", "medium", "[Medium] very long title cut…", "very long title cut…"),
])
def test_short_title_strips_only_the_exact_prefix(title_format: str, severity: str, title: str, shown: str) -> None:
    assert short_title(title_format, severity, title) == shown


def test_the_pagerduty_link_comes_from_the_stored_html_url(fake: FakePagerDuty, tmp_path: Path) -> None:
    client, _ = clocked(fake, tmp_path)
    open_one(client)
    [incident] = fake.incidents.values()
    assert f'<a class="pd-link" href="{incident["html_url"]}"' in client.get("/").get_data(as_text=True)
    state = client.application.extensions["pagerules"].backend.state
    kept = state.open_incidents()[0]
    for url, shown in (("https://acme.pagerduty.com/incidents/PINC0001", True), ("javascript:void(0)", False),
                       (None, False)):
        with_url = dataclasses.replace(kept, html_url=url)
        state.open_first = lambda *a, _i=with_url, **k: [_i]
        page = client.get("/").get_data(as_text=True)
        assert (f'<a class="pd-link" href="{url}"' in page) is shown and "javascript:" not in page
        assert ("Open in PagerDuty" in page) is shown


def test_resolve_with_a_message_from_the_dashboard(fake: FakePagerDuty, tmp_path: Path) -> None:
    client, _ = clocked(fake, tmp_path)
    line = open_one(client)
    path = f"/ui/incidents/{line['incident_key']}/resolve"
    page = client.get("/").get_data(as_text=True)
    assert f'action="{path}"' in page and 'class="visually-hidden">Resolution message for db down (optional)' in page
    assert client.post(path, data={"csrf": "forged", "message": "x"}).status_code == 403
    assert client.post(path, data={"csrf": csrf_of(page), "message": "m" * 2001}).status_code == 400
    assert fake.calls("PUT") == []
    done = client.post(path, data={"csrf": csrf_of(page), "message": "  rolled back v2.3.1  "}, follow_redirects=True)
    assert f"resolved: {line['incident_key']}" in done.get_data(as_text=True)
    assert fake.incidents[line["incident_id"]]["status"] == "resolved"
    notes = fake.calls("POST", f"/incidents/{line['incident_id']}/notes")
    assert [n["body"]["note"]["content"] for n in notes] == ["rolled back v2.3.1"]
    entry = client.get("/api/audit", headers=AUTH).get_json()["entries"][0]
    assert (entry["actor"], entry["action"], entry["detail"]["message"]) == ("dashboard", "resolved",
                                                                               "rolled back v2.3.1")


def test_the_resolve_button_needs_a_signed_in_session(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    line = open_one(client)
    assert client.post(f"/ui/incidents/{line['incident_key']}/resolve", data={"csrf": "x"}).status_code == 401
    assert fake.calls("PUT") == []


def test_filter_by_project_and_severity_with_a_plain_get(fake: FakePagerDuty, tmp_path: Path) -> None:
    client, clock = clocked(fake, tmp_path)
    keys = {}
    for title, severity, repo in (("a1", "critical", "acme/a"), ("a2", "low", "acme/a"), ("b1", "critical", "acme/b")):
        keys[title] = trigger(client, title, severity, repo)["incident_key"]
        clock.now += 1
    assert rows(client.get("/?repo=acme/a").get_data(as_text=True)) == [keys["a1"], keys["a2"]]
    assert rows(client.get("/?severity=critical").get_data(as_text=True)) == [keys["a1"], keys["b1"]]
    both = client.get("/?repo=acme/a&severity=critical").get_data(as_text=True)
    assert rows(both) == [keys["a1"]] and "· 1 of 3," in both
    assert '<option value="acme/a" selected>' in both and '<option value="critical" selected>' in both
    assert rows(client.get("/?severity=bogus").get_data(as_text=True)) == [keys["a1"], keys["b1"], keys["a2"]]
    none = client.get("/?repo=acme/zzz").get_data(as_text=True)
    assert rows(none) == [] and "No open incident matches this filter." in none
    assert '<label for="filter-repo">Project</label>' in none
    assert '<label for="filter-severity">Severity</label>' in none


def test_history_lists_resolutions_with_message_and_who(fake: FakePagerDuty, tmp_path: Path) -> None:
    client, clock = clocked(fake, tmp_path)
    assert "Nothing resolved yet." in client.get("/history").get_data(as_text=True)
    first = trigger(client, "checkout down", "critical", "acme/shop")
    second = open_one(client)
    csrf = csrf_of(client.get("/").get_data(as_text=True))
    client.post(f"/ui/incidents/{first['incident_key']}/resolve", data={"csrf": csrf, "message": "restarted pods"})
    clock.now += 60
    client.post(f"/api/incidents/{second['incident_key']}/resolve", headers=AUTH, json={})
    page = client.get("/history").get_data(as_text=True)
    found = re.findall(r'<tr class="resolution" data-key="([^"]+)">.*?<td class="resolved-by">([^<]+)</td>.*?'
                       r'<span class="title">([^<]+)</span>.*?<td class="message">([^<]*)', page, re.S)
    assert found == [(second["incident_key"], "api", "db down", "Resolved by hand with pagerules"),
                     (first["incident_key"], "dashboard", "checkout down", "restarted pods")]
    assert "1 min ago" in page and 'aria-current="page">History' in page
    assert app_for(fake, tmp_path / "other").test_client().get("/history").status_code == 302  # signed out


def test_each_incident_shows_the_oncall_of_the_route_its_labels_take(fake: FakePagerDuty, tmp_path: Path) -> None:
    """acme/pay's route names its own escalation policy (nobody on call there, here); the rest use the global
    policy's Ada Oncall; each policy is asked once per page."""
    app = app_for(fake, tmp_path, channels="channels: []\nroutes:\n  - match: {repo: acme/pay}\n"
                  "    service_id: PPAY001\n    escalation_policy_id: PEPPAY1\n")
    client = app.test_client()
    backend = app.extensions["pagerules"].backend
    asked: list[str] = []
    real = backend.client.oncalls
    backend.client.oncalls = lambda policy: asked.append(policy) or (real(policy) if policy == POLICY else [])
    client.post("/login", data={"token": API_TOKEN})
    for title, repo in (("pay down", "acme/pay"), ("pay slow", "acme/pay"), ("db down", "acme/db")):
        trigger(client, title, "high", repo)
    page = client.get("/").get_data(as_text=True)
    assert re.findall(r'on call: <span class="oncall-for">([^<]+)</span>', page) == ["nobody", "nobody", "Ada Oncall"]
    assert sorted(asked) == [POLICY, "PEPPAY1"]


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_the_buttons_refuse_a_post_from_another_site_even_with_the_form_token(fake: FakePagerDuty, tmp_path: Path,
                                                                            action: str) -> None:
    client = signed_in(fake, tmp_path)
    line = open_one(client)
    csrf = csrf_of(client.get("/").get_data(as_text=True))
    path = f"/ui/incidents/{line['incident_key']}/{action}"
    refused = client.post(path, data={"csrf": csrf}, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and "posted from another site" in refused.get_data(as_text=True)
    assert fake.calls("PUT") == []
    done = client.post(path, data={"csrf": csrf}, headers={"Origin": "http://localhost"})
    assert done.status_code == 302 and len(fake.calls("PUT")) == 1


def people_app(fake: FakePagerDuty, tmp_path: Path, channels: str = "channels: []") -> tuple[Any, Path]:
    people = tmp_path / "people.tokens"
    return app_for(fake, tmp_path, channels, PAGERULES_TOKENS_FILE=str(people)), people


def test_a_named_token_signs_in_the_header_names_the_person_and_the_audit_trail_records_them(
        fake: FakePagerDuty, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    people = tmp_path / "people.tokens"
    alice = tokens.add(people, "alice", 1000.0)
    app, _ = people_app(fake, tmp_path)
    client = app.test_client()
    signed = client.post("/login", data={"token": alice})
    assert signed.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert '<strong id="signed-in-as">alice</strong>' in page and "shared PAGERULES_API_TOKEN" not in page
    assert '<strong id="signed-in-as">alice</strong>' in client.get("/history").get_data(as_text=True)
    line = open_one(client)
    acked = client.post(f"/ui/incidents/{line['incident_key']}/acknowledge", data={"csrf": csrf_of(page)})
    assert acked.status_code == 302
    resolved = client.post(f"/ui/incidents/{line['incident_key']}/resolve",
                           data={"csrf": csrf_of(page), "message": "failed over"})
    assert resolved.status_code == 302
    audit = client.get("/api/audit", headers=AUTH).get_json()["entries"]
    assert [(e["actor"], e["action"]) for e in audit][:3] == [("alice", "resolved"), ("alice", "acknowledged"),
                                                                ("api", "create")]
    history = client.get("/history").get_data(as_text=True)
    assert '<td class="resolved-by">alice</td>' in history
    digest = hashlib.sha256(alice.encode()).hexdigest()
    cookie = signed.headers["Set-Cookie"]
    assert '"person":"alice"' in _decoded_session(cookie)  # who, and when their token was made; nothing secret
    for shown in (page, history, json.dumps(audit), caplog.text, cookie, _decoded_session(cookie)):
        assert alice not in shown and digest not in shown
    assert "dashboard sign-in by alice from" in caplog.text


def _decoded_session(cookie: str) -> str:
    """The session cookie's payload (signed, not encrypted: a reader of the cookie sees it)."""
    value = cookie.split("=", 1)[1].split(";", 1)[0]
    payload = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return (zlib.decompress(raw) if value.startswith(".") else raw).decode()


def test_the_shared_token_still_signs_in_as_dashboard(fake: FakePagerDuty, tmp_path: Path) -> None:
    tokens.add(tmp_path / "people.tokens", "alice", 1000.0)
    client = people_app(fake, tmp_path)[0].test_client()
    assert client.post("/login", data={"token": API_TOKEN}).status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert '<strong id="signed-in-as">dashboard</strong> <span class="shared">(the shared PAGERULES_API_TOKEN)' \
        in page
    line = open_one(client)
    client.post(f"/ui/incidents/{line['incident_key']}/acknowledge", data={"csrf": csrf_of(page)})
    assert client.get("/api/audit", headers=AUTH).get_json()["entries"][0]["actor"] == "dashboard"


def test_revoking_a_token_ends_its_open_session_and_its_api_use_at_once(fake: FakePagerDuty, tmp_path: Path) -> None:
    people = tmp_path / "people.tokens"
    alice, bob = tokens.add(people, "alice", 1000.0), tokens.add(people, "bob", 1000.0)
    app = people_app(fake, tmp_path)[0]
    client, other = app.test_client(), app.test_client()
    assert client.post("/login", data={"token": alice}).status_code == 302
    assert other.post("/login", data={"token": bob}).status_code == 302
    csrf = csrf_of(client.get("/").get_data(as_text=True))
    line = open_one(client)
    bearer = {"Authorization": f"Bearer {alice}"}
    assert client.get("/api/incidents", headers=bearer).status_code == 200

    tokens.revoke(people, "alice", 2000.0)  # another process, as `pagerules token revoke alice`
    assert client.get("/api/incidents", headers=bearer).status_code == 401
    button = client.post(f"/ui/incidents/{line['incident_key']}/acknowledge", data={"csrf": csrf})
    assert button.status_code == 401 and fake.calls("PUT") == []
    assert client.get("/").headers["Location"] == "/login"
    assert client.post("/login", data={"token": alice}).status_code == 401
    assert other.get("/").status_code == 200  # bob's session is untouched

    new = tokens.add(people, "alice", 3000.0)  # a new token for alice: the old session stays ended
    assert client.post("/login", data={"token": alice}).status_code == 401
    assert client.post("/login", data={"token": new}).status_code == 302 and client.get("/").status_code == 200


def test_a_person_added_to_the_file_on_disk_signs_in_without_a_restart(fake: FakePagerDuty, tmp_path: Path) -> None:
    people = tmp_path / "people.tokens"
    tokens.add(people, "alice", 1000.0)
    client = people_app(fake, tmp_path)[0].test_client()
    carol = "pgr_" + "c" * 43
    with people.open("a") as file:  # edited by hand, in place
        file.write(f"carol sha256:{hashlib.sha256(carol.encode()).hexdigest()} 2026-12-03T14:29:33Z\n")
    made = client.post("/api/incidents", headers={"Authorization": f"Bearer {carol}"},
                       json={"title": "disk full", "severity": "high", "repo": "acme/db"})
    assert made.status_code == 201
    assert client.get("/api/audit", headers=AUTH).get_json()["entries"][0]["actor"] == "carol"


CARD_ROUTES = ("channels: []\nroutes:\n  - match: {repo: acme/pay}\n    service_id: PPAY001\n"
               "    escalation_policy_id: PEPPAY1\n  - match: {repo: acme/mobile}\n"
               "    routing_key: mobilekey0123456789abcdef0123456\n")


def cards(page: str) -> dict[str, str]:
    """Each project card's repo and the text it shows, tags dropped."""
    found = re.findall(r'<article class="project" data-repo="([^"]+)".*?</article>', page, re.S)
    bodies = re.findall(r'<article class="project".*?</article>', page, re.S)
    return {repo: html.unescape(" ".join(re.sub(r"<[^>]+>", " ", body).split()))
            for repo, body in zip(found, bodies, strict=True)}


def test_each_project_with_an_open_incident_has_a_card_with_the_oncall_of_its_route(fake: FakePagerDuty,
                                                                                   tmp_path: Path) -> None:
    """acme/pay's route names its own policy (Pat Payments on call), acme/db takes the default (Ada Oncall),
    acme/mobile's Events API route names no policy (unknown, and which key, never the key); each policy is
    asked once per page load, for the cards, the incidents and the default on-call together."""
    app = app_for(fake, tmp_path, channels=CARD_ROUTES, PAGERDUTY_EVENTS_URL=fake.url)  # type: ignore[attr-defined]
    backend = app.extensions["pagerules"].backend
    asked: list[str] = []
    real = backend.client.oncalls

    def oncalls(policy: str) -> list[dict[str, Any]]:
        asked.append(policy)
        if policy == "PEPPAY1":
            return [{"escalation_level": 1, "user": {"name": "Pat Payments", "email": "pat@example.com"}}]
        return real(policy)  # type: ignore[no-any-return]
    backend.client.oncalls = oncalls
    client = app.test_client()
    client.post("/login", data={"token": API_TOKEN})
    for title, repo in (("pay down", "acme/pay"), ("pay slow", "acme/pay"), ("db down", "acme/db"),
                        ("app crash", "acme/mobile")):
        assert trigger(client, title, "high", repo)["status"] == "created"
    page = client.get("/").get_data(as_text=True)
    shown = cards(page)
    assert list(shown) == ["acme/db", "acme/mobile", "acme/pay"]
    assert shown["acme/pay"].startswith("acme/pay · route 0 Pat Payments pat@example.com level 1 Why this route")
    assert shown["acme/db"].startswith("acme/db · default route Ada Oncall ada@example.com level 1 · Primary · "
                                       "until 2026-11-28 18:00 UTC")
    assert "no route matches repo=acme/db: the global settings" in shown["acme/db"]
    assert "sends to an Events API v2 integration (the routing key written at" in shown["acme/mobile"]
    assert "add escalation_policy_id to routes[1] to name whose on-call to show" in shown["acme/mobile"]
    assert "mobilekey0123456789abcdef0123456" not in page
    assert sorted(asked) == [POLICY, "PEPPAY1"]

    asked.clear()
    filtered = cards(client.get("/?repo=acme/pay").get_data(as_text=True))
    assert list(filtered) == ["acme/pay"] and sorted(asked) == [POLICY, "PEPPAY1"]


def test_a_card_says_when_pagerduty_cannot_answer_for_its_policy(fake: FakePagerDuty, tmp_path: Path) -> None:
    app = app_for(fake, tmp_path, channels=CARD_ROUTES)
    client = app.test_client()
    client.post("/login", data={"token": API_TOKEN})
    trigger(client, "pay down", "high", "acme/pay")
    fake.faults = {"count": 100, "status": 403}
    shown = cards(client.get("/").get_data(as_text=True))
    assert shown["acme/pay"].startswith("acme/pay · route 0 Could not ask PagerDuty: the API token may not GET")


def test_no_cards_without_open_incidents_and_a_broken_route_is_said(fake: FakePagerDuty, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = signed_in(fake, tmp_path)
    page = client.get("/").get_data(as_text=True)
    assert 'id="projects"' not in page and 'id="oncall-name">Ada Oncall' in page
    trigger(client, "db down", "high", "acme/db")

    def broken(config: Any) -> None:
        raise PageRulesError("pagerduty.yaml:3: routes[0]: names no target")
    monkeypatch.setattr(dashboard, "load_routes", broken)
    page = client.get("/").get_data(as_text=True)
    assert 'id="routes-error">The routes could not be read' in page and "routes[0]: names no target" in page
    assert "<article class=\"project\"" not in page and 'id="oncall-name">Ada Oncall' in page


@pytest.mark.parametrize(("given", "shown"), [("2026-12-04T09:00:00Z", "2026-12-04 09:00 UTC"),
                                              ("2026-12-04T10:30:00+01:00", "2026-12-04 09:30 UTC"),
                                              ("2026-12-04T09:00:00", "2026-12-04T09:00:00"), ("soon", "soon")])
def test_pagerduty_times_are_shown_in_utc(given: str, shown: str) -> None:
    assert dashboard.pd_time(given) == shown


def test_without_a_default_policy_the_page_says_so_and_asks_pagerduty_nothing_for_it(fake: FakePagerDuty,
                                                                                    tmp_path: Path) -> None:
    """An Events API default with no PAGERDUTY_ESCALATION_POLICY_ID: nobody to ask, said, never 'None' asked."""
    app = app_for(fake, tmp_path, channels=CARD_ROUTES, PAGERDUTY_ESCALATION_POLICY_ID="")
    assert app.extensions["pagerules"].config.escalation_policy_id is None
    backend = app.extensions["pagerules"].backend
    asked: list[str] = []
    real = backend.client.oncalls
    backend.client.oncalls = lambda policy: asked.append(policy) or real(policy)
    client = app.test_client()
    client.post("/login", data={"token": API_TOKEN})
    trigger(client, "pay down", "high", "acme/pay")
    trigger(client, "db down", "high", "acme/db")
    page = client.get("/").get_data(as_text=True)
    assert 'id="no-default-policy">PAGERDUTY_ESCALATION_POLICY_ID is not set: set it to name whose on-call' in page
    assert "PAGERDUTY_ESCALATION_POLICY_ID is not set" in cards(page)["acme/db"]
    assert re.findall(r'on call: <span class="oncall-for">([^<]+)</span>', page) == ["Cy Payments", "unknown"]
    assert asked == ["PEPPAY1"]


def test_the_page_lists_the_most_severe_first_and_counts_the_rest(fake: FakePagerDuty, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """With more open incidents than a page lists: the first ones in the list's order, how many are not
    listed, and cards only for the projects of the incidents listed once there are too many projects."""
    monkeypatch.setattr(dashboard, "PAGE_ROWS", 3)
    monkeypatch.setattr(dashboard, "MAX_CARDS", 2)
    client, clock = clocked(fake, tmp_path)
    keys = {}
    for title, severity, repo in (("old low", "low", "acme/a"), ("crit 1", "critical", "acme/b"),
                                  ("high 1", "high", "acme/c"), ("crit 2", "critical", "acme/d"),
                                  ("medium 1", "medium", "acme/a"), ("high 2", "high", "acme/b")):
        keys[title] = trigger(client, title, severity, repo)["incident_key"]
        clock.now += 10
    page = client.get("/").get_data(as_text=True)
    assert rows(page) == [keys["crit 1"], keys["crit 2"], keys["high 1"]]
    assert "· the first 3 of 6, most severe first, then oldest" in page
    assert "3 more open incidents are not listed" in page
    assert list(cards(page)) == ["acme/b", "acme/d"]  # 4 projects: the 2 first listed (b, d, c), by name
    assert "2 more projects have open incidents" in page and 'id="projects"' not in page
    assert '<option value="acme/a" >' in page  # the filter still offers every project with an open incident

    critical = client.get("/?severity=critical").get_data(as_text=True)  # 2 match: all listed, both cards
    assert rows(critical) == [keys["crit 1"], keys["crit 2"]] and "· 2 of 6," in critical
    assert list(cards(critical)) == ["acme/b", "acme/d"] and 'id="more-incidents"' not in critical
    high = client.get("/?repo=acme/b").get_data(as_text=True)
    assert rows(high) == [keys["crit 1"], keys["high 2"]] and 'id="more-projects"' not in high

    monkeypatch.setattr(dashboard, "PAGE_ROWS", 1)
    narrowed = client.get("/?severity=high").get_data(as_text=True)
    assert rows(narrowed) == [keys["high 1"]]
    assert "· the first 1 of 2 that match (6 open)," in narrowed
    assert "1 more open incidents that match are not listed" in narrowed
