"""The app as a product manager meets it, in a real browser (see conftest.py: ``streamlit run``
on a seeded demo database, Playwright through Debian's Chromium).

* the walkthrough: login → every page → create, plan and launch an experiment → upload a good
  and a bad file → generate and download a report → log out and reload, on a database of its own;
* on the shared demo data: the SRM experiment shows no effect anywhere, deep links and reloads
  keep Results, Reports and the Planner on their experiment, the ratio-metric and dimension
  experiments render on Results.

Each step saves a screenshot into ``screenshots/`` (git-ignored), named ``walk-NN-<step>.png``.
The results table is a static table (``st.table``, whose cells wrap to the page's width):
:func:`table_text` reads its cells.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core import registry
from db.session import make_engine, session_factory
from tests.browser.conftest import (
    assert_no_exception,
    login,
    login_form,
    main_text,
    new_page,
    open_page,
    pick_option,
    settle,
    shoot,
    table_text,
)
from ui.navigation import PAGES

pytestmark = pytest.mark.browser

KEY_TEXT: dict[str, list[str]] = {
    "Overview": ["Needs attention", "Running"],
    "Registry": ["Experiment registry", "Audit history"],
    "Data sources": ["Data sources", "Connections", "Metrics on fact sources"],
    "Backlog": ["Backlog", "Ranked ideas", "Knowledge base"],
    "Planner": ["Experiment planner", "users a day you can detect a", "Power against sample size"],
    "Results": ["Results", "Decisions", "checkout_conversion"],
    "Reports": ["Reports", "Past reports", "Portfolio export"],
}
"""Visible text each page must show with the demo data. A page registered later needs at least
its title."""
SIGNED_PERCENT = re.compile(r"[+−-]\d+(?:\.\d+)?%")
"""A lift or difference as the app writes it (+13.4%, −2.1%)."""
UNFORMATTED = re.compile(r"\bNone\b|\bnan\b|\d+\.0(?![\d%])|\d{3,}\.\d{2,}|\.\d{6,}")
"""What a number never looks like for people: None, nan, 96000.0, 37333.3333, 0.01329999."""
RAW_COLUMNS = ("control_n", "treatment_n", "diff_ci_low", "diff_ci_high", "lift_ci_low",
               "lift_ci_high", "p_value", "adjusted_p_value", "decision_state")
MILLISECOND_TICK = re.compile(r"\d{2}:\d{2}|\.\d{3}|ms")


def _experiment_id(database_url: str, name: str) -> int:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return registry.get_experiment_by_name(session, name=name).id
    finally:
        engine.dispose()


def _chart_titles(page: Any) -> list[str]:
    return [str(t).strip() for t in page.locator('[data-testid="stPlotlyChart"] .gtitle')
            .evaluate_all("els => els.map(e => e.textContent)")]


def _x_ticks(page: Any) -> list[str]:
    return [str(t).strip() for t in page.locator('[data-testid="stPlotlyChart"] .xtick text')
            .evaluate_all("els => els.map(e => e.textContent)")]


def _combobox(scope: Any, label: str) -> Any:
    """The input of the selectbox or multiselect labelled `label`."""
    return scope.locator(f'input[role="combobox"][aria-label="{label}"]').first


def _selected(page: Any, label: str) -> str:
    """The shown value of the selectbox labelled `label`."""
    return str(_combobox(page, label).input_value()).strip()


def _choose(page: Any, label: str, option: str) -> None:
    pick_option(page, _combobox(page, label), option)
    settle(page)


def _assert_numbers_for_people(text: str, where: str) -> None:
    assert not UNFORMATTED.search(text), (where, UNFORMATTED.search(text), text[:2000])
    for raw in RAW_COLUMNS:
        assert raw not in text, (where, raw)


# --------------------------------------------------------------------------- shared demo data


def test_app_browser_results_srm_hides_every_lift(app_url: str, demo_db_url: str,
                                                  browser: Any) -> None:
    """The SRM experiment: the banner blocks the results, and no lift, forest plot or
    cumulative chart is shown anywhere on the page; the reason is given where they would be."""
    exp_id = _experiment_id(demo_db_url, "Onboarding checklist")
    page = new_page(browser)
    login(page, app_url, "demo-viewer", f"/results?experiment={exp_id}")
    page.get_by_text("Sample ratio mismatch").first.wait_for()
    settle(page)
    shoot(page, "results-srm-blocked")
    assert_no_exception(page, "Results (SRM)")
    text = main_text(page)
    assert "results blocked" in text
    assert not SIGNED_PERCENT.search(text), SIGNED_PERCENT.findall(text)
    titles = _chart_titles(page)
    assert not [t for t in titles if "lift" in t.lower()], titles
    assert "Daily units per variant" in titles  # the assignment counts are the evidence
    assert text.count("hidden") >= 1 and "sample ratio mismatch" in text.lower()
    table = table_text(page)
    assert not SIGNED_PERCENT.search(table), table


def test_app_browser_deep_links_survive_a_reload(app_url: str, demo_db_url: str,
                                                 browser: Any) -> None:
    """?experiment=<id> opens Results, Reports and the Planner on that experiment; choosing
    another writes its id into the URL, and a reload keeps it."""
    checkout = _experiment_id(demo_db_url, "Checkout button colour")
    search = _experiment_id(demo_db_url, "Search ranking v2")
    proposed = _experiment_id(demo_db_url, "Social login")
    page = new_page(browser)
    login(page, app_url, "demo-editor", f"/results?experiment={search}")
    assert _selected(page, "Experiment").startswith("Search ranking v2"), page.url
    _choose(page, "Experiment", "Checkout button colour")
    page.wait_for_url(re.compile(rf"/results\?experiment={checkout}$"))
    page.reload()
    settle(page)
    page.get_by_text("Decisions").first.wait_for()
    assert _selected(page, "Experiment").startswith("Checkout button colour")
    assert page.url.endswith(f"/results?experiment={checkout}")
    shoot(page, "deeplink-results")

    page.goto(f"{app_url}/reports?experiment={search}")
    page.get_by_text("Past reports").first.wait_for()
    settle(page)
    assert _selected(page, "Experiment").startswith("Search ranking v2")
    page.reload()
    page.get_by_text("Past reports").first.wait_for()
    settle(page)
    assert _selected(page, "Experiment").startswith("Search ranking v2")
    assert page.url.endswith(f"/reports?experiment={search}")

    page.goto(f"{app_url}/planner?experiment={proposed}")
    page.get_by_text("Save the plan").first.wait_for()
    settle(page)
    assert _selected(page, "Proposed experiment").startswith("Social login")
    assert page.url.endswith(f"/planner?experiment={proposed}")
    shoot(page, "deeplink-planner")
    assert_no_exception(page, "deep links")


def test_app_browser_results_tables_read_for_people(app_url: str, demo_db_url: str,
                                                    browser: Any) -> None:
    """The results table has people's labels and numbers, every column fits at 1400 px, and
    the verdict comes first."""
    exp_id = _experiment_id(demo_db_url, "Checkout button colour")
    page = new_page(browser)
    login(page, app_url, "demo-viewer", f"/results?experiment={exp_id}")
    page.get_by_text("Decisions").first.wait_for()
    settle(page)
    shoot(page, "results-clear-winner")
    text = main_text(page)
    assert "Verdict" in text and text.index("Verdict") < text.index("Decisions")
    assert "Ship" in text[:text.index("Decisions")]
    table = table_text(page)
    _assert_numbers_for_people(table, "results table")
    for header in ("Metric", "Lift (95% CI)", "p-value (adjusted)", "Decision"):
        assert header in table, (header, table)  # the last columns are on screen too
    assert "+13.4%" in table  # checkout_conversion's lift, as the decision text says


def test_app_browser_results_ratio_and_dimension_experiments(app_url: str, demo_db_url: str,
                                                             browser: Any) -> None:
    """The demo's ratio-metric experiment and the one whose data carries dimensions render on
    Results with their verdict, people's numbers and the Bayesian readout."""
    page = new_page(browser)
    login(page, app_url, "demo-viewer")
    for name, metric in (("Infinite scroll on search", "revenue_per_session"),
                         ("Mobile express checkout", "checkout_conversion")):
        exp_id = _experiment_id(demo_db_url, name)
        page.goto(f"{app_url}/results?experiment={exp_id}")
        page.get_by_text("Decisions").first.wait_for()
        settle(page)
        shoot(page, "results-" + name.lower().replace(" ", "-"))
        assert_no_exception(page, name)
        text = main_text(page)
        assert "Verdict" in text and metric in text and "Bayesian readout" in text, text[:1500]
        _assert_numbers_for_people(table_text(page), name)


# --------------------------------------------------------------------------- the walkthrough

GOOD_CSV = "unit_id,variant,checkout_conversion,refund_rate\n" + "".join(
    f"u{i},{'control' if i % 2 else 'treatment'},{int(i % 7 == 0)},{int(i % 29 == 0)}\n"
    for i in range(1, 2001)
)
BAD_CSV = ("unit_id,variant,checkout_conversion,refund_rate\n"
           "a1,control,1,0\n"
           "a2,contrl,0,0\n"
           "a3,treatment,yes,0\n"
           "a1,treatment,0,0\n"
           'a4,control,0,"0,5"\n')  # a decimal comma in a comma-separated file


_WALK_ATTEMPTS = itertools.count(1)


def test_app_browser_walkthrough(writable_app: dict[str, Any], browser: Any,
                                 tmp_path: Path) -> None:
    page = new_page(browser)
    try:
        _walkthrough(page, writable_app, tmp_path)
    except Exception:
        shoot(page, "walk-failed")
        raise


def _walkthrough(page: Any, writable_app: dict[str, Any], tmp_path: Path) -> None:
    url = writable_app["url"]
    step = iter(range(1, 100))

    def shot(name: str) -> None:
        assert_no_exception(page, name)
        shoot(page, f"walk-{next(step):02d}-{name}")

    # ---- login and every page
    login(page, url, "demo-editor")
    text = main_text(page)
    assert "Verdict" in text, text[:500]  # one verdict per experiment, first
    shot("overview")
    for spec in PAGES:
        open_page(page, spec.title)
        for expected in KEY_TEXT.get(spec.title, [spec.title]):
            page.locator('[data-testid="stMain"]').get_by_text(expected, exact=False).first \
                .wait_for(state="visible")
        shot(spec.title.lower().replace(" ", "-"))

    # ---- create, plan, launch
    attempt = next(_WALK_ATTEMPTS)  # a rerun (conftest) creates an experiment of its own
    suffix = "" if attempt == 1 else f" {attempt}"
    name = "Walkthrough express checkout" + suffix
    open_page(page, "Registry")
    page.get_by_text("New experiment").first.click()
    form = page.locator('[data-testid="stExpander"]').filter(has_text="Create experiment").first
    form.get_by_role("textbox", name="Name", exact=True).fill(name)
    form.locator('textarea[aria-label="Hypothesis"]').fill("A one-click checkout converts more.")
    pick_option(page, _combobox(form, "Primary metric"), "checkout_conversion", exact=True)
    pick_option(page, _combobox(form, "Guardrail metrics"), "refund_rate", exact=True)
    page.keyboard.press("Escape")
    form.get_by_role("button", name="Create experiment").click()
    settle(page)
    exp_id = _experiment_id(writable_app["database_url"], name)
    shot("created")

    page.goto(f"{url}/planner?experiment={exp_id}")
    page.get_by_text("Save the plan").first.wait_for()
    settle(page)
    mde = page.get_by_label("Minimum detectable effect (%)")
    mde.fill("2.5")
    mde.press("Enter")
    page.get_by_text("MDE 2.5% relative").first.wait_for()  # the MDE reads as typed
    settle(page)
    assert "2.50%" not in main_text(page)
    split = page.get_by_label("Traffic split (%), control first")
    split.fill("60, 30")
    split.press("Enter")
    page.get_by_text("they add up to 90%)").first.wait_for()  # the error speaks in percent
    settle(page)
    assert "0.9" not in main_text(page)
    shot("planner-error")
    split.fill("50, 50")
    split.press("Enter")
    page.get_by_text("Save the plan").first.wait_for()
    settle(page)
    assert _selected(page, "Proposed experiment").startswith(name)
    page.get_by_role("button", name="Save plan").click()
    page.get_by_text("Saved onto").first.wait_for()
    shot("planned")

    page.goto(f"{url}/registry?experiment={exp_id}")
    page.get_by_text("Audit history").first.wait_for()
    settle(page)
    if _selected(page, "Open experiment").split(" (")[0] != name:
        _choose(page, "Open experiment", name)
    page.get_by_role("button", name=re.compile("^Launch")).first.click()
    settle(page)
    page.get_by_role("button", name="Confirm launch").click()  # launch asks first
    settle(page)
    page.locator('[data-testid="stMarkdownContainer"]', has_text=re.compile(
        r"Status:\s*running")).first.wait_for()
    shot("launched")

    # ---- upload a good file: the new data shows at once, in users and days
    page.goto(f"{url}/results?experiment={exp_id}")
    page.get_by_text("Load data").first.wait_for()
    settle(page)
    assert "No data" in main_text(page)
    good = tmp_path / "express-checkout.csv"
    good.write_text(GOOD_CSV)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(good))
    page.get_by_role("button", name="Load file").click()
    page.get_by_text("Loaded 2,000 users").first.wait_for()
    settle(page)
    text = main_text(page)
    assert "No data" not in text, text[:800]
    assert "daily rows" not in text
    assert "1,000" in text and "1 day" in text
    ticks = _x_ticks(page)
    assert ticks and not [t for t in ticks if MILLISECOND_TICK.search(t)], ticks
    shot("upload-good")

    # ---- a bad file: every problem at once, nothing loaded
    bad = tmp_path / "broken.csv"
    bad.write_text(BAD_CSV)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(bad))
    page.get_by_role("button", name="Load file").click()
    page.get_by_text("was rejected; nothing was loaded").first.wait_for()
    settle(page)
    text = main_text(page)
    assert "'yes'" in text and "contrl" in text and "a1" in text, text  # every problem at once
    assert "they look like numbers with a decimal comma" in text, text
    # the list is below the button, maybe below the fold: a toast says so in the viewport
    toast = page.locator('[data-testid="stToast"]', has_text="broken.csv was rejected").first
    toast.wait_for()
    box, viewport = toast.bounding_box(), page.viewport_size
    assert box and viewport and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]
    assert "listed under Load data" in toast.inner_text()
    # nothing of the bad file loaded: the good file's 1,000 users per arm still show, and the
    # good file's "Loaded ..." message is gone (beside the rejection it read as this file's)
    assert re.search(r"control \(50%\)\s+1,000\s+treatment \(50%\)\s+1,000", text), text
    assert "Loaded 2,000 users" not in text, text
    shot("upload-bad")

    # ---- the backlog
    open_page(page, "Backlog")
    shot("backlog")

    # ---- generate and download a report, named <experiment-slug>-<date>.pdf
    page.goto(f"{url}/reports?experiment={exp_id}")
    page.get_by_text("Past reports").first.wait_for()
    settle(page)
    page.get_by_role("button", name="Generate report").click()
    page.get_by_text("Report generated").first.wait_for()
    settle(page)
    with page.expect_download() as info:
        page.get_by_role("button", name="Download PDF").click()
    download = info.value
    today = datetime.now(UTC).date().isoformat()
    expected = "walkthrough-express-checkout" + suffix.replace(" ", "-")
    assert download.suggested_filename == f"{expected}-{today}.pdf"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_bytes()[:5] == b"%PDF-"
    shot("report")

    # ---- log out and reload: only the login form
    page.get_by_role("button", name="Log out").click()
    login_form(page)
    page.reload()
    login_form(page)
    page.wait_for_timeout(1500)  # a cookie that survived would sign in again by now
    assert page.get_by_text("Signed in as").count() == 0
    shot("logged-out")
    log = writable_app["log"].read_text()
    assert "Traceback" not in log, log[-3000:]
