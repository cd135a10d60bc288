"""Warehouse-native metrics as a new user meets them, in a real browser (conftest.py: ``streamlit
run`` on a freshly seeded demo database of this module's own, with its DuckDB warehouse file).

The walk: open Data sources → test the demo connection → preview a source → define a fact
source (a DELETE first: refused in words, nothing written) → preview it → define a metric on it →
use it in a warehouse experiment → refresh that experiment on Results → see the new metric's
result, the exposure check and the exact SQL that ran. Each step saves
``screenshots/warehouse-NN-<step>.png``.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from core import registry
from core.warehouse import catalog
from db.session import make_engine, session_factory
from tests.browser.conftest import (
    PAGE_TIMEOUT_MS,
    assert_no_exception,
    grid_text,
    login,
    main_text,
    new_page,
    open_page,
    pick_option,
    settle,
    shoot,
)

pytestmark = pytest.mark.browser

EXPERIMENT = "One-tap reorder"
FACT_SQL = "SELECT unit_id, timestamp, discount\nFROM orders\nWHERE discount > 0"
_ATTEMPTS = itertools.count(1)


def _fact_sources(database_url: str) -> list[str]:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return [f.name for f in catalog.list_fact_sources(session)]
    finally:
        engine.dispose()


def _secondary_metrics(database_url: str) -> list[str]:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return registry.get_experiment_by_name(session, name=EXPERIMENT).secondary_metrics
    finally:
        engine.dispose()


def _grid_with(page: Any, index: int, text: str) -> str:
    """The text of the index-th dataframe once it shows ``text`` (a rerun may still be
    drawing it)."""
    for _ in range(60):
        found = grid_text(page, index)
        if text in found:
            return found
        page.wait_for_timeout(500)
    raise AssertionError(f"{text!r} never showed in dataframe {index}: {found}")


def _combobox(scope: Any, label: str) -> Any:
    return scope.locator(f'input[role="combobox"][aria-label="{label}"]').first


def _form(page: Any, button: str) -> Any:
    return page.locator('[data-testid="stForm"]').filter(
        has=page.get_by_role("button", name=button)).first


def test_data_sources_define_a_metric_use_it_and_refresh(writable_app: dict[str, Any],
                                                         browser: Any) -> None:
    page = new_page(browser)
    try:
        _walk(page, writable_app)
    except Exception:
        shoot(page, "warehouse-failed")
        raise


def _walk(page: Any, app: dict[str, Any]) -> None:
    url, database_url = app["url"], app["database_url"]
    attempt = next(_ATTEMPTS)  # a rerun (conftest) defines sources of its own
    suffix = "" if attempt == 1 else f"_{attempt}"
    fact, metric = f"discounts{suffix}", f"discount_per_user_7d{suffix}"
    step = iter(range(1, 100))

    def shot(name: str) -> None:
        assert_no_exception(page, name)
        shoot(page, f"warehouse-{next(step):02d}-{name}")

    # ---- the page: connection, sources, metrics, who uses them
    login(page, url, "demo-editor")
    open_page(page, "Data sources")
    # a busy machine can show the page's first lines before its run is flagged as running:
    # wait for the last section (a TimeoutError if it never comes, retried as such)
    page.get_by_text("Metrics on fact sources").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    text = main_text(page)
    assert "Connections" in text and "Metrics on fact sources" in text, text[:2000]
    assert "demo_warehouse" in grid_text(page, 0)
    sources = grid_text(page, 1)
    for expected in ("exposures", "orders", "sessions", "conversion_7d",
                     "One-tap reorder"):
        assert expected in sources, (expected, sources)
    assert "revenue_per_user_7d" in grid_text(page, 2)
    page.get_by_role("button", name="Test connection").click()
    page.get_by_text("Connected to duckdb").first.wait_for()
    settle(page)
    shot("data-sources")

    # ---- preview a source: its first 20 rows and a check of its columns
    pick_option(page, _combobox(page, "Look at a source"), "orders", exact=True)
    settle(page)
    page.get_by_role("button", name=re.compile("^Preview 20 rows")).click()
    page.get_by_text("The columns of 'orders' are as declared (20 rows").first.wait_for()
    settle(page)
    _grid_with(page, 2, "revenue")
    shot("preview-orders")

    # ---- a fact source: a bad try is refused in words and writes nothing
    page.get_by_text("New fact source").first.click()
    form = _form(page, "Add fact source")
    form.get_by_label("Name (lower_snake_case, e.g. refunds)").fill(fact)
    form.get_by_label(re.compile("^SQL in the warehouse's dialect")).fill("DELETE FROM orders")
    form.get_by_label(re.compile("^Numeric columns")).fill("discount")
    form.get_by_role("button", name="Add fact source").click()
    page.get_by_text("Nothing was saved: SQL: give one SELECT statement (it starts with "
                     "'DELETE')").first.wait_for()
    settle(page)
    assert fact not in _fact_sources(database_url)
    shot("fact-source-refused")

    form = _form(page, "Add fact source")
    form.get_by_label(re.compile("^SQL in the warehouse's dialect")).fill(FACT_SQL)
    form.get_by_role("button", name="Add fact source").click()
    page.locator('[data-testid="stMarkdownContainer"]', has_text=re.compile(
        rf"Fact source\s+{fact}\s+on connection")).first.wait_for()  # shown next
    settle(page)
    assert fact in _fact_sources(database_url)
    page.get_by_role("button", name=re.compile("^Preview 20 rows")).click()
    page.get_by_text(f"The columns of '{fact}' are as declared").first.wait_for()
    settle(page)
    _grid_with(page, 2, "discount")
    shot("fact-source-defined")

    # ---- a metric on it: the sum of discounts per user within 7 days of first exposure
    page.get_by_text("New metric on a fact source").first.click()
    pick_option(page, _combobox(page, "Fact source"), fact, exact=True)
    settle(page)
    form = _form(page, "Add metric")
    form.get_by_label(re.compile("^Name \\(lower_snake_case, e.g. refund")).fill(metric)
    pick_option(page, _combobox(form, "Per user"), re.compile("^sum"))
    pick_option(page, _combobox(form, "Column (sum, mean, ratio; optional for any and count)"),
                "discount", exact=True)
    form.get_by_label("Unit (optional, e.g. USD, %)").fill("USD")
    form.get_by_label("Description").fill("Discount given per exposed user within 7 days.")
    form.get_by_role("button", name="Add metric").click()
    page.get_by_text(f"Metric '{metric}' added").first.wait_for()
    settle(page)
    _grid_with(page, 3, metric)  # the metrics on fact sources (after the preview)
    shot("metric-defined")

    # ---- use it in a warehouse experiment
    pick_option(page, _combobox(page, "Experiment"), re.compile(f"^{EXPERIMENT}"))
    page.get_by_text(f"'{EXPERIMENT}' reads its exposures from").first.wait_for()  # rerun over
    settle(page)
    form = _form(page, "Use in the experiment")
    form.locator('[data-testid="stMultiSelectTagsContainer"]',  # the new metric: preselected
                 has_text=metric).first.wait_for()
    form.get_by_role("button", name="Use in the experiment").click()
    page.get_by_text(f"'{EXPERIMENT}' uses its warehouse metrics").first.wait_for()
    settle(page)
    assert metric in _secondary_metrics(database_url)
    shot("used-in-experiment")

    # ---- refresh it from the warehouse on Results
    page.get_by_role("link", name=f"Open the results of '{EXPERIMENT}'").click()
    page.wait_for_url(re.compile(r"/results\?experiment=\d+"))
    page.get_by_text("From the warehouse").first.wait_for()
    settle(page)
    page.get_by_role("button", name="Refresh from warehouse").click()
    page.get_by_text("Refreshed from the warehouse").first.wait_for()
    settle(page)
    text = main_text(page)
    assert metric in text, text[:3000]  # its decision line and its results row
    assert "Exposure check:" in text and "were excluded" in text, text
    assert f"SQL that ran for {fact} (fact source)" in text
    page.get_by_text(f"SQL that ran for {fact} (fact source)").first.click()
    code = page.locator('[data-testid="stCode"]').filter(has_text="discount > 0").first
    code.wait_for()
    sql = code.inner_text()
    assert "SELECT" in sql and f"fact source '{fact}'" in sql, sql  # the label comment
    settle(page)
    shot("refreshed-results")
    log = app["log"].read_text()
    assert "Traceback" not in log, log[-3000:]
