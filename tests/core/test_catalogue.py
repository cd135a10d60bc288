"""core.catalogue: list, create, and edit a metric's unit, direction and description (audited);
name and kind cannot change, a ratio metric's columns only until data is stored for it;
viewers cannot write; bad input writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import catalogue
from core.auth import Actor
from core.data.ingestion import ingest_file
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from db.models import AuditEntry
from tests.core.data.test_ingestion import write_parquet
from tests.core.data.test_ingestion_ratio import ratio_experiment, ratio_units

EDITOR = Actor(name="erin", role="editor")
VIEWER = Actor(name="vic", role="viewer")


def _audits(session: Session, metric_id: int) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(
        AuditEntry.entity_type == "metric", AuditEntry.entity_id == metric_id)
        .order_by(AuditEntry.id)))


def test_catalogue_update_metric_changes_and_audits(session: Session) -> None:
    created = catalogue.create_metric(
        session, data={"name": "basket_value", "kind": "mean", "unit": "EUR"}, actor=EDITOR)
    updated = catalogue.update_metric(
        session, name="basket_value", actor=EDITOR,
        changes={"unit": "USD", "higher_is_better": True, "description": "Order value"})
    assert (updated.name, updated.kind, updated.unit, updated.description) == (
        "basket_value", "mean", "USD", "Order value")
    assert catalogue.get_metric(session, name="basket_value").unit == "USD"
    last = _audits(session, created.id)[-1]
    assert last.action == "update" and last.actor == "erin"
    assert last.changes == {"unit": ["EUR", "USD"], "description": ["", "Order value"]}


def test_catalogue_update_metric_without_a_change_writes_nothing(session: Session) -> None:
    created = catalogue.create_metric(session, data={"name": "clicks", "kind": "mean"},
                                      actor=EDITOR)
    catalogue.update_metric(session, name="clicks", changes={"unit": ""}, actor=EDITOR)
    assert [a.action for a in _audits(session, created.id)] == ["create"]


def test_catalogue_update_metric_refuses_name_kind_bad_input_and_viewers(
    session: Session,
) -> None:
    catalogue.create_metric(session, data={"name": "visits", "kind": "mean"}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="kind"):
        catalogue.update_metric(session, name="visits", changes={"kind": "binomial"},
                                actor=EDITOR)
    with pytest.raises(InvalidInput, match="unit"):
        catalogue.update_metric(session, name="visits", changes={"unit": "x" * 33}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="higher_is_better"):
        catalogue.update_metric(session, name="visits", changes={"higher_is_better": 1},
                                actor=EDITOR)
    with pytest.raises(NotFound):
        catalogue.update_metric(session, name="ghost", changes={"unit": "s"}, actor=EDITOR)
    with pytest.raises(PermissionDenied):
        catalogue.update_metric(session, name="visits", changes={"unit": "s"}, actor=VIEWER)
    assert catalogue.get_metric(session, name="visits").unit == ""


def test_catalogue_create_ratio_metric_keeps_its_columns_and_refuses_bad_ones(
    session: Session,
) -> None:
    made = catalogue.create_metric(session, data={
        "name": "clicks_per_view", "kind": "ratio", "numerator": "clicks",
        "denominator": "page_views"}, actor=EDITOR)
    assert (made.kind, made.numerator, made.denominator) == ("ratio", "clicks", "page_views")
    cases = [
        ({"kind": "ratio"}, "a ratio metric needs a numerator and a denominator column (e.g. "
         "revenue and sessions for revenue per session)"),
        ({"kind": "ratio", "numerator": "Revenue", "denominator": "sessions"},
         "numerator: write the column's name in lower_snake_case, e.g. revenue"),
        ({"kind": "ratio", "numerator": "sessions", "denominator": "sessions"},
         "numerator and denominator must be different columns"),
        ({"kind": "mean", "numerator": "revenue"},
         "only ratio metrics take a numerator and a denominator (this one is mean)"),
    ]
    for extra, problem in cases:
        with pytest.raises(InvalidInput) as caught:
            catalogue.create_metric(session, data={"name": "rps", **extra}, actor=EDITOR)
        assert caught.value.problems == [problem]
    assert [m.name for m in catalogue.list_metrics(session)] == ["clicks_per_view"]


def test_catalogue_update_ratio_columns_until_data_is_stored(
    session: Session, tmp_path: Path
) -> None:
    exp = ratio_experiment(session)  # revenue_per_session = revenue / sessions, no data yet
    moved = catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                                    changes={"numerator": "net_revenue"})
    assert (moved.numerator, moved.denominator) == ("net_revenue", "sessions")
    assert _audits(session, moved.id)[-1].changes == {"numerator": ["revenue", "net_revenue"]}
    with pytest.raises(InvalidInput, match="must be different columns"):
        catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                                changes={"numerator": "sessions"})
    with pytest.raises(InvalidInput, match="denominator: write the column's name"):
        catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                                changes={"denominator": ""})
    with pytest.raises(InvalidInput, match=r"only ratio metrics take .* \(this one is binomial\)"):
        catalogue.update_metric(session, name="conv", actor=EDITOR,
                                changes={"numerator": "x"})
    catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                            changes={"numerator": "revenue"})
    cols = ratio_units(200)
    ingest_file(session, path=write_parquet(tmp_path / "r.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    with pytest.raises(Conflict, match="already has data computed from revenue / sessions"):
        catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                                changes={"denominator": "visits"})
    # Its other fields still change; unchanged columns are no change.
    kept = catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                                   changes={"unit": "EUR", "numerator": "revenue"})
    assert (kept.unit, kept.numerator, kept.denominator) == ("EUR", "revenue", "sessions")


# --------------------------------------------------------------------------- warehouse metrics


@pytest.fixture
def orders(session: Session) -> str:
    """A fact source named orders (revenue, items, sessions) on an in-memory DuckDB."""
    from core.warehouse import catalog
    from tests.conftest import ADMIN

    catalog.create_connection(session, data={"name": "wh", "url": "duckdb://"}, actor=ADMIN)
    return catalog.create_fact_source(session, data={
        "name": "orders", "connection": "wh",
        "sql": "SELECT unit_id, ts AS timestamp, revenue, items, sessions FROM orders",
        "columns": ["revenue", "items", "sessions"]}, actor=EDITOR).name


@pytest.mark.parametrize(
    ("aggregation", "kind"),
    [("sum", "mean"), ("count", "mean"), ("any", "binomial"), ("mean", "ratio"),
     ("ratio", "ratio")],
)
def test_catalogue_warehouse_metric_kind_follows_its_aggregation(
    session: Session, orders: str, aggregation: str, kind: str
) -> None:
    data = {"name": f"m_{aggregation}", "fact_source": orders, "aggregation": aggregation,
            "window_days": 7, "cuped_days": 14}
    if aggregation in ("sum", "mean", "ratio"):
        data["value_column"] = "revenue"
    if aggregation == "ratio":
        data["denominator_column"] = "sessions"
    view = catalogue.create_metric(session, data=data, actor=EDITOR)
    # every aggregation takes a CUPED pre-period (a mean's or ratio's: its numerator's)
    assert (view.kind, view.fact_source, view.aggregation, view.window_days,
            view.cuped_days) == (kind, orders, aggregation, 7, 14)
    assert (view.numerator, view.denominator) == (None, None)
    assert catalogue.get_metric(session, name=view.name) == view
    assert view in catalogue.list_metrics(session)
    entry = _audits(session, view.id)[0]
    assert entry.changes["fact_source"] == [None, orders]
    assert entry.changes["aggregation"] == [None, aggregation]


def test_catalogue_warehouse_metric_refuses_every_broken_rule_at_once(
    session: Session, orders: str
) -> None:
    before = len(catalogue.list_metrics(session))
    with pytest.raises(InvalidInput) as excinfo:
        catalogue.create_metric(session, data={
            "name": "aov", "kind": "mean", "fact_source": orders, "aggregation": "ratio",
            "value_column": "revenue", "numerator": "revenue", "cuped_days": 14,
        }, actor=EDITOR)
    problems = excinfo.value.problems
    assert any(p.startswith("kind: a ratio metric is ratio") for p in problems)
    assert any(p.startswith("numerator: a metric on a fact source names") for p in problems)
    assert any(p.startswith("denominator_column: a ratio metric divides") for p in problems)
    assert not any(p.startswith("cuped_days") for p in problems)  # a ratio may take CUPED
    assert len(problems) == 3, problems
    with pytest.raises(InvalidInput) as excinfo:
        catalogue.create_metric(session, data={
            "name": "spend", "fact_source": orders, "aggregation": "sum",
            "value_column": "discount"}, actor=EDITOR)
    assert excinfo.value.problems == [
        "value_column: 'discount' is not a column of fact source 'orders' (it declares "
        "revenue, items, sessions)"]
    with pytest.raises(InvalidInput, match="no fact source named 'refunds'"):
        catalogue.create_metric(session, data={
            "name": "spend", "fact_source": "refunds", "aggregation": "count"}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="value_column: a sum metric aggregates a column"):
        catalogue.create_metric(session, data={
            "name": "spend", "fact_source": orders, "aggregation": "sum"}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="fact_source: an aggregation belongs"):
        catalogue.create_metric(session, data={"name": "spend", "aggregation": "sum",
                                               "value_column": "revenue"}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="window_days: only a metric computed from a fact"):
        catalogue.create_metric(session, data={"name": "spend", "kind": "mean",
                                               "window_days": 7}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="aggregation: a metric on a fact source says"):
        catalogue.create_metric(session, data={"name": "spend", "kind": "mean",
                                               "fact_source": orders}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="kind: give binomial, mean, ratio or quantile"):
        catalogue.create_metric(session, data={"name": "spend"}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="window_days"):
        catalogue.create_metric(session, data={
            "name": "spend", "fact_source": orders, "aggregation": "count",
            "window_days": 0}, actor=EDITOR)
    assert len(catalogue.list_metrics(session)) == before


def test_catalogue_warehouse_quantile_metric_of_a_per_unit_sum_or_count(
    session: Session, orders: str
) -> None:
    """quantile_p on a fact source's sum or count makes a quantile metric (kind inferred);
    another aggregation, CUPED or a kind that is not quantile is refused, all at once."""
    p90 = catalogue.create_metric(session, data={
        "name": "p90_spend", "fact_source": orders, "aggregation": "sum",
        "value_column": "revenue", "window_days": 7, "quantile_p": 0.9}, actor=EDITOR)
    assert (p90.kind, p90.quantile_p, p90.aggregation, p90.fact_source) == (
        "quantile", 0.9, "sum", orders)
    p50 = catalogue.create_metric(session, data={
        "name": "p50_orders", "kind": "quantile", "fact_source": orders, "aggregation": "count",
        "quantile_p": 0.5}, actor=EDITOR)
    assert (p50.kind, p50.quantile_p) == ("quantile", 0.5)
    assert _audits(session, p90.id)[0].changes["quantile_p"] == [None, 0.9]
    with pytest.raises(InvalidInput) as excinfo:
        catalogue.create_metric(session, data={
            "name": "p90_aov", "fact_source": orders, "aggregation": "mean",
            "value_column": "revenue", "quantile_p": 0.9, "cuped_days": 7}, actor=EDITOR)
    assert excinfo.value.problems == [
        "aggregation: a quantile metric takes the quantile of each unit's sum or count of the "
        "fact source (e.g. sum of load_ms), not of mean",
        "cuped_days: a quantile metric is never CUPED-adjusted (its test is on order "
        "statistics): leave cuped_days out"]
    with pytest.raises(InvalidInput, match="kind: only quantile metrics take quantile_p"):
        catalogue.create_metric(session, data={
            "name": "p90_x", "kind": "mean", "fact_source": orders, "aggregation": "sum",
            "value_column": "revenue", "quantile_p": 0.9}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="quantile_p: a quantile metric needs the level"):
        catalogue.create_metric(session, data={
            "name": "p90_x", "kind": "quantile", "fact_source": orders, "aggregation": "sum",
            "value_column": "revenue"}, actor=EDITOR)
    # Its window and column may change; the rules hold on edit too.
    edited = catalogue.update_metric(session, name="p90_spend", actor=EDITOR,
                                     changes={"window_days": 3, "value_column": "items"})
    assert (edited.kind, edited.quantile_p, edited.window_days) == ("quantile", 0.9, 3)
    with pytest.raises(InvalidInput, match="cuped_days: a quantile metric is never"):
        catalogue.update_metric(session, name="p90_spend", actor=EDITOR,
                                changes={"cuped_days": 7})


def test_catalogue_warehouse_metric_window_and_columns_may_change(
    session: Session, orders: str
) -> None:
    catalogue.create_metric(session, data={
        "name": "spend", "fact_source": orders, "aggregation": "sum", "value_column": "revenue",
        "window_days": 7, "cuped_days": 14}, actor=EDITOR)
    view = catalogue.update_metric(session, name="spend", actor=EDITOR, changes={
        "window_days": None, "value_column": "items", "unit": "EUR"})
    assert (view.window_days, view.cuped_days, view.value_column, view.unit) == (
        None, 14, "items", "EUR")
    assert view.fact_source == orders
    with pytest.raises(InvalidInput, match="'discount' is not a column"):
        catalogue.update_metric(session, name="spend", actor=EDITOR,
                                changes={"value_column": "discount"})
    with pytest.raises(InvalidInput, match="denominator_column: only ratio metrics"):
        catalogue.update_metric(session, name="spend", actor=EDITOR,
                                changes={"denominator_column": "sessions"})
    catalogue.create_metric(session, data={"name": "file_spend", "kind": "mean"}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="only a metric computed from a fact source"):
        catalogue.update_metric(session, name="file_spend", actor=EDITOR,
                                changes={"window_days": 3})
    with pytest.raises(InvalidInput):
        catalogue.update_metric(session, name="spend", actor=EDITOR,
                                changes={"aggregation": "count"})


def test_catalogue_quantile_metric_needs_its_level_in_the_open_unit_interval(
        session: Session) -> None:
    made = catalogue.create_metric(
        session, data={"name": "p90_load_ms", "kind": "quantile", "quantile_p": 0.9,
                       "unit": "ms", "higher_is_better": False}, actor=EDITOR)
    assert (made.kind, made.quantile_p) == ("quantile", 0.9)
    assert catalogue.get_metric(session, name="p90_load_ms").quantile_p == 0.9
    for bad, says in (({"kind": "quantile"}, "needs quantile_p"),
                      ({"kind": "quantile", "quantile_p": 1.0}, "quantile_p"),
                      ({"kind": "quantile", "quantile_p": 0}, "quantile_p"),
                      ({"kind": "mean", "quantile_p": 0.5}, "only quantile metrics")):
        with pytest.raises(InvalidInput, match=says):
            catalogue.create_metric(session, data={"name": "p_bad", **bad}, actor=EDITOR)
    assert [m.name for m in catalogue.list_metrics(session) if m.name == "p_bad"] == []
