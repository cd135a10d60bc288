"""Metrics page (AppTest) on the demo catalogue: everyone reads it, editors add and edit a
metric (audited) — a ratio metric with its numerator and denominator columns, which change only
until data is stored for it —, bad input is refused in plain words and writes nothing, viewers
read only."""

from __future__ import annotations

from sqlalchemy import select

from core import catalogue
from db.models import AuditEntry, Metric
from db.session import make_engine, session_factory
from tests.apptest import login, open_page


def _db(url: str):  # type: ignore[no-untyped-def]
    return session_factory(make_engine(url))()


def _button(at, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.label == label)


def test_metrics_page_lists_the_catalogue_for_a_viewer(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "metrics")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    with _db(demo_app) as s:
        names = [m.name for m in catalogue.list_metrics(s)]
    assert list(table["Name"]) == names
    assert set(table["Direction"]) <= {"Higher is better", "Lower is better"}
    checkout = table[table["Name"] == "checkout_conversion"].iloc[0]
    assert checkout["Kind"].startswith("Conversion rate")
    assert checkout["Used by"].endswith("experiments") and checkout["Used by"] != "0 experiments"
    assert "None" not in table.to_string()
    # a metric computed in the warehouse reads as its formula, not as a file's ratio columns
    warehouse = table[table["Name"] == "rev_per_session_7d"].iloc[0]
    assert warehouse["Kind"] == "Warehouse: sum(revenue) / sum(session_count) on sessions, 7 days"
    assert not at.button and not at.expander  # read only
    assert any("read-only access" in c.value for c in at.caption)


def test_metrics_page_search_filters(demo_app: str) -> None:
    at = open_page(login("demo-viewer"), "metrics")
    at.text_input(key="met_search").input("checkout").run()
    assert set(at.dataframe[0].value["Name"]) >= {"checkout_conversion"}
    assert all("checkout" in n or "checkout" in d.lower() for n, d in zip(
        at.dataframe[0].value["Name"], at.dataframe[0].value["Description"], strict=True))


def test_metrics_page_editor_adds_a_metric(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "metrics")
    at.text_input(key="met_new_name").input("newsletter_signup_rate")
    at.selectbox(key="met_new_kind").select("binomial")
    at.radio(key="met_new_direction").set_value(False)
    at.text_area(key="met_new_description").input("Users who subscribe to the newsletter")
    _button(at, "Add metric").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "newsletter_signup_rate" in set(at.dataframe[0].value["Name"])
    assert at.selectbox(key="met_open").value == "newsletter_signup_rate"
    assert at.query_params["metric"] == "newsletter_signup_rate"
    # the form is empty again for the next metric (pressing Add again must not refuse a dupe)
    assert at.text_input(key="met_new_name").value == ""
    assert at.selectbox(key="met_new_kind").value is None
    assert at.text_area(key="met_new_description").value == ""
    with _db(fresh_demo_app) as s:
        m = s.scalars(select(Metric).where(Metric.name == "newsletter_signup_rate")).one()
        assert (m.kind, m.higher_is_better, m.description) == (
            "binomial", False, "Users who subscribe to the newsletter")
        entry = s.scalars(select(AuditEntry).where(AuditEntry.entity_type == "metric",
                                                   AuditEntry.entity_id == m.id)).one()
        assert entry.action == "create" and entry.actor == "demo-editor"


def test_metrics_page_bad_name_is_refused_in_plain_words(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "metrics")
    with _db(fresh_demo_app) as s:
        before = len(catalogue.list_metrics(s))
    _button(at, "Add metric").click().run()
    assert any("choose the metric's kind" in e.value for e in at.error)
    at.selectbox(key="met_new_kind").select("mean")
    _button(at, "Add metric").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "Nothing was saved" in errors and "Name is empty" in errors
    assert "String should have" not in errors
    at.text_input(key="met_new_name").input("checkout_conversion")  # taken
    _button(at, "Add metric").click().run()
    assert any("already has a metric named" in e.value for e in at.error)
    with _db(fresh_demo_app) as s:
        assert len(catalogue.list_metrics(s)) == before


def test_metrics_page_editor_edits_a_metric(fresh_demo_app: str) -> None:
    at = login("demo-editor")
    at.query_params["metric"] = "page_load_time_ms"
    at = open_page(at, "metrics")
    assert at.selectbox(key="met_open").value == "page_load_time_ms"
    form_text = next(t for t in at.text_area if t.label == "Description")
    form_text.input("Median time to interactive, in milliseconds")
    _button(at, "Save metric").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with _db(fresh_demo_app) as s:
        m = s.scalars(select(Metric).where(Metric.name == "page_load_time_ms")).one()
        assert m.description == "Median time to interactive, in milliseconds"
        actions = list(s.scalars(select(AuditEntry.action).where(
            AuditEntry.entity_type == "metric", AuditEntry.entity_id == m.id)))
        assert actions[-1] == "update"


def test_metrics_page_editor_adds_a_ratio_metric(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "metrics")
    at.text_input(key="met_new_name").input("clicks_per_view")
    at.selectbox(key="met_new_kind").select("ratio")
    at.text_input(key="met_new_numerator").input("clicks")
    at.text_input(key="met_new_denominator").input(" page_views ")
    _button(at, "Add metric").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    added = table[table["Name"] == "clicks_per_view"].iloc[0]
    assert added["Kind"] == "Ratio: clicks / page_views"
    with _db(fresh_demo_app) as s:
        m = s.scalars(select(Metric).where(Metric.name == "clicks_per_view")).one()
        assert (m.kind, m.numerator, m.denominator) == ("ratio", "clicks", "page_views")
        entry = s.scalars(select(AuditEntry).where(AuditEntry.entity_type == "metric",
                                                   AuditEntry.entity_id == m.id)).one()
        assert entry.action == "create" and entry.changes["numerator"] == [None, "clicks"]
    # The edit form shows its columns.
    assert at.selectbox(key="met_open").value == "clicks_per_view"
    edit = {t.label: t for t in at.text_input}
    assert (edit["Numerator column"].value, edit["Denominator column"].value) == (
        "clicks", "page_views")


def test_metrics_page_bad_ratio_columns_are_refused_in_plain_words(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "metrics")
    with _db(fresh_demo_app) as s:
        before = len(catalogue.list_metrics(s))
    at.text_input(key="met_new_name").input("clicks_per_view")
    at.selectbox(key="met_new_kind").select("ratio")
    _button(at, "Add metric").click().run()
    errors = " ".join(e.value for e in at.error)
    assert ("Nothing was saved: a ratio metric needs a numerator and a denominator column "
            "(e.g. revenue and sessions for revenue per session)") in errors
    at.text_input(key="met_new_numerator").input("Clicks")
    at.text_input(key="met_new_denominator").input("page_views")
    _button(at, "Add metric").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "Numerator: write the column's name in lower_snake_case, e.g. revenue" in errors
    assert "String should match" not in errors and "pattern" not in errors
    at.text_input(key="met_new_numerator").input("page_views")
    _button(at, "Add metric").click().run()
    assert any("numerator and denominator must be different columns" in e.value
               for e in at.error)
    at.selectbox(key="met_new_kind").select("mean")
    _button(at, "Add metric").click().run()
    assert any("only ratio metrics take a numerator and a denominator (this one is mean)"
               in e.value for e in at.error)
    with _db(fresh_demo_app) as s:
        assert len(catalogue.list_metrics(s)) == before


def test_metrics_page_ratio_columns_change_only_until_data_is_stored(
    fresh_demo_app: str,
) -> None:
    """The demo's revenue_per_session has data (Infinite scroll on search): its columns stay.
    A ratio metric without data yet takes new columns (audited)."""
    at = login("demo-editor")
    at.query_params["metric"] = "revenue_per_session"
    at = open_page(at, "metrics")
    fields = {t.label: t for t in at.text_input}
    assert fields["Numerator column"].value == "revenue"
    fields["Denominator column"].input("visits")
    _button(at, "Save metric").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "revenue_per_session already has data computed from revenue / sessions" in errors
    with _db(fresh_demo_app) as s:
        assert catalogue.get_metric(s, name="revenue_per_session").denominator == "sessions"
    at.text_input(key="met_new_name").input("clicks_per_view")
    at.selectbox(key="met_new_kind").select("ratio")
    at.text_input(key="met_new_numerator").input("clicks")
    at.text_input(key="met_new_denominator").input("views")
    _button(at, "Add metric").click().run()
    assert at.selectbox(key="met_open").value == "clicks_per_view"
    fields = {t.label: t for t in at.text_input}
    fields["Denominator column"].input("page_views")
    _button(at, "Save metric").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with _db(fresh_demo_app) as s:
        m = s.scalars(select(Metric).where(Metric.name == "clicks_per_view")).one()
        assert m.denominator == "page_views"
        changes = [a.changes for a in s.scalars(select(AuditEntry).where(
            AuditEntry.entity_type == "metric", AuditEntry.entity_id == m.id))]
        assert changes[-1] == {"denominator": ["views", "page_views"]}
    fields = {t.label: t for t in at.text_input}
    fields["Denominator column"].input("")
    _button(at, "Save metric").click().run()
    assert any("Denominator: write the column's name in lower_snake_case" in e.value
               for e in at.error)


def test_metrics_page_editor_adds_a_quantile_metric_with_its_level(fresh_demo_app: str) -> None:
    at = open_page(login("demo-editor"), "metrics")
    at.text_input(key="met_new_name").input("p99_checkout_ms")
    at.selectbox(key="met_new_kind").select("quantile")
    at.number_input(key="met_new_quantile_p").set_value(0.99)
    at.radio(key="met_new_direction").set_value(False)
    _button(at, "Add metric").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert table[table["Name"] == "p99_checkout_ms"].iloc[0]["Kind"] == "Quantile: p99 per user"
    with _db(fresh_demo_app) as s:
        m = s.scalars(select(Metric).where(Metric.name == "p99_checkout_ms")).one()
        assert (m.kind, m.quantile_p) == ("quantile", 0.99)
