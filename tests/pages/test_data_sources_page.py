"""Data sources page (AppTest) on the demo warehouse: everyone reads the connection, the sources,
who uses them and the metrics on them; editors test the connection, preview and check a source,
define a fact source and a metric on it and use it in an experiment (audited), and bad input is
refused in words with nothing written; only admins see the connection forms; viewers read only.
The Results page then refreshes that experiment from the warehouse and shows the SQL that ran."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from core import catalogue, registry
from core.warehouse import catalog
from db.models import AuditEntry, FactSource, Metric, MetricDailyStat
from db.session import make_engine, session_factory
from tests.apptest import login, open_page
from tests.conftest import EDITOR

FACT_SQL = "SELECT unit_id, timestamp, discount FROM orders WHERE discount > 0"


def _db(url: str):  # type: ignore[no-untyped-def]
    return session_factory(make_engine(url))()


def _button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def _page(user: str) -> AppTest:
    at = open_page(login(user), "data_sources")
    assert not at.exception, at.exception
    return at


def _count(url: str, model: Any) -> int:
    with _db(url) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_data_sources_page_lists_the_demo_warehouse_for_a_viewer(demo_app: str) -> None:
    at = _page("demo-viewer")
    connections, sources, metrics = (d.value for d in at.dataframe)
    assert list(connections["Name"]) == ["demo_warehouse"]
    assert connections["URL"][0].startswith("duckdb:///")
    assert list(sources["Name"]) == ["exposures", "orders", "sessions"]
    assert list(sources["Kind"]) == ["assignment", "fact", "fact"]
    orders = sources[sources["Name"] == "orders"].iloc[0]
    assert orders["Metrics"] == "conversion_7d, revenue_per_user_7d"
    assert orders["Experiments"] == "One-tap reorder, Product bundles, Search filters v2"
    by_metric = metrics.set_index("Metric")
    assert by_metric.loc["rev_per_session_7d", "Per user"] == \
        "sum(revenue) / sum(session_count)"
    assert by_metric.loc["revenue_per_user_7d", "CUPED"] == "14 days before"
    assert by_metric.loc["conversion_7d", "Window"] == "7 days after first exposure"
    assert by_metric.loc["p90_page_views_7d", "Kind"] == "quantile (p = 0.9)"
    assert by_metric.loc["p90_page_views_7d", "Per user"] == "sum(page_views)"
    assert "None" not in metrics.to_string() + sources.to_string()
    # the source's SQL is readable; nothing runs in the warehouse, nothing can be changed
    assert "FROM exposures" in at.code[0].value
    assert any("adjusted on them; a quantile metric never): tenure_days" in m.value
               for m in at.markdown)
    assert not at.button and not at.expander and not at.form
    assert any("read-only access" in c.value for c in at.caption)


def test_data_sources_page_editor_tests_the_connection_and_previews_a_source(
        demo_app: str) -> None:
    at = _page("demo-editor")
    assert not any(e.label.startswith("New connection") for e in at.expander)  # admins only
    _button(at, "Test connection").click().run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success][0].startswith("Connected to duckdb at duckdb:///")
    at.selectbox(key="ds_source").select("sessions").run()
    _button(at, "Preview 20 rows and check the columns").click().run()
    assert not at.exception, at.exception
    assert any("The columns of 'sessions' are as declared (20 rows" in s.value
               for s in at.success)
    preview = at.dataframe[2].value
    assert list(preview.columns) == ["unit_id", "timestamp", "session_count", "page_views",
                                     "revenue"]
    assert len(preview) == 20
    ran = [c.value for c in at.code if "LIMIT 20" in c.value]
    assert ran and ran[0].startswith("/* ExperimentOS preview of fact source 'sessions' */")


def test_data_sources_page_admin_sees_the_connection_forms(demo_app: str) -> None:
    at = _page("demo-admin")
    labels = [e.label for e in at.expander]
    assert "New connection (admin)" in labels and "Change a connection's URL (admin)" in labels


def test_data_sources_page_refuses_bad_input_and_writes_nothing(fresh_demo_app: str) -> None:
    url = fresh_demo_app
    facts, metrics, audit = (_count(url, FactSource), _count(url, Metric),
                             _count(url, AuditEntry))
    at = _page("demo-editor")
    # a name that is not lower_snake_case, in plain words
    at.text_input(key="ds_fact_name").input("Discounts!")
    at.text_area(key="ds_fact_sql").input(FACT_SQL)
    at.text_input(key="ds_fact_columns").input("discount")
    _button(at, "Add fact source").click().run()
    assert _errors(at) == ["Nothing was saved: Name must be lower_snake_case (small letters, "
                           "digits and _, starting with a letter): give a name of 1 to 200 "
                           "characters"]
    # SQL that is not a SELECT
    at.text_input(key="ds_fact_name").input("discounts")
    at.text_area(key="ds_fact_sql").input("DELETE FROM orders")
    _button(at, "Add fact source").click().run()
    assert _errors(at) == ["Nothing was saved: SQL: give one SELECT statement (it starts with "
                           "'DELETE')"]
    # a metric on a column its fact source does not declare, and one without an aggregation
    at.selectbox(key="ds_metric_fact").select("orders").run()
    at.text_input(key="ds_metric_name").input("discount_per_user")
    _button(at, "Add metric").click().run()
    assert _errors(at) == ["Nothing was saved: choose how the facts add up per user."]
    at.selectbox(key="ds_metric_aggregation").select("ratio")
    at.selectbox(key="ds_metric_value").select("revenue")
    _button(at, "Add metric").click().run()
    problems = _errors(at)[0]
    assert problems.startswith("Nothing was saved") and "denominator" in problems.lower()
    # using no metric in an experiment
    _button(at, "Use in the experiment").click().run()
    assert _errors(at) == ["Nothing was saved: Metrics: choose at least one warehouse metric"]
    assert not at.exception, at.exception
    assert (facts, metrics, audit) == (_count(url, FactSource), _count(url, Metric),
                                       _count(url, AuditEntry))


def test_data_sources_page_define_use_and_refresh(fresh_demo_app: str) -> None:
    """Define a fact source and a metric on it, use it in a warehouse experiment, refresh it on
    Results: the new metric has results, the exposure check and the SQL that ran show."""
    url = fresh_demo_app
    at = _page("demo-editor")
    at.text_input(key="ds_fact_name").input("discounts")
    at.text_area(key="ds_fact_sql").input(FACT_SQL)
    at.text_input(key="ds_fact_columns").input("discount")
    _button(at, "Add fact source").click().run()
    assert not _errors(at) and not at.exception, (_errors(at), at.exception)
    assert "Fact source 'discounts' added: look at it above." in [s.value for s in at.success]
    assert at.selectbox(key="ds_source").value == "discounts"  # shown next
    assert (at.text_input(key="ds_fact_name").value, at.text_area(key="ds_fact_sql").value,
            at.text_input(key="ds_fact_columns").value) == ("", "", "")  # issue 23: emptied
    _button(at, "Preview 20 rows and check the columns").click().run()
    assert any("The columns of 'discounts' are as declared" in s.value for s in at.success)

    at.selectbox(key="ds_metric_fact").select("discounts").run()
    at.text_input(key="ds_metric_name").input("discount_per_user_7d")
    at.selectbox(key="ds_metric_aggregation").select("sum")
    at.selectbox(key="ds_metric_value").select("discount")
    at.text_input(key="ds_metric_unit").input("USD")
    _button(at, "Add metric").click().run()
    assert not _errors(at), _errors(at)
    with _db(url) as s:
        metric = next(m for m in catalogue.list_metrics(s) if m.name == "discount_per_user_7d")
        assert (metric.fact_source, metric.aggregation, metric.value_column, metric.window_days,
                metric.cuped_days, metric.kind) == ("discounts", "sum", "discount", 7, None,
                                                    "mean")
        assert catalog.get_fact_source(s, name="discounts").metrics == ("discount_per_user_7d",)
    assert at.multiselect(key="ds_use_metrics").value == ["discount_per_user_7d"]
    assert at.text_input(key="ds_metric_name").value == ""  # issue 23: the form is emptied
    assert at.selectbox(key="ds_metric_aggregation").value is None
    assert at.text_input(key="ds_metric_unit").value == ""

    box = at.selectbox(key="ds_use_experiment")
    box.select_index(next(i for i, o in enumerate(box.options)
                          if o.startswith("One-tap reorder ("))).run()
    _button(at, "Use in the experiment").click().run()
    assert not _errors(at) and not at.exception, (_errors(at), at.exception)
    assert at.multiselect(key="ds_use_metrics").value == []  # used: the next choice is empty
    with _db(url) as s:
        exp = registry.get_experiment_by_name(s, name="One-tap reorder")
        assert exp.secondary_metrics[-1] == "discount_per_user_7d"
        assert exp.assignment_source == "exposures"  # unchanged: no plan deviation
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert last is not None and last.action == "update" and last.actor == "demo-editor"
        stats = s.scalar(select(func.count()).select_from(MetricDailyStat))

    res = open_page(at, "results")
    res.selectbox(key="res_experiment").select(exp.id).run()
    assert "Not refreshed" not in " ".join(i.value for i in res.info)
    _button(res, "Refresh from warehouse").click().run()
    assert not res.exception, res.exception
    flash = [s.value for s in res.success]
    assert any(f.startswith("Refreshed from the warehouse") and "excluded" in f for f in flash)
    table = res.table[0].value
    assert "discount_per_user_7d" in set(table["Metric"])
    runs = next(d.value for d in res.dataframe if "Rows returned" in d.value.columns)
    assert list(runs["Source"]) == ["exposures (assignment)", "discounts (fact)",
                                    "orders (fact)", "sessions (fact)"]
    assert set(runs["Rows scanned"]) == {"not reported"}  # DuckDB does not say
    assert any(m.value.startswith("**Exposure check:**") and "were excluded" in m.value
               for m in res.markdown)
    sql = [c.value for c in res.code if "fact source 'discounts'" in c.value]
    assert sql and "discount > 0" in sql[0] and "SELECT" in sql[0]
    with _db(url) as s:
        assert s.scalar(select(func.count()).select_from(MetricDailyStat)) > stats


def test_data_sources_page_editor_adds_a_quantile_metric_on_a_fact_source(
        fresh_demo_app: str) -> None:
    """The form's quantile level makes a warehouse quantile metric; on an aggregation that is
    not a sum or a count it is refused in words and nothing is written."""
    url = fresh_demo_app
    before = _count(url, Metric)
    at = _page("demo-editor")
    at.selectbox(key="ds_metric_fact").select("orders").run()
    at.text_input(key="ds_metric_name").input("p95_buyers")
    at.selectbox(key="ds_metric_aggregation").select("any")
    at.number_input(key="ds_metric_quantile").set_value(0.95)
    _button(at, "Add metric").click().run()
    assert any("a quantile metric takes the quantile of each unit's sum or count" in e
               for e in _errors(at)), _errors(at)
    assert _count(url, Metric) == before
    at.selectbox(key="ds_metric_aggregation").select("sum")
    at.selectbox(key="ds_metric_value").select("revenue")
    at.number_input(key="ds_metric_quantile").set_value(0.95)
    at.text_input(key="ds_metric_name").input("p95_revenue_7d")
    _button(at, "Add metric").click().run()
    assert not _errors(at) and not at.exception, (_errors(at), at.exception)
    with _db(url) as s:
        metric = catalogue.get_metric(s, name="p95_revenue_7d")
        assert (metric.kind, metric.quantile_p, metric.aggregation, metric.value_column) == (
            "quantile", 0.95, "sum", "revenue")
    assert _count(url, Metric) == before + 1
    assert at.number_input(key="ds_metric_quantile").value == 0.0  # the form is emptied


def test_results_page_warehouse_refresh_refuses_bad_data_and_writes_nothing(
        fresh_demo_app: str) -> None:
    """A fact source whose SQL fails in the warehouse: the refresh names the source, writes
    nothing, and the previous runs stay shown."""
    url = fresh_demo_app
    with _db(url) as s:
        catalog.create_fact_source(s, actor=EDITOR, data={
            "name": "broken", "connection": "demo_warehouse",
            "sql": "SELECT unit_id, timestamp, no_such_column AS amount FROM orders",
            "columns": ["amount"]})
        catalogue.create_metric(s, actor=EDITOR, data={
            "name": "broken_amount", "fact_source": "broken", "aggregation": "sum",
            "value_column": "amount", "window_days": 7})
        exp = registry.get_experiment_by_name(s, name="Search filters v2")
        registry.update_experiment(s, experiment_id=exp.id, actor=EDITOR,
                                   expected_version=exp.version,
                                   changes={"secondary_metrics": [*exp.secondary_metrics,
                                                                  "broken_amount"]})
    stats, audit = _count(url, MetricDailyStat), _count(url, AuditEntry)
    at = open_page(login("demo-editor"), "results")
    at.selectbox(key="res_experiment").select(exp.id).run()
    _button(at, "Refresh from warehouse").click().run()
    assert not at.exception, at.exception
    failed = [e for e in _errors(at) if "refresh from the warehouse failed" in e]
    assert failed and "fact source 'broken'" in failed[0] and "nothing was written" in failed[0]
    assert (stats, audit) == (_count(url, MetricDailyStat), _count(url, AuditEntry))
    runs = next(d.value for d in at.dataframe if "Rows returned" in d.value.columns)
    assert "broken (fact)" not in set(runs["Source"])  # the seeding's runs, unchanged
