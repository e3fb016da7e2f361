"""Browser tests: Debian's Chromium driven by Playwright for Python, against a real console.

The console runs in this process as a real cheroot server (HTTP and HTTPS on free ports of
127.0.0.1) on a temporary data home made by `shared.home.initialise`. No browser is
downloaded: Playwright launches /usr/bin/chromium (`.ci/run` installs Debian's package).
Screenshots go to test-artifacts/ at the repository root.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path(os.environ.get("MAILMOAT_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_PASSWORD = "Browser-pass1"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives headless Chromium (needs /usr/bin/chromium)")


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    from console.serve import ConsoleServer
    from shared.home import initialise
    from shared.paths import DataHome

    home = DataHome(tmp_path_factory.mktemp("browser") / "home")
    initialise(home, ADMIN_PASSWORD)
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0)
    server.start()
    poller = threading.Thread(target=server.serve_until_stopped, daemon=True)
    poller.start()
    yield server
    server.request_stop()
    poller.join(5)
    server.stop()


class _Chromium:
    """One Chromium per module, launched again if it has gone: on a loaded machine Chromium
    has died between tests (TargetClosedError), and every later test of the module then
    failed at new_context, for no fault of the console."""

    def __init__(self, playwright):
        self._playwright = playwright
        self._browser = None

    def connected(self):
        if self._browser is None or not self._browser.is_connected():
            self._browser = self._playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        return self._browser

    def close(self) -> None:
        if self._browser is not None and self._browser.is_connected():
            self._browser.close()


@pytest.fixture(scope="module")
def _chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = _Chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def browser(_chromium):
    return _chromium.connected()


@pytest.fixture
def page(browser, console_server):
    context = browser.new_context(base_url=console_server.urls()["http"].rstrip("/"),
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    yield page
    context.close()


def log_on(page, password: str = ADMIN_PASSWORD) -> None:
    page.goto("/")
    page.fill("#username", "admin")
    page.fill("#password", password)
    page.click("input[type=submit][value='Log On']")
    page.wait_for_selector("h1:has-text('Status')")


@pytest.fixture
def loopback_only(page):
    """The page, with any request that would leave 127.0.0.1 aborted and failing the test."""
    escaped: list[str] = []

    def guard(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            escaped.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    yield page
    assert escaped == []


def stored_settings(server) -> dict:
    """The settings as stored in the console server's data home (what a save really wrote)."""
    from tests.support.core import stored_settings as in_home
    return in_home(server.home)


def open_tab(page, area: str, tab: str) -> None:
    """Open a console area from the left navigation (its <h1> is the area's name), then one
    of its tabs."""
    page.click(f"nav.left-pane >> text={area}")
    page.wait_for_selector(f"h1:has-text('{area}')")
    page.click(f"ul.tabs >> text={tab}")
    page.wait_for_selector(f"ul.tabs a[aria-current=page]:text-is('{tab}')")


def save(page, *, reload: bool = True) -> None:
    """Press Save Changes, wait for the confirmation and (by default) reload the page, so
    what the test reads next comes from the server."""
    page.click("#save")
    page.wait_for_selector("text=Changes saved.")
    if reload:
        page.reload()
