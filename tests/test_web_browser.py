"""The dashboard in a real browser: headless Chromium (Debian's chromium and chromium-driver, which
.ci/run installs) signs in with a person's named token, sees who is signed in and who is on call for
each project, filters by project, keeps a half-typed message through the refresh, clicks Acknowledge,
resolves with a message from the keyboard and finds it in the history; the fake PagerDuty gets each call
and the audit trail names the person. The screenshot goes to docs/dashboard.png only with
PAGERULES_UPDATE_SCREENSHOT=1, so an ordinary test run leaves the tracked file alone."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from builders import AUTH, ROOT, app_for
from fake_pagerduty import FakePagerDuty
from pg_server import reaped
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from waitress.server import create_server

from engine.web import tokens

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SHOP_ROUTE = ("channels: []\nroutes:\n  - match: {repo: acme/shop}\n    service_id: PSHOP01\n"
              "    escalation_policy_id: PEPSHOP\n")
SHOP_ONCALL = [{"escalation_level": 1, "user": {"name": "Sam Storefront", "email": "sam@example.com"},
                "schedule": {"summary": "Shop primary"}, "end": "2026-12-04T09:00:00Z"}]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert Path(binary).exists(), f"{binary} is missing: install Debian's chromium and chromium-driver " \
                                      "(bash .ci/run does)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1200,900", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    # chromedriver and the Chromium it starts get a process group of their own, which a watchdog kills
    # should this process die without quitting the driver (a crashed xdist worker), so no browser is left.
    service = Service(CHROMEDRIVER, popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=options)
    with reaped(["kill", "-KILL", "--", f"-{service.process.pid}"]):
        yield driver
        driver.quit()


def test_sign_in_filter_acknowledge_resolve_and_history(tmp_path: Path, browser: webdriver.Chrome) -> None:
    fake = FakePagerDuty()
    fake.url = fake.start()  # type: ignore[attr-defined]
    people = tmp_path / "people.tokens"
    alice = tokens.add(people, "alice", 1000.0)
    app = app_for(fake, tmp_path, channels=SHOP_ROUTE, PAGERULES_TOKENS_FILE=str(people))
    real = app.extensions["pagerules"].backend.client.oncalls
    app.extensions["pagerules"].backend.client.oncalls = lambda policy: SHOP_ONCALL if policy == "PEPSHOP" \
        else real(policy)
    server = create_server(app, host="127.0.0.1", port=0)
    base = f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    threading.Thread(target=server.run, daemon=True).start()
    try:
        shop = requests.post(f"{base}/api/incidents", headers=AUTH, timeout=10, json={
            "title": "checkout p99 above 4s", "severity": "critical", "repo": "acme/shop"}).json()
        search = requests.post(f"{base}/api/incidents", headers=AUTH, timeout=10,
                               json={"title": "search index stale", "severity": "high", "repo": "acme/search"}).json()
        browser.get(base + "/")
        browser.find_element(By.ID, "token").send_keys(alice)
        browser.find_element(By.ID, "sign-in").click()
        wait = WebDriverWait(browser, 15)
        wait.until(expected_conditions.presence_of_element_located((By.ID, "oncall-name")))
        assert browser.find_element(By.ID, "oncall-name").text == "Ada Oncall"
        assert browser.find_element(By.ID, "signed-in-as").text == "alice"
        assert oncall_cards(browser) == {"acme/search": "Ada Oncall", "acme/shop": "Sam Storefront"}
        assert keys_listed(browser) == [shop["incident_key"], search["incident_key"]]  # critical first
        assert browser.find_element(By.CSS_SELECTOR, "tr.incident .title").text == "checkout p99 above 4s"

        Select(browser.find_element(By.ID, "filter-repo")).select_by_visible_text("acme/search")
        browser.find_element(By.ID, "filter-apply").click()
        wait.until(expected_conditions.url_contains("repo=acme%2Fsearch"))
        assert keys_listed(browser) == [search["incident_key"]]
        browser.find_element(By.ID, "filter-clear").click()
        wait.until(lambda b: len(keys_listed(b)) == 2)

        kept_while_typing(browser, wait, shop["incident_key"])

        browser.find_element(By.CSS_SELECTOR, f"button.ack[data-key='{shop['incident_key']}']").click()
        wait.until(expected_conditions.presence_of_element_located((By.ID, "notice")))
        assert browser.find_element(By.ID, "notice").text == f"acknowledged: {shop['incident_key']}"
        puts = [c for c in fake.calls("PUT") if c["path"] == f"/incidents/{shop['incident_id']}"]
        assert [c["body"]["incident"]["status"] for c in puts] == ["acknowledged"]
        assert f"alice acknowledged {shop['incident_key']}" in browser.find_element(By.ID, "audit").text
        status = browser.find_element(By.CSS_SELECTOR, f"tr.incident[data-key='{shop['incident_key']}'] td.status")
        assert status.text.startswith("acknowledged\nby alice just now")
        acked_at = status.find_element(By.TAG_NAME, "time")
        assert str(acked_at.get_attribute("title")).endswith(" UTC")
        assert str(acked_at.get_attribute("datetime")).endswith("Z")
        shot = ROOT / "docs" / "dashboard.png" if os.environ.get("PAGERULES_UPDATE_SCREENSHOT") == "1" \
            else tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

        field = browser.find_element(By.CSS_SELECTOR, f"input.message[data-key='{search['incident_key']}']")
        field.send_keys("reindexed by hand", Keys.ENTER)  # the keyboard alone sends the form
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "notice"), "resolved: "))
        assert browser.find_element(By.ID, "notice").text == f"resolved: {search['incident_key']}"
        assert fake.incidents[search["incident_id"]]["status"] == "resolved"
        notes = fake.calls("POST", f"/incidents/{search['incident_id']}/notes")
        assert [n["body"]["note"]["content"] for n in notes] == ["Resolved by alice via pagerules: reindexed by hand"]
        assert keys_listed(browser) == [shop["incident_key"]]

        browser.find_element(By.LINK_TEXT, "History").click()
        wait.until(expected_conditions.presence_of_element_located((By.ID, "history")))
        row = browser.find_element(By.CSS_SELECTOR, f"tr.resolution[data-key='{search['incident_key']}']")
        assert row.find_element(By.CSS_SELECTOR, ".resolved-by").text == "alice"
        audit = requests.get(f"{base}/api/audit", headers=AUTH, timeout=10).json()["entries"]
        assert [(e["actor"], e["action"]) for e in audit][:2] == [("alice", "resolved"), ("alice", "acknowledged")]
        assert alice not in browser.page_source and alice not in str(audit)
        assert row.find_element(By.CSS_SELECTOR, ".message").text == "reindexed by hand"
        assert row.find_element(By.CSS_SELECTOR, ".title").text == "search index stale"
    finally:
        server.close()  # type: ignore[union-attr]
        fake.stop()


def oncall_cards(browser: webdriver.Chrome) -> dict[str, str]:
    return {str(card.get_attribute("data-repo")): card.find_element(By.CSS_SELECTOR, ".project-oncall").text
            for card in browser.find_elements(By.CSS_SELECTOR, "#oncall article.project")}


def keys_listed(browser: webdriver.Chrome) -> list[str]:
    return [row.get_attribute("data-key") or "" for row in browser.find_elements(By.CSS_SELECTOR, "tr.incident")]


def kept_while_typing(browser: webdriver.Chrome, wait: WebDriverWait, key: str) -> None:  # type: ignore[type-arg]
    """The 30 s refresh (called here at once) leaves a half-typed message alone; a reload by hand restores it
    from sessionStorage; with the field empty and not focused, the refresh reloads the page."""
    field = browser.find_element(By.CSS_SELECTOR, f"input.message[data-key='{key}']")
    field.send_keys("rolled back")
    browser.execute_script("window.notReloaded = true;")
    assert browser.execute_script("return window.pagerulesRefresh();") is False
    assert browser.execute_script("return window.notReloaded === true;") is True
    assert field.get_attribute("value") == "rolled back"
    browser.refresh()
    field = wait.until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, f"input.message[data-key='{key}']")))
    assert field.get_attribute("value") == "rolled back"
    field.clear()
    browser.execute_script("arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input'));"
                           "arguments[0].blur(); window.notReloaded = true;", field)
    assert browser.execute_script("return window.pagerulesRefresh();") is True
    wait.until(expected_conditions.staleness_of(field))
    wait.until(expected_conditions.presence_of_element_located((By.ID, "oncall-name")))
    assert browser.execute_script("return window.notReloaded === undefined;") is True
