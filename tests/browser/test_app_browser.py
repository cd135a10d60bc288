"""The whole app in a real browser: ``streamlit run Home.py`` on a free loopback port against a
seeded demo SQLite database, driven with Playwright through Debian's Chromium (never a browser
Playwright downloads). Logs in as demo-editor, opens every page of the navigation, checks key
text on each and saves a screenshot per page into ``screenshots/`` (git-ignored).

Skipped only where /usr/bin/chromium is missing outside CI; in CI (CI=true) it must run.
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

import pytest

from core.config import PROJECT_ROOT
from ui.navigation import PAGES

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = PROJECT_ROOT / "screenshots"
STARTUP_SECONDS = 45
PAGE_TIMEOUT_MS = 60_000
"""A ceiling for each wait (the 2-core CI box may be busy), never a timing assertion."""

KEY_TEXT: dict[str, list[str]] = {
    "Overview": ["Needs attention", "Running"],
    "Registry": ["Experiment registry", "Audit history"],
    "Backlog": ["Backlog", "Ranked ideas", "Knowledge base"],
    "Planner": ["Experiment planner", "users a day you can detect a", "Power against sample size"],
    "Results": ["Results", "Decisions", "checkout_conversion", "significant"],
    "Reports": ["Reports", "Past reports", "Portfolio export"],
}
"""Visible text each page must show with the demo data (text inside a dataframe is drawn on a
canvas, so it is not used). A page registered later needs at least its title."""

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing in CI: scripts/ensure-chromium.sh installs it")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); required in CI")
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def app_url(demo_db_url: str, chromium_path: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[str]:
    """Streamlit serving Home.py on 127.0.0.1:<free port> against the seeded demo database."""
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = {**os.environ, "DATABASE_URL": demo_db_url, "DEMO_MODE": "true"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "Home.py",
             "--server.headless=true", "--server.address=127.0.0.1", f"--server.port={port}",
             "--browser.gatherUsageStats=false", "--server.fileWatcherType=none",
             "--global.developmentMode=false"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
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


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until Streamlit has finished running the script (no 'Running...' indicator)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=PAGE_TIMEOUT_MS,
    )


def _check_page(page, title: str) -> None:  # type: ignore[no-untyped-def]
    main = page.locator('[data-testid="stMain"]')
    for text in KEY_TEXT.get(title, [title]):
        main.get_by_text(text, exact=False).first.wait_for(state="visible",
                                                           timeout=PAGE_TIMEOUT_MS)
    _settle(page)
    page.wait_for_function(  # every plotly chart has drawn its SVG before the screenshot
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
        ".every(c => c.querySelector('svg.main-svg'))",
        timeout=PAGE_TIMEOUT_MS,
    )
    assert page.locator('[data-testid="stException"]').count() == 0, f"{title}: exception shown"
    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / f"{title.lower()}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_app_browser_every_page_after_login(app_url: str, chromium_path: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(app_url)
            page.get_by_role("textbox", name="Username").wait_for()
            _settle(page)  # typing into a form that is still being drawn can be lost
            page.get_by_role("textbox", name="Username").fill("demo-editor")
            page.get_by_role("textbox", name="Password").fill("demo-editor")
            page.get_by_role("button", name="Login").click()
            try:
                page.get_by_text("Signed in as").wait_for()
            except Exception:
                SCREENSHOTS.mkdir(exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "login-failed.png"), full_page=True)
                raise
            _check_page(page, "Overview")

            nav = page.locator('[data-testid="stSidebarNav"]')
            titles = [spec.title for spec in PAGES]
            assert {"Registry", "Planner", "Results"} <= set(titles)
            for title in titles:
                nav.get_by_role("link", name=re.compile(rf"^\W*{title}$")).click()
                page.wait_for_url(re.compile(rf"/{title.lower()}$"))
                _check_page(page, title)
        finally:
            browser.close()
