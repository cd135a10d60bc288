"""Full-page screenshots of every page at three widths, for a person to look at.

    .venv/bin/python scripts/screenshots.py [--widths 1400 1024 390] [--out screenshots]

Seeds a demo database in a temporary folder, runs ``streamlit run Home.py`` on a free loopback
port in demo mode, signs in as demo-editor with Debian's Chromium (/usr/bin/chromium, driven by
Playwright) and saves ``<out>/<page>-<width>.png`` for the Overview and each page of the
sidebar (opened on its default object; Results on an experiment with segments). Nothing is
asserted: the browser tests do that.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.demo import seed_demo  # noqa: E402
from core.registry import get_experiment_by_name  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.session import make_engine, session_factory  # noqa: E402

PAGES = ("", "registry", "metrics", "data_sources", "backlog", "planner", "results", "reports")
RESULTS_ON = "Checkout button colour"
"""The Results page opens on this demo experiment (it has segments)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stMain\"] h1')"
        " && !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=120_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
        ".every(c => c.querySelector('svg.main-svg'))", timeout=120_000)
    page.wait_for_timeout(800)


def _open_signed_in(page, url: str) -> None:  # type: ignore[no-untyped-def]
    """Open `url`; sign in as demo-editor when the login form shows (the app then resumes the
    deep link)."""
    page.goto(url)
    login = page.get_by_role("textbox", name="Username")
    signed_in = page.get_by_text("Signed in as")
    login.or_(signed_in).first.wait_for(state="attached")
    if login.count():
        page.wait_for_timeout(1000)
        login.fill("demo-editor")
        page.get_by_role("textbox", name="Password").fill("demo-editor")
        page.get_by_role("button", name="Login").click()
        signed_in.wait_for(state="attached")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1400, 1024, 390])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/demo.db"
        upgrade(url)
        engine = make_engine(url)
        with session_factory(engine)() as session:
            seed_demo(session)
            results_id = get_experiment_by_name(session, name=RESULTS_ON).id
        engine.dispose()
        port = _free_port()
        env = {**os.environ, "DATABASE_URL": url, "DEMO_MODE": "true",
               "ARTIFACTS_URL": str(Path(folder) / "artifacts")}
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless=true",
             "--server.address=127.0.0.1", f"--server.port={port}",
             "--server.fileWatcherType=none", "--browser.gatherUsageStats=false"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("streamlit did not start") from None
                    time.sleep(0.5)
            args.out.mkdir(exist_ok=True)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu"])
                for width in args.widths:
                    # Streamlit scrolls inside its main area, so a full-page screenshot holds
                    # only the window: a tall window shows a whole page (resizing it after the
                    # page is drawn re-mounts widgets, and a picker can lose its shown value)
                    context = browser.new_context(viewport={"width": width, "height": 3600})
                    page = context.new_page()
                    page.set_default_timeout(120_000)
                    for name in PAGES:
                        query = f"?experiment={results_id}" if name == "results" else ""
                        _open_signed_in(page, f"{base}/{name}{query}")
                        _settle(page)
                        shot = args.out / f"{name or 'overview'}-{width}.png"
                        page.screenshot(path=str(shot), full_page=True)
                        print(shot)
                    context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
