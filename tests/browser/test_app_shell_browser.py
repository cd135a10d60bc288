"""The app shell in a real browser: log out, return visits with the login cookie, deep links,
the Backlog grid after a re-rank, the Registry lifecycle and the Metric catalogue.

``streamlit run Home.py`` on a free loopback port against a demo SQLite database of this module's
own (these tests write), driven with Playwright through Debian's Chromium (never a browser
Playwright downloads). The server's output is captured: no test may leave a traceback in it, and
a MutationObserver records every exception box the page ever shows, even one that flashes.
Screenshots per step go to ``screenshots/shell-*.png`` (git-ignored).

Skipped only where /usr/bin/chromium is missing outside CI; in CI (CI=true) it must run.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from core.config import get_settings
from db.models import Experiment
from db.session import make_engine, session_factory
from tests.browser.conftest import (
    PAGE_TIMEOUT_MS,
    VIEWPORT,
    failed,
    login,
    login_form,
    open_page,
    pick_option,
    settle,
    shoot,
)

TRACEBACK = re.compile(r"Traceback|Error:|Exception:|Uncaught app execution")

WATCH_EXCEPTIONS = """
window.__eosExceptions = [];
new MutationObserver(() => {
  for (const el of document.querySelectorAll('[data-testid="stException"]')) {
    const text = el.innerText.slice(0, 300);
    if (!window.__eosExceptions.includes(text)) window.__eosExceptions.push(text);
  }
}).observe(document, {childList: true, subtree: true});
"""
"""Installed before any page script: remembers every exception box, however briefly shown."""

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Server:
    url: str
    database_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(writable_app: dict[str, object]) -> Server:
    """The app on a demo database of this module's own (these tests write)."""
    return Server(url=str(writable_app["url"]), database_url=str(writable_app["database_url"]),
                  log=Path(str(writable_app["log"])))


@pytest.fixture
def context(browser, server: Server, request: pytest.FixtureRequest
            ) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A fresh browser profile (no cookies) that watches for exception boxes; on leaving, the
    server log must hold no traceback written during the test. A failed test leaves a
    screenshot of each of its pages (screenshots/shell-failed-<test>-<n>.png)."""
    before = len(server.output())
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(PAGE_TIMEOUT_MS)
    ctx.add_init_script(WATCH_EXCEPTIONS)
    try:
        yield ctx
    finally:
        if failed(request):
            for n, page in enumerate(ctx.pages):
                _shot(page, f"failed-{request.node.name}-{n}")
        ctx.close()
    written = server.output()[before:]
    assert not TRACEBACK.search(written), f"the server logged a traceback:\n{written[-4000:]}"


def _no_exception(page) -> None:  # type: ignore[no-untyped-def]
    seen = page.evaluate("window.__eosExceptions")
    assert seen == [], f"the page showed an exception: {seen}"
    assert page.locator('[data-testid="stException"]').count() == 0


def _shot(page, step: str) -> None:  # type: ignore[no-untyped-def]
    shoot(page, f"shell-{step}")


def _main(page):  # type: ignore[no-untyped-def]
    return page.locator('[data-testid="stMain"]')


def _only_the_login_form(page) -> None:  # type: ignore[no-untyped-def]
    login_form(page)
    settle(page)
    assert page.get_by_role("textbox", name="Password").is_visible()
    assert page.get_by_text("Signed in as").count() == 0
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    assert page.get_by_text("Needs attention").count() == 0


def _no_cut_off_columns(page) -> None:  # type: ignore[no-untyped-def]
    """Every table on the page shows all its columns without scrolling sideways at 1400 px."""
    page.locator('[data-testid="stMain"] .dvn-scroller').first.wait_for()  # the grid has drawn
    overflow = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=\"stMain\"] .dvn-scroller')]"
        ".map(s => s.scrollWidth - s.clientWidth)"
    )
    assert overflow and all(o <= 1 for o in overflow), f"tables cut off by {overflow} px"


def _reach(database_url: str, name: str) -> float | None:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return session.scalars(select(Experiment.reach).where(Experiment.name == name)).one()
    finally:
        engine.dispose()


def _set_reach(database_url: str, name: str, reach: float) -> None:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            session.scalars(select(Experiment).where(Experiment.name == name)).one().reach = reach
            session.commit()
    finally:
        engine.dispose()


def _wait_for_reach(database_url: str, name: str, reach: float) -> None:
    """Poll the database until the idea's Reach is `reach` (a ceiling, not a timing check)."""
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while (seen := _reach(database_url, name)) != reach:
        assert time.monotonic() < deadline, f"{name}: Reach is {seen}, expected {reach}"
        time.sleep(0.25)


# ---------------------------------------------------------------- log out, return visits


def test_app_shell_browser_log_out_ends_the_session_and_clears_the_cookie(
    server: Server, context
) -> None:  # type: ignore[no-untyped-def]
    cookie = get_settings().auth_cookie_name
    page = context.new_page()
    login(page, server.url)
    _shot(page, "01-signed-in")
    assert cookie in {c["name"] for c in context.cookies()}

    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
    _only_the_login_form(page)
    page.get_by_text("You are signed out").wait_for()
    _no_exception(page)
    _shot(page, "02-signed-out")
    page.wait_for_function(f"() => !document.cookie.includes('{cookie}=')")
    assert cookie not in {c["name"] for c in context.cookies()}

    page.reload()
    _only_the_login_form(page)
    _no_exception(page)
    _shot(page, "03-reload-after-log-out")

    login(page, server.url)  # and signing in again works in the same tab
    _no_exception(page)


def test_app_shell_browser_return_visit_with_the_cookie_shows_no_traceback(
    server: Server, context
) -> None:  # type: ignore[no-untyped-def]
    first = context.new_page()
    login(first, server.url)
    first.close()
    for visit in range(2):  # a return visit: a new tab, signed in by the cookie alone
        page = context.new_page()
        page.goto(f"{server.url}/registry")
        page.get_by_text("Signed in as").wait_for()
        _main(page).get_by_text("Experiment registry").wait_for()
        settle(page)
        _no_exception(page)
        if visit == 0:
            _shot(page, "04-return-visit")
        page.reload()
        _main(page).get_by_text("Experiment registry").wait_for()
        settle(page)
        _no_exception(page)
        page.close()


# ---------------------------------------------------------------- backlog


def _grid_cell(page, row: int, column: int, *, idea: str):  # type: ignore[no-untyped-def]
    """Select a data-editor cell and return it. The grid draws on a canvas, but it keeps an
    accessible table of its cells (``#glide-cell-<column>-<row>``, with their text); focusing
    one selects it (the grid's first focus selects the first cell, so focus until selected).
    The row must hold `idea` (column 1), so a re-rank cannot send the edit to another idea."""
    grid = _main(page).locator('[data-testid="stDataFrame"]').first
    grid.scroll_into_view_if_needed()
    assert grid.locator(f"#glide-cell-1-{row}").text_content() == idea
    cell = grid.locator(f"#glide-cell-{column}-{row}")
    for _ in range(20):
        cell.focus()
        if cell.get_attribute("aria-selected") == "true":
            return cell
        page.wait_for_timeout(100)
    raise AssertionError(f"cell {column},{row} of the grid could not be selected")


def _grid_type(page, row: int, column: int, text: str, *, idea: str  # type: ignore[no-untyped-def]
               ) -> None:
    """Type `text` into a data-editor cell of `idea`'s row: the first key opens the cell's
    overlay editor, whose value is then set whole and read back before Enter (a key typed
    while the editor is still opening can be lost on a busy machine); the grid must then show
    it in that cell."""
    cell = _grid_cell(page, row, column, idea=idea)
    page.keyboard.type(text[0])
    editor = page.locator("#portal .gdg-clip-region").locator("input, textarea").first
    editor.wait_for()
    editor.fill(text)
    assert editor.input_value() == text
    page.keyboard.press("Enter")
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while (shown := cell.text_content()) != text:
        assert time.monotonic() < deadline, f"the grid shows {shown!r}, not {text!r}"
        page.wait_for_timeout(100)


def test_app_shell_browser_backlog_save_after_a_rerank_writes_no_stale_edit(
    server: Server, context
) -> None:  # type: ignore[no-untyped-def]
    _set_reach(server.database_url, "Wishlist reminder emails", 15000)  # as seeded, even on
    page = context.new_page()                                # a rerun after a timeout
    login(page, server.url)
    open_page(page, "Backlog")
    _main(page).get_by_text("Ranked ideas").wait_for()
    _no_cut_off_columns(page)
    _shot(page, "05-backlog")
    assert _reach(server.database_url, "Wishlist reminder emails") == 15000
    assert _reach(server.database_url, "Social login") == 70000

    # Rank 3 "Wishlist reminder emails": Reach 15000 -> 150000 lifts it to rank 2
    # (150000·1·0.5/2 = 37500 > Social login's 37333), so Social login moves to row 3.
    _grid_type(page, row=2, column=3, text="150000",  # Rank, Idea, Score, Reach
               idea="Wishlist reminder emails")
    settle(page)
    save = _main(page).get_by_role("button", name="Save score changes")
    save.click()
    # the save's toast is transient (it may come and go between two polls): wait for the write
    _wait_for_reach(server.database_url, "Wishlist reminder emails", 150000)
    settle(page)
    _shot(page, "06-backlog-reranked")

    save.click()  # untouched: nothing may change
    page.get_by_text(re.compile(r"No score changed\.|Saved \d+ idea")).first.wait_for()
    settle(page)
    _shot(page, "07-backlog-saved-again")
    assert _reach(server.database_url, "Social login") == 70000
    _main(page).get_by_text("No score changed.").wait_for()
    _no_exception(page)
    assert _reach(server.database_url, "Wishlist reminder emails") == 150000


# ---------------------------------------------------------------- deep links, registry


def _experiment_id(database_url: str, name: str) -> int:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return session.scalars(select(Experiment.id).where(Experiment.name == name)).one()
    finally:
        engine.dispose()


def _status(database_url: str, name: str) -> str:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return session.scalars(select(Experiment.status).where(Experiment.name == name)).one()
    finally:
        engine.dispose()


def test_app_shell_browser_deep_links_survive_a_reload_and_link_registry_to_results(
    server: Server, context
) -> None:  # type: ignore[no-untyped-def]
    target = _experiment_id(server.database_url, "One-page checkout")
    page = context.new_page()
    login(page, server.url)
    page.goto(f"{server.url}/registry?experiment={target}")
    heading = _main(page).get_by_role("heading", name="One-page checkout")
    heading.wait_for()
    settle(page)
    _main(page).get_by_text("Verdict:").first.wait_for()
    _no_cut_off_columns(page)
    _no_exception(page)
    _shot(page, "08-registry-deep-link")

    page.reload()
    heading.wait_for()
    settle(page)
    assert f"experiment={target}" in page.url

    # choosing another experiment rewrites the URL; a reload keeps it
    picker = _main(page).get_by_role("combobox", name=re.compile("Open experiment"))
    pick_option(page, picker, re.compile(r"^Dark mode default"))
    _main(page).get_by_role("heading", name="Dark mode default").wait_for()
    settle(page)
    other = _experiment_id(server.database_url, "Dark mode default")
    page.wait_for_url(re.compile(rf"experiment={other}"))
    page.reload()
    _main(page).get_by_role("heading", name="Dark mode default").wait_for()
    settle(page)
    _no_exception(page)

    _main(page).get_by_role("link", name=re.compile("Open results")).click()
    page.wait_for_url(re.compile(rf"/results\?experiment={other}$"))
    settle(page)
    _no_exception(page)
    _shot(page, "09-results-from-registry")
    page.go_back()
    _main(page).get_by_role("heading", name="Dark mode default").wait_for()
    _main(page).get_by_role("link", name=re.compile("Open reports")).click()
    page.wait_for_url(re.compile(rf"/reports\?experiment={other}$"))
    settle(page)
    _no_exception(page)


def test_app_shell_browser_registry_launch_asks_and_complete_has_no_decision(
    server: Server, context
) -> None:  # type: ignore[no-untyped-def]
    target = _experiment_id(server.database_url, "Social login")
    page = context.new_page()
    login(page, server.url)
    page.goto(f"{server.url}/registry?experiment={target}")
    _main(page).get_by_role("heading", name="Social login").wait_for()
    settle(page)

    # a blank name is refused in plain words, not pydantic's
    _main(page).get_by_text("New experiment").click()
    _main(page).get_by_role("button", name="Create experiment").click()
    settle(page)
    _main(page).get_by_text("Name is empty").wait_for()
    assert _main(page).get_by_text("String should have").count() == 0
    _shot(page, "10-registry-plain-error")

    _main(page).get_by_role("button", name="Launch (freeze the plan)").click()
    settle(page)
    _main(page).get_by_text("No planned start and end dates").wait_for()
    _shot(page, "11-registry-launch-confirm")
    assert _status(server.database_url, "Social login") == "proposed"  # not before confirming
    _main(page).get_by_role("button", name="Confirm launch").click()
    settle(page)
    _main(page).get_by_role("button", name="Complete").wait_for()
    _main(page).get_by_text("Verdict:").first.wait_for()
    decision = _main(page).get_by_role("combobox", name=re.compile("Decision"))
    assert decision.get_attribute("placeholder") == "Choose ship, don't ship or iterate"
    assert decision.input_value() == ""  # no preselected decision
    assert _status(server.database_url, "Social login") == "running"
    _no_exception(page)
    _shot(page, "12-registry-launched")


# ---------------------------------------------------------------- metric catalogue


_METRIC_ATTEMPTS = itertools.count(1)


def test_app_shell_browser_metric_catalogue_add_and_edit(server: Server, context
                                                         ) -> None:  # type: ignore[no-untyped-def]
    attempt = next(_METRIC_ATTEMPTS)  # a rerun (conftest) adds a metric of its own
    metric_name = "newsletter_signup_rate" + ("" if attempt == 1 else f"_{attempt}")
    page = context.new_page()
    login(page, server.url)
    open_page(page, "Metrics")
    _main(page).get_by_text("one shared definition per metric").wait_for()
    _no_cut_off_columns(page)
    _shot(page, "13-metrics")

    _main(page).get_by_text("New metric").click()
    _main(page).get_by_role("textbox", name=re.compile("^Name")).fill(metric_name)
    pick_option(page, _main(page).get_by_role("combobox", name=re.compile("Kind")),
                re.compile("^Conversion rate"))
    _main(page).get_by_role("textbox", name=re.compile("^Description")).first.fill(
        "Users who subscribe to the newsletter")
    _main(page).get_by_role("button", name="Add metric").click()
    settle(page)
    page.wait_for_url(re.compile(rf"metric={metric_name}"))
    _main(page).get_by_text("The name and kind are fixed").wait_for()
    settle(page)
    assert _main(page).locator('[data-testid="stAlertContentError"]').count() == 0
    picker = _main(page).get_by_role("combobox", name=re.compile("^Metric"))
    assert picker.input_value() == metric_name  # the new metric is open
    _shot(page, "14-metrics-added")

    page.reload()  # the deep link keeps the new metric open
    _main(page).get_by_text("The name and kind are fixed").wait_for()
    settle(page)
    unit = _main(page).get_by_role("textbox", name="Unit", exact=True)
    unit.fill("%")
    _main(page).get_by_role("button", name="Save metric").click()
    page.get_by_text(f"Metric '{metric_name}' saved").wait_for()
    settle(page)
    _no_exception(page)
    engine = make_engine(server.database_url)
    try:
        with session_factory(engine)() as session:
            from db.models import Metric
            metric = session.scalars(
                select(Metric).where(Metric.name == metric_name)).one()
            assert (metric.kind, metric.unit) == ("binomial", "%")
    finally:
        engine.dispose()

    viewer = context.browser.new_context(viewport=VIEWPORT)
    try:
        vpage = viewer.new_page()
        vpage.set_default_timeout(PAGE_TIMEOUT_MS)
        login(vpage, server.url, "demo-viewer")
        open_page(vpage, "Metrics")
        _main(vpage).get_by_text("read-only access").wait_for()
        assert _main(vpage).get_by_role("button", name="Add metric").count() == 0
        _shot(vpage, "15-metrics-viewer")
    finally:
        viewer.close()
