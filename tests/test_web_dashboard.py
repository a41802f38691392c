"""The dashboard (engine.web.dashboard): sign-in by form with a rate limit and a same-origin check, the
session cookie, the CSRF token on every button, and the page refreshed from PagerDuty on load."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fake_pagerduty import FakePagerDuty
from test_web_app import API_TOKEN, AUTH, Clock, app_for, open_one


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
    assert "That token is not right." in response.get_data(as_text=True)
    assert "dashboard sign-in with a wrong token from 10.2.3.4" in caplog.text and "guess" not in caplog.text


def test_the_sign_in_form_is_served(fake: FakePagerDuty, tmp_path: Path) -> None:
    page = app_for(fake, tmp_path).test_client().get("/login")
    assert page.status_code == 200
    assert '<input type="password" name="token" id="token"' in page.get_data(as_text=True)


def test_each_incident_shows_its_age_on_the_clock_that_opened_it(fake: FakePagerDuty, tmp_path: Path) -> None:
    """The age is now minus opened_at, both read from the backend's clock (here one moved by hand)."""
    app = app_for(fake, tmp_path)
    clock = Clock(1_000_000.0)
    app.extensions["pagerules"].backend.clock = clock
    client = app.test_client()
    client.post("/login", data={"token": API_TOKEN})
    open_one(client)
    ages = []
    for seconds in (0, 59, 60, 3599, 3600, 86399, 86400 * 3):
        clock.now = 1_000_000.0 + seconds
        ages.append(re.findall(r"<td>(\d+ (?:min|h|d))</td>", client.get("/").get_data(as_text=True)))
    assert ages == [["0 min"], ["0 min"], ["1 min"], ["59 min"], ["1 h"], ["23 h"], ["3 d"]]
