"""The refresh from the warehouse, end to end against a real embedded DuckDB file: the stored
definitions become the spec, the engine's records land in the store (the sums a pandas
computation gives), the queries are recorded; twice writes nothing new; only open exposure
days are recomputed, and incrementally equals a full recompute; nothing is written on error;
the scheduled refresh takes the same path."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.artifacts import LocalArtifactStore
from core.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    RuleViolation,
    WarehouseUnavailable,
)
from core.warehouse import catalog
from core.warehouse.catalog import warehouse_limits
from core.warehouse.refresh import build_spec, latest_runs, refresh_from_warehouse
from core.workflows import refresh as workflows
from db import metric_repository as mrepo
from db import repositories as repo
from db.models import (
    AssignmentDailyCount,
    AuditEntry,
    IngestLoad,
    Metric,
    MetricDailyStat,
    WarehouseRun,
)
from tests.conftest import ADMIN, EDITOR, VIEWER
from tests.core.warehouse import duckdb_warehouse as wh


@pytest.fixture
def warehouse_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.duckdb"
    wh.write_warehouse(path, *wh.tables())
    return path


def _counts(session: Session, experiment_id: int) -> dict[str, object]:
    """What a refresh may write, and when each stored row was last written (a run's SQL
    changes with the clock it checks future timestamps against; its state should not)."""
    def count(model: type) -> int:
        return int(session.scalar(select(func.count()).select_from(model)
                                  .where(model.experiment_id == experiment_id)) or 0)

    return {
        "stats": count(MetricDailyStat),
        "assignments": count(AssignmentDailyCount),
        "loads": sorted((r.key, r.rows_written) for r in session.scalars(
            select(IngestLoad).where(IngestLoad.experiment_id == experiment_id))),
        "audit": int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0),
        "runs": sorted((r.source, r.final_through, r.definition_key) for r in session.scalars(
            select(WarehouseRun).where(WarehouseRun.experiment_id == experiment_id)
            .execution_options(populate_existing=True))),
        "loaded_at": sorted(str(t) for t in session.scalars(
            select(MetricDailyStat.loaded_at)
            .where(MetricDailyStat.experiment_id == experiment_id))),
    }


def _stored(session: Session, experiment_id: int, metric: str) -> pd.DataFrame:
    metric_id = repo.get_metric_by_name(session, name=metric).id  # type: ignore[union-attr]
    variants = {v.id: v.name for v in repo.get_experiment(
        session, experiment_id=experiment_id).variants}  # type: ignore[union-attr]
    rows = session.scalars(select(MetricDailyStat).where(
        MetricDailyStat.experiment_id == experiment_id, MetricDailyStat.metric_id == metric_id)
        .execution_options(populate_existing=True))
    return pd.DataFrame(
        [(variants[r.variant_id], r.day, r.n, r.sum, r.sum_squares) for r in rows],
        columns=["variant", "day", "n", "sum", "sum_squares"],
    ).sort_values(["variant", "day"]).reset_index(drop=True)


def test_refresh_build_spec_reads_the_stored_definitions(session: Session,
                                                         warehouse_file: Path) -> None:
    exp = wh.define(session, warehouse_file)
    spec = build_spec(session, exp, today=wh.utc_today())
    assert (spec.experiment_key, spec.variants) == (wh.KEY, ("control", "treatment"))
    assert (spec.start, spec.end) == (wh.start_day(), wh.utc_today())
    assert spec.assignment.name == "exposures" and spec.assignment.sql == wh.ASSIGNMENT_SQL
    assert spec.assignment.connection.url == f"duckdb:///{warehouse_file}"
    assert [f.name for f in spec.facts] == ["orders"]
    assert spec.facts[0].columns == ("revenue", "items")
    by_name = {m.name: m for m in spec.metrics}
    assert list(by_name) == sorted(["wh_buyers", *wh.ALL_SECONDARIES])
    ratio = by_name["wh_revenue_per_item"]
    assert (ratio.aggregation, ratio.column, ratio.denominator, ratio.window_days) == (
        "ratio", "revenue", "items", 3)
    assert (by_name["wh_revenue"].cuped_days, by_name["wh_buyers"].column) == (14, None)
    assert "Checkout v2" in spec.label


def test_refresh_from_warehouse_stores_what_pandas_computes(session: Session,
                                                            warehouse_file: Path) -> None:
    exposures, orders = wh.tables()
    exp = wh.define(session, warehouse_file)
    report = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)

    assert report.changed and report.stats_rows_written > 0 and report.rows_read > 0
    assert (report.units, report.multi_variant_units) == (wh.UNITS - 2, 2)
    assert report.metrics == tuple(sorted(["wh_buyers", *wh.ALL_SECONDARIES]))
    assert report.open_from == {"orders": wh.start_day()}
    assert report.final_through == {"orders": None}  # wh_order_value has no window
    assert any("more than one variant" in note for note in report.notes)

    expected = wh.expected_sums(exposures, orders, window_days=7)
    stored = _stored(session, exp, "wh_revenue")
    assert stored[["variant", "day", "n"]].values.tolist() == expected[
        ["variant", "day", "n"]].values.tolist()
    np.testing.assert_allclose(stored["sum"], expected["sum"], rtol=1e-9)
    np.testing.assert_allclose(stored["sum_squares"], expected["sum_squares"], rtol=1e-9)
    names = {v.id: v.name for v in repo.get_experiment(  # type: ignore[union-attr]
        session, experiment_id=exp).variants}
    units = dict.fromkeys(names.values(), 0)
    for row in session.scalars(select(AssignmentDailyCount).where(
            AssignmentDailyCount.experiment_id == exp)):
        units[names[row.variant_id]] += row.units
    assert units == report.units_by_variant == {"control": 199, "treatment": 199}
    assert mrepo.dimensions(session, experiment_id=exp) == ["platform"]  # segment slices too

    loads = session.scalars(select(IngestLoad).where(IngestLoad.experiment_id == exp)).all()
    assert [(load.kind, load.key) for load in loads] == [
        ("warehouse", "warehouse refresh of 'Checkout v2', fact source orders")]
    runs = latest_runs(session, exp)
    assert [(r.source, r.role) for r in runs] == [("exposures", "assignment"),
                                                  ("orders", "fact")]
    assignment, fact = runs
    assert "exposures" in assignment.sql and assignment.rows_returned > 0
    assert (assignment.units, assignment.multi_variant_units) == (wh.UNITS - 2, 2)
    assert "orders" in fact.sql and fact.rows_returned > 0 and fact.seconds > 0
    assert (fact.open_from, fact.final_through, fact.ran_by) == (wh.start_day(), None,
                                                                EDITOR.name)
    assert fact.definition_key and assignment.definition_key  # its units per day are kept


def test_refresh_from_warehouse_twice_writes_nothing_new(session: Session,
                                                         warehouse_file: Path) -> None:
    exp = wh.define(session, warehouse_file)
    refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    before = _counts(session, exp)
    again = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    assert not again.changed and again.stats_rows_written == 0 and again.written_for == ()
    assert again.rows_read > 0  # it did ask the warehouse
    assert _counts(session, exp) == before


def test_refresh_from_warehouse_recomputes_only_the_open_exposure_days(
    session: Session, warehouse_file: Path
) -> None:
    """Days whose windows and late-data allowance have passed are kept; a late fact of such a
    day is only picked up by a full refresh; a fact of an open day is picked up at once."""
    exposures, orders = wh.tables()
    exp = wh.define(session, warehouse_file, secondaries=wh.WINDOWED_SECONDARIES)
    today = wh.utc_today()
    late_days = warehouse_limits().late_data_days
    first = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    final = today - timedelta(days=7 + late_days + 1)  # the longest window: 7 days
    assert first.final_through == {"orders": final}
    assert first.open_from == {"orders": wh.start_day()}

    kept = exposures[exposures["exp_key"] == wh.KEY].groupby("unit_id")["ts"].min()
    closed_unit = kept[kept.dt.date <= final].index[0]
    open_unit = kept[kept.dt.date > final].index[0]
    late = pd.DataFrame([
        (closed_unit, kept[closed_unit] + timedelta(hours=1), 1000.0, 1),
        (open_unit, kept[open_unit] + timedelta(hours=1), 1000.0, 1),
    ], columns=orders.columns)
    wh.write_warehouse(warehouse_file, exposures, pd.concat([orders, late]))
    before = _stored(session, exp, "wh_revenue").set_index(["variant", "day"])["sum"]

    second = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    assert second.open_from == {"orders": final + timedelta(days=1)}
    after = _stored(session, exp, "wh_revenue").set_index(["variant", "day"])["sum"]
    closed_day, open_day = kept[closed_unit].date(), kept[open_unit].date()
    closed_key = (_variant_of(exposures, closed_unit), closed_day)
    open_key = (_variant_of(exposures, open_unit), open_day)
    assert after[closed_key] == before[closed_key]  # final: not recomputed
    assert after[open_key] == pytest.approx(before[open_key] + 1000.0, rel=1e-12)

    full = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR, full=True)
    assert full.full and full.open_from == {"orders": wh.start_day()} and full.changed
    final_sums = _stored(session, exp, "wh_revenue").set_index(["variant", "day"])["sum"]
    assert final_sums[closed_key] == pytest.approx(before[closed_key] + 1000.0, rel=1e-12)
    assert final_sums[open_key] == after[open_key]


def _variant_of(exposures: pd.DataFrame, unit: str) -> str:
    return str(exposures.loc[exposures["unit_id"] == unit, "variant"].iloc[0])


def test_refresh_from_warehouse_incremental_equals_a_full_recompute(
    session: Session, tmp_path: Path
) -> None:
    """Day after day, exposures and facts arrive (facts up to two days late, the late-data
    allowance); each day's refresh recomputes only the open days; at the end a full
    recompute finds nothing to change."""
    rng = np.random.default_rng(11)
    exposures, orders = wh.tables(seed=3)
    arrival = orders["ts"] + pd.to_timedelta(rng.uniform(0, 2, len(orders)), unit="D")
    path = tmp_path / "days.duckdb"
    start = wh.start_day()
    wh.write_warehouse(path, exposures.iloc[:0], orders.iloc[:0])
    exp = wh.define(session, path, secondaries=wh.WINDOWED_SECONDARIES, start=start)
    opened = []
    for offset in range(2, (wh.utc_today() - start).days + 1):
        day = start + timedelta(days=offset)
        now = datetime(day.year, day.month, day.day, 1)
        wh.write_warehouse(path, exposures[exposures["ts"] <= now],
                           orders[(orders["ts"] <= now) & (arrival <= now)])
        report = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR, today=day,
                                        now=now)
        opened.append(report.open_from["orders"])
    assert opened[0] == start and opened[-1] > start  # later days recomputed less
    full = refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR, full=True,
                                  today=day, now=now)
    assert not full.changed and full.stats_rows_written == 0
    # The units of the final days came from the store; the totals are a full count's.
    assert (report.units, report.multi_variant_units, report.units_by_variant) == (
        full.units, full.multi_variant_units, full.units_by_variant)


def test_refresh_from_warehouse_writes_nothing_when_it_fails(session: Session,
                                                             warehouse_file: Path) -> None:
    exp = wh.define(session, warehouse_file)
    refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    before = _counts(session, exp)
    catalog.update_fact_source(session, name="orders", changes={
        "sql": "SELECT unit_id, ts AS timestamp, revenue, items FROM missing_orders"},
        actor=EDITOR)
    audit = _counts(session, exp)["audit"]
    with pytest.raises(InvalidInput, match="orders"):
        refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    assert _counts(session, exp) == {**before, "audit": audit}

    catalog.update_fact_source(session, name="orders", changes={"sql": wh.ORDERS_SQL},
                               actor=EDITOR)
    catalog.update_connection(session, name="shop", changes={
        "url": f"duckdb:///{warehouse_file.with_name('gone.duckdb')}"}, actor=ADMIN)
    audit = _counts(session, exp)["audit"]
    with pytest.raises(WarehouseUnavailable, match="does not exist"):
        refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    assert _counts(session, exp) == {**before, "audit": audit}
    with pytest.raises(PermissionDenied):
        refresh_from_warehouse(session, experiment_id=exp, actor=VIEWER)


def test_refresh_from_warehouse_refuses_experiments_it_cannot_refresh(
    session: Session, warehouse_file: Path
) -> None:
    exp = wh.define(session, warehouse_file)
    view = catalog.attach_experiment(session, experiment_id=exp, assignment_source=None,
                                     experiment_key=None, expected_version=2, actor=EDITOR,
                                     reason="fed by files after all")
    assert view.assignment_source is None
    with pytest.raises(RuleViolation, match="attach"):
        refresh_from_warehouse(session, experiment_id=exp, actor=EDITOR)
    with pytest.raises(NotFound):
        refresh_from_warehouse(session, experiment_id=999_999, actor=EDITOR)
    with pytest.raises(NotFound):
        latest_runs(session, 999_999)
    assert latest_runs(session, exp) == []


def test_refresh_without_warehouse_metrics_says_what_is_missing(
    session: Session, warehouse_file: Path
) -> None:
    wh.define(session, warehouse_file)
    from core import catalogue, registry

    catalogue.create_metric(session, data={"name": "file_conv", "kind": "binomial"},
                            actor=EDITOR)
    view = registry.create_experiment(session, data={
        "name": "Files only", "owner": "o", "hypothesis": "h", "primary_metric": "file_conv",
        "variants": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        "planned_sample_size": 100, "assignment_source": "exposures",
        "experiment_key": wh.KEY}, actor=EDITOR)
    with pytest.raises(RuleViolation, match="launched"):
        refresh_from_warehouse(session, experiment_id=view.id, actor=EDITOR)
    registry.transition_experiment(session, experiment_id=view.id, to_status="running",
                                   expected_version=view.version, actor=EDITOR,
                                   on=wh.start_day())
    with pytest.raises(RuleViolation, match="no metric computed from a fact source"):
        refresh_from_warehouse(session, experiment_id=view.id, actor=EDITOR)


def test_refresh_ingest_interval_takes_the_warehouse_path(session: Session,
                                                          warehouse_file: Path,
                                                          tmp_path: Path) -> None:
    """The scheduled refresh (Airflow, CLI) refreshes an attached experiment from its
    warehouse: the outcome says so; re-running the interval writes nothing."""
    exp = wh.define(session, warehouse_file)
    today = wh.utc_today()
    store = LocalArtifactStore(tmp_path / "artifacts")
    outcome = workflows.ingest_interval(
        session, experiment_id=exp, interval_start=today - timedelta(days=1),
        interval_end=today, actor=workflows.SCHEDULER, store=store)
    assert outcome.source == "warehouse" and outcome.changed and outcome.rows_read > 0
    assert outcome.notes and "exposure days recomputed: orders from" in outcome.notes[0]
    assert outcome.to_dict()["source"] == "warehouse"
    assert session.scalar(select(func.count()).select_from(Metric)) >= 4
    again = workflows.ingest_interval(
        session, experiment_id=exp, interval_start=today - timedelta(days=1),
        interval_end=today, actor=workflows.SCHEDULER, store=store)
    assert not again.changed and again.stats_rows_written == 0


def test_refresh_failures_a_retry_may_fix_are_not_permanent() -> None:
    assert not workflows.is_permanent_failure(WarehouseUnavailable("the warehouse is down"))
    assert workflows.is_permanent_failure(InvalidInput("fact source 'orders': bad column"))
    assert workflows.is_permanent_failure(RuleViolation("not attached"))
