"""The demo page and the API docs in a real headless browser (Debian's chromium + chromedriver,
driven by selenium), against the real server, with no network beyond the app: every host but
127.0.0.1 resolves to nothing, so anything the page would load from a CDN fails.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import start_server, stop_server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # offline but for the app
]
USER = "u5"
ROWS = "#recs tbody tr"


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory) -> Iterator[str]:
    proc, url = start_server(tiny_bundle, tmp_path_factory.mktemp("browser-server"))
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(
                f"{path} is missing: apt-get install chromium chromium-driver (.ci/run does)"
            )
    profile = tempfile.mkdtemp(prefix="genrec-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver: WebDriver, condition, timeout: float = 30):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def shown(driver: WebDriver) -> list[tuple[str, str]]:
    """(item ID, title) of the recommendations on the page, top first."""
    return [
        (row.get_attribute("data-item-id"), row.find_element(By.CSS_SELECTOR, "td.title span").text)
        for row in driver.find_elements(By.CSS_SELECTOR, ROWS)
    ]


def newest_in_history(driver: WebDriver) -> str | None:
    items = driver.find_elements(By.CSS_SELECTOR, "#history li")
    return items[0].get_attribute("data-item-id") if items else None


def loaded_only_from(driver: WebDriver, origin: str) -> list[str]:
    """URLs the page loaded from anywhere but `origin` (should be none)."""
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [u for u in [driver.current_url, *urls] if not u.startswith(origin)]


def test_demo_page_shows_a_users_recommendations_and_follows_a_click(server, browser, tmp_path):
    api = httpx.Client(base_url=server, timeout=30)
    expected = api.post("/v1/recommend", json={"user_id": USER, "k": 10}).json()["items"]
    browser.get(f"{server}/?user={USER}")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ROWS)) == 10)
    assert shown(browser) == [(i["item_id"], i["title"]) for i in expected]
    meta = browser.find_element(By.ID, "recs-meta").text
    assert "beam width 64" in meta and "server" in meta and " ms" in meta
    history = api.get(f"/v1/users/{USER}/history").json()["items"]
    wait(browser, lambda d: newest_in_history(d) == history[-1])
    # the live strip follows the service
    wait(browser, lambda d: d.find_element(By.ID, "live-model").text != "–")
    version = api.get("/readyz").json()["model_version"]
    assert browser.find_element(By.ID, "live-model").text == version

    # click the third item: posted as an event (the page asks for the write key on the 401)
    clicked = expected[2]["item_id"]
    version_before = browser.find_element(By.TAG_NAME, "body").get_attribute("data-recs-version")
    browser.find_elements(By.CSS_SELECTOR, ROWS)[2].click()
    wait(browser, lambda d: d.find_element(By.ID, "key-dialog").get_attribute("open") is not None)
    browser.find_element(By.ID, "key-input").send_keys("test-key")
    browser.find_element(By.ID, "key-save").click()
    wait(
        browser,
        lambda d: (
            d.find_element(By.TAG_NAME, "body").get_attribute("data-recs-version") != version_before
        ),
    )
    after = shown(browser)
    assert api.get(f"/v1/users/{USER}/history").json()["items"][-1] == clicked
    assert clicked not in [item for item, _ in after]  # now seen, so never recommended
    assert after != [(i["item_id"], i["title"]) for i in expected]
    now = api.post("/v1/recommend", json={"user_id": USER, "k": 10}).json()["items"]
    assert after == [(i["item_id"], i["title"]) for i in now]
    wait(browser, lambda d: newest_in_history(d) == clicked)
    assert browser.execute_script("return localStorage.getItem('genrec.writeKey')") == "test-key"
    assert loaded_only_from(browser, server) == []
    assert browser.save_screenshot(str(tmp_path / "demo.png"))
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_title_search_builds_a_history_without_a_user(server, browser):
    browser.get(f"{server}/")
    box = browser.find_element(By.ID, "search")
    box.send_keys("Item 1")  # synthetic titles: "Item 0" … "Item 119"
    done = '#search-results[data-query="Item 1"] li'
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, done))
    first = browser.find_element(By.CSS_SELECTOR, done)
    title = first.find_element(By.CSS_SELECTOR, ".title").text
    assert title.startswith("Item 1")
    first.find_element(By.CSS_SELECTOR, "button.add").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ROWS)) == 10)
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#history li .title").text == title)
    assert "user" not in browser.current_url


# ReDoc's bundle links its vendor's logo from the vendor's site: a broken image offline, the
# only request of either docs page that leaves the app (the scripts and styles do not).
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.mark.parametrize(
    ("path", "rendered", "elsewhere"),
    [("/docs", ".opblock", []), ("/redoc", "[data-section-id]", [REDOC_LOGO])],
)
def test_api_docs_render_their_operations_offline(server, browser, path, rendered, elsewhere):
    browser.get(f"{server}{path}")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, rendered))
    wait(browser, lambda d: "/v1/recommend" in d.find_element(By.TAG_NAME, "body").text)
    assert loaded_only_from(browser, server) == elsewhere
