"""Shared browser-test machinery: ``streamlit run Home.py`` on a free loopback port against a
seeded demo database, driven with Playwright through Debian's Chromium (never a browser
Playwright downloads), plus small helpers (log in, wait for a rerun to finish, screenshot).

Skipped only where /usr/bin/chromium is missing outside CI; in CI (CI=true) it must run.

Fixtures: ``app_url`` serves the shared (read-mostly) demo database; ``writable_app_url`` serves a
demo database and artifact folder of the test module's own, for tests that write. ``browser`` is
one Chromium per module; each test opens its own page (``new_page``) so cookies never leak.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import PROJECT_ROOT
from core.demo import seed_demo
from db.migrate import upgrade
from db.session import make_engine, session_factory

BROWSER_RERUNS = 2
"""A browser test that times out waiting for the page is run again, up to twice: on the 2-core
CI machine a Streamlit rerun or a dropdown occasionally never settles within the wait. Only
Playwright's TimeoutError is retried; a failed assertion fails at once."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.flaky(reruns=BROWSER_RERUNS, reruns_delay=2,
                                              only_rerun=["TimeoutError"]))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[pytest.TestReport]:
    """Remember each phase's report on the test, so a fixture can tell that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "report_call", None)
    return report is None or report.failed


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = PROJECT_ROOT / "screenshots"
STARTUP_SECONDS = 45
PAGE_TIMEOUT_MS = 60_000
"""A ceiling for each wait (the 2-core CI box may be busy), never a timing assertion."""
VIEWPORT = {"width": 1400, "height": 1800}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing in CI: scripts/ensure-chromium.sh installs it")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); required in CI")
    return str(CHROMIUM)


def serve(database_url: str, log: Path, **env: str) -> Iterator[str]:
    """Run the app against `database_url` until the generator is closed; yield its URL."""
    port = _free_port()
    environ = {**os.environ, "DATABASE_URL": database_url, "DEMO_MODE": "true", **env}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "Home.py",
             "--server.headless=true", "--server.address=127.0.0.1", f"--server.port={port}",
             "--browser.gatherUsageStats=false", "--server.fileWatcherType=none",
             "--global.developmentMode=false"],
            cwd=PROJECT_ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer in {STARTUP_SECONDS}s:\n{log.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def app_url(demo_db_url: str, chromium_path: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[str]:
    """The app on the shared demo database (do not write to it)."""
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    yield from serve(demo_db_url, log)


@pytest.fixture(scope="module")
def writable_app(chromium_path: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[dict[str, Any]]:
    """The app on a freshly seeded demo database and artifact folder of this module's own:
    ``{"url", "database_url", "log"}`` (the log is the server's stdout and stderr)."""
    folder = tmp_path_factory.mktemp("walk")
    database_url = f"sqlite:///{folder / 'demo.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        seed_demo(session)
    engine.dispose()
    log = folder / "streamlit.log"
    artifacts = folder / "artifacts"
    artifacts.mkdir()
    for url in serve(database_url, log, ARTIFACTS_URL=str(artifacts)):
        yield {"url": url, "database_url": database_url, "log": log}


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


_PAGES_OF_THIS_TEST: list[Any] = []


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed test leaves screenshots/failed-<test>-<n>.png of each page it opened."""
    _PAGES_OF_THIS_TEST.clear()
    yield
    if failed(request):
        for n, page in enumerate(_PAGES_OF_THIS_TEST):
            if not page.is_closed():
                shoot(page, f"failed-{request.node.name}-{n}")
    _PAGES_OF_THIS_TEST.clear()


def new_page(browser: Any) -> Any:
    """A page in a fresh browser context (no cookies), 1400 px wide."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    _PAGES_OF_THIS_TEST.append(page)
    return page


def settle(page: Any) -> None:
    """Wait until Streamlit has finished running the script (no 'Running...' indicator) and
    every plotly chart has drawn its SVG."""
    page.wait_for_timeout(300)
    page.wait_for_function(  # the page is drawn (every page has a title), the run is over
        "() => document.querySelector('[data-testid=\"stMain\"] h1')"
        " && !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')",  # lazy elements loaded
        timeout=PAGE_TIMEOUT_MS,
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
        ".every(c => c.querySelector('svg.main-svg'))",
        timeout=PAGE_TIMEOUT_MS,
    )


def login_form(page: Any) -> None:
    """Wait for the login form after a log-out or a reload. While the run that logs out is
    drawing, the old form and the new one can both be on the page for a moment (a wait on
    one "Username" box then fails in Playwright's strict mode, seen once in a full CI run);
    exactly one must remain."""
    page.get_by_role("textbox", name="Username").first.wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll('input[aria-label=\"Username\"]').length === 1",
        timeout=PAGE_TIMEOUT_MS,
    )


def login(page: Any, base_url: str, user: str = "demo-editor", path: str = "") -> None:
    """Open `base_url` + `path` and sign in through the login form."""
    page.goto(base_url + path)
    try:
        login_form(page)
        settle(page)  # typing into a form that is still being drawn can be lost
        for _attempt in range(3):
            # On a slow machine the cookie component's late answer can redraw the form after
            # settle() and empty the boxes (seen in full runs): type again until both hold.
            page.get_by_role("textbox", name="Username").fill(user)
            page.get_by_role("textbox", name="Password").fill(user)
            page.wait_for_timeout(300)
            if (page.get_by_role("textbox", name="Username").input_value() == user
                    and page.get_by_role("textbox", name="Password").input_value() == user):
                break
            login_form(page)
        page.get_by_role("button", name="Login").click()
        page.get_by_text("Signed in as").wait_for()
    except Exception:
        shoot(page, "login-failed")
        raise
    settle(page)


def main_text(page: Any) -> str:
    """The visible text of the main area (not the sidebar)."""
    return str(page.locator('[data-testid="stMain"]').inner_text())


def grid_text(page: Any, index: int = 0) -> str:
    """The cells of a dataframe joined by " | " (the grid draws on a canvas; this reads its
    accessibility table, which holds only the columns that fit on screen)."""
    frame = page.locator('[data-testid="stDataFrame"]').nth(index)
    frame.locator("table").first.wait_for(state="attached")
    return str(frame.locator("table").first.evaluate(
        "t => [...t.querySelectorAll('th, td')].map(c => c.textContent).join(' | ')"))


def table_text(page: Any, index: int = 0) -> str:
    """The cells of a static table (``st.table``) joined by " | "."""
    table = page.locator('[data-testid="stTable"]').nth(index)
    table.locator("table").first.wait_for(state="attached")
    return str(table.locator("table").first.evaluate(
        "t => [...t.querySelectorAll('th, td')].map(c => c.textContent).join(' | ')"))


def open_page(page: Any, title: str) -> None:
    """Click a page in the sidebar navigation and wait for it."""
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_role("link", name=re.compile(rf"^\W*{re.escape(title)}$")).click()
    slug = title.lower().replace(" ", "_")
    page.wait_for_url(re.compile(rf"/{slug}(\?.*)?$"))
    settle(page)


def pick_option(page: Any, combobox: Any, name: str | re.Pattern[str], exact: bool = False
                ) -> None:
    """Open a selectbox and click its option `name`. On a busy machine a click can land while
    the widget is still being drawn, leaving it focused but closed, or the list can close
    under the pointer (the option is detached): each of up to 3 attempts opens the list (by
    click, then keyboard, then click) and clicks the option within a sixth of the page wait."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    option = page.get_by_role("option", name=name, exact=exact).first
    wait = PAGE_TIMEOUT_MS // 6
    for attempt in range(3):
        if attempt == 1:
            combobox.focus()
            page.keyboard.press("ArrowDown")
        else:
            combobox.click()
        try:
            option.wait_for(timeout=wait)
            option.click(timeout=wait)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
            page.wait_for_timeout(500)


def assert_no_exception(page: Any, where: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, f"{where}: exception shown"


def shoot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as screenshots/<name>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / f"{name}.png"
    # the main area scrolls inside the window: grow the window to the page's height to see it all
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                           "'[data-testid=\"stMain\"], [data-testid=\"stMainBlockContainer\"]')]"
                           ".map(e => e.scrollHeight), 0)")
    size = page.viewport_size
    if size and height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 12_000)})
        page.wait_for_timeout(400)
    try:
        page.screenshot(path=str(shot), full_page=True)
    finally:
        if size:
            page.set_viewport_size(size)
    return shot
