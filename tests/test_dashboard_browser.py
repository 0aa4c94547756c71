"""The dashboard in a real browser: Debian's chromium, headless, driven by selenium through
chromium-driver (`make tools` installs both). The endpoints table, a chart, and a dead
letter replayed from the page and delivered; the page's weight and render time printed."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

import shahihooks
from shahihooks import dead
from shahihooks.settings import Settings
from tests.conftest import wait_until
from tests.receiver import Receiver
from tests.test_dashboard import start

pytestmark = pytest.mark.usefixtures("worker")

TIMING = """
const n = performance.getEntriesByType('navigation')[0];
return {bytes: n.transferSize, body: n.encodedBodySize,
        dom_ms: n.domContentLoadedEventEnd - n.startTime, load_ms: n.loadEventEnd - n.startTime,
        resources: performance.getEntriesByType("resource").map(r => r.name)};
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium, "chromium: run `make tools`"
    assert driver, "chromium-driver: run `make tools`"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    chrome.set_page_load_timeout(60)
    try:
        yield chrome
    finally:
        chrome.quit()


def note(browser: webdriver.Chrome) -> str:
    """The page's note, or "" while the form's POST and its redirect are still loading (the
    old page has no note, and its elements go stale as the new one replaces it)."""
    try:
        return " ".join(e.text for e in browser.find_elements(By.ID, "note"))
    except StaleElementReferenceException:
        return ""


def load(browser: webdriver.Chrome, url: str) -> dict[str, Any]:
    """Open `url` and wait for it to load; its navigation timing."""
    browser.get(url)
    wait_until(
        lambda: browser.execute_script("return document.readyState") == "complete",
        what=f"{url} loaded",
    )
    wait_until(lambda: browser.execute_script(TIMING)["load_ms"] > 0, what="load timing")
    timing: dict[str, Any] = browser.execute_script(TIMING)
    return timing


def test_the_dashboard_in_a_browser_replays_a_dead_letter(
    settings: Callable[..., Settings], receiver: Receiver, browser: webdriver.Chrome
) -> None:
    tag = uuid.uuid4().hex[:8]
    good, flaky = f"/good-{tag}", f"/flaky-{tag}"
    receiver.rule(flaky, lambda n: 500 if n <= 4 else 200)  # dies after 4, then recovers
    s = settings(urls=(receiver.url(good), receiver.url(flaky)))
    shahihooks.emit("ticket.created", {"ticket_id": 1})
    receiver.wait_for(good, 1)
    wait_until(lambda: len(dead.list_ids(s)) == 1, timeout=60, what="a dead letter")
    (dead_id,) = dead.list_ids(s)
    server, base = start(s, refresh_s=300)
    try:
        timing = load(browser, base + "/")
        rows = browser.find_elements(By.CSS_SELECTOR, "#endpoints tr")
        listed = "\n".join(r.text for r in rows)
        assert receiver.url(good) in listed
        assert receiver.url(flaky) in listed
        assert timing["resources"] == [], "nothing loaded beside the page"
        print(
            f"\ndashboard / in chromium: {timing['bytes']} bytes transferred "
            f"({timing['body']} body), DOMContentLoaded {timing['dom_ms']:.1f} ms, "
            f"load {timing['load_ms']:.1f} ms"
        )

        browser.find_element(By.LINK_TEXT, receiver.url(good)).click()
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "svg.chart"), what="a chart")
        chart = browser.find_elements(By.CSS_SELECTOR, "svg.chart")[0]
        assert chart.size["width"] > 100
        assert chart.size["height"] > 50
        assert chart.find_elements(By.TAG_NAME, "rect"), "bars drawn"
        timing = load(browser, browser.current_url)
        print(
            f"endpoint page in chromium: {timing['bytes']} bytes transferred, "
            f"load {timing['load_ms']:.1f} ms"
        )

        load(browser, base + "/dead")
        row = next(
            r for r in browser.find_elements(By.CSS_SELECTOR, "#dead tr") if dead_id in r.text
        )
        row.find_element(By.CSS_SELECTOR, "button.replay").click()
        wait_until(lambda: "replayed " + dead_id in note(browser), what="the replay's note")
        replayed = receiver.wait_for(flaky, 5)[-1]
        assert replayed.header("webhook-id") == dead_id
        assert replayed.header("x-shahi-assist-attempt") == "1"
        wait_until(lambda: dead.get(dead_id, s) is None, what="the dead letter gone")
    finally:
        server.shutdown()
        server.server_close()
