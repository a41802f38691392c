"""The dashboard in a real browser: headless Chromium (Debian's chromium and chromium-driver, which
.ci/run installs) signs in, sees who is on call, clicks Acknowledge; the fake PagerDuty gets the
acknowledgment and the audit trail shows it. The screenshot goes to docs/dashboard.png only with
PAGERULES_UPDATE_SCREENSHOT=1, so an ordinary test run leaves the tracked file alone."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import ROOT
from fake_pagerduty import FakePagerDuty
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from test_web_app import API_TOKEN, AUTH, app_for
from waitress.server import create_server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


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
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_sign_in_see_oncall_and_acknowledge(tmp_path: Path, browser: webdriver.Chrome) -> None:
    fake = FakePagerDuty()
    fake.url = fake.start()  # type: ignore[attr-defined]
    server = create_server(app_for(fake, tmp_path), host="127.0.0.1", port=0)
    base = f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    threading.Thread(target=server.run, daemon=True).start()
    try:
        line = requests.post(f"{base}/api/incidents", headers=AUTH, timeout=10, json={
            "title": "checkout p99 above 4s", "severity": "critical", "repo": "acme/shop"}).json()
        requests.post(f"{base}/api/incidents", headers=AUTH, timeout=10,
                      json={"title": "search index stale", "severity": "high", "repo": "acme/search"})
        browser.get(base + "/")
        browser.find_element(By.ID, "token").send_keys(API_TOKEN)
        browser.find_element(By.ID, "sign-in").click()
        wait = WebDriverWait(browser, 15)
        wait.until(expected_conditions.presence_of_element_located((By.ID, "oncall-name")))
        assert browser.find_element(By.ID, "oncall-name").text == "Ada Oncall"
        shot = ROOT / "docs" / "dashboard.png" if os.environ.get("PAGERULES_UPDATE_SCREENSHOT") == "1" \
            else tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        button = browser.find_element(By.CSS_SELECTOR, f"button.ack[data-key='{line['incident_key']}']")
        button.click()
        wait.until(expected_conditions.presence_of_element_located((By.ID, "notice")))
        assert browser.find_element(By.ID, "notice").text == f"acknowledged: {line['incident_key']}"
        puts = [c for c in fake.calls("PUT") if c["path"] == f"/incidents/{line['incident_id']}"]
        assert [c["body"]["incident"]["status"] for c in puts] == ["acknowledged"]
        audit = browser.find_element(By.ID, "audit").text
        assert f"dashboard acknowledged {line['incident_key']}" in audit
    finally:
        server.close()  # type: ignore[union-attr]
        fake.stop()
