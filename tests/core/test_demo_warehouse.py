"""The demo warehouse (`core.demo_warehouse`), end to end on SQLite: `seed_demo` writes the DuckDB
file beside the app database, describes it in the app (a connection, an assignment source, two
fact sources, four metrics, one a quantile metric) and refreshes three experiments from it,
whose results recover the known effects; the file holds late facts and units in two variants;
seeding again changes nothing, and a deleted file comes back the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.analysis.results import compute_results
from core.analysis.snapshot import MetricComparison
from core.config import PROJECT_ROOT, demo_warehouse_file
from core.demo import seed_demo
from core.demo_warehouse import (
    DEMO_WAREHOUSE_EXPERIMENTS,
    WAREHOUSE_DAYS,
    ensure_warehouse,
    warehouse_path,
)
from core.warehouse import catalog
from core.warehouse.refresh import latest_runs
from db.migrate import upgrade
from db.models import AuditEntry, MetricDailyStat, WarehouseRun
from db.session import make_engine

TODAY = date(2026, 6, 15)
EXPERIMENTS = {"One-tap reorder": "one_tap_reorder", "Search filters v2": "search_filters_v2",
               "Product bundles": "bundle_offers"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path_factory.mktemp('demo_warehouse') / 'demo.db'}"
    upgrade(url)
    engine = make_engine(url)
    session = Session(engine, expire_on_commit=False)
    seed_demo(session, today=TODAY)
    yield session
    session.close()
    engine.dispose()


def _row(session: Session, name: str, metric: str, treatment: str = "treatment"
         ) -> MetricComparison:
    exp = registry.get_experiment_by_name(session, name=name)
    snap = compute_results(session, experiment_id=exp.id)
    return next(c for c in snap.comparisons if c.metric == metric and c.treatment == treatment)


def test_demo_warehouse_file_sits_beside_the_app_database(demo: Session) -> None:
    path = warehouse_path(demo)
    database = Path(str(demo.get_bind().engine.url.database))
    assert path == database.resolve().parent / "warehouse.duckdb" and path.exists()
    (connection,) = catalog.list_connections(demo)
    assert connection.name == "demo_warehouse" and connection.url == f"duckdb:///{path}"
    assert connection.sources == ("exposures", "orders", "sessions")


def test_demo_warehouse_file_for_postgres_and_by_setting(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    assert demo_warehouse_file("postgresql+psycopg2://u@h:5432/experimentos") == \
        PROJECT_ROOT / "data" / "demo-warehouse-experimentos.duckdb"
    from core.config import get_settings

    monkeypatch.setenv("DEMO_WAREHOUSE_PATH", str(tmp_path / "w.duckdb"))
    get_settings.cache_clear()
    try:
        assert demo_warehouse_file("sqlite:///x.db") == tmp_path / "w.duckdb"
    finally:
        get_settings.cache_clear()


def test_demo_warehouse_holds_late_facts_and_units_in_two_variants(demo: Session) -> None:
    con = duckdb.connect(str(warehouse_path(demo)), read_only=True)
    try:
        late = con.execute("SELECT count(*) FROM orders WHERE late").fetchone()
        multi = con.execute(
            "SELECT count(*) FROM (SELECT experiment_key, unit_id FROM exposures "
            "GROUP BY ALL HAVING count(DISTINCT variant) > 1)").fetchone()
        last = con.execute("SELECT max(timestamp)::DATE, max(arrival_day) FROM orders"
                           ).fetchone()
        keys = {k for (k,) in con.execute("SELECT DISTINCT experiment_key FROM exposures")
                .fetchall()}
    finally:
        con.close()
    assert late is not None and late[0] > 100
    assert multi is not None and multi[0] > 10
    # the warehouse as loaded last night: nothing from today, no fact not yet arrived
    assert last == (TODAY - timedelta(days=1), TODAY - timedelta(days=1))
    assert keys == set(EXPERIMENTS.values())


def test_demo_warehouse_definitions_and_experiments(demo: Session) -> None:
    facts = {f.name: f for f in catalog.list_fact_sources(demo)}
    assert set(facts) == {"orders", "sessions"}
    assert facts["sessions"].columns == ("session_count", "page_views", "revenue")
    (assignment,) = catalog.list_assignment_sources(demo)
    assert assignment.dimensions == ("platform", "country")
    assert assignment.covariates == ("tenure_days",)
    assert assignment.experiments == tuple(sorted(EXPERIMENTS))
    metrics = {m.name: m for m in catalogue.list_metrics(demo) if m.fact_source}
    assert {n: (m.aggregation, m.value_column, m.denominator_column, m.window_days,
                m.cuped_days, m.kind) for n, m in metrics.items()} == {
        "conversion_7d": ("any", None, None, 7, None, "binomial"),
        "revenue_per_user_7d": ("sum", "revenue", None, 7, 14, "mean"),
        "rev_per_session_7d": ("ratio", "revenue", "session_count", 7, None, "ratio"),
        "p90_page_views_7d": ("sum", "page_views", None, 7, None, "quantile"),
    }
    assert metrics["p90_page_views_7d"].quantile_p == 0.9
    origin = TODAY - timedelta(days=WAREHOUSE_DAYS)
    for synthetic, (name, key) in zip(DEMO_WAREHOUSE_EXPERIMENTS, EXPERIMENTS.items(),
                                      strict=True):
        exp = registry.get_experiment_by_name(demo, name=name)
        assert (exp.status, exp.assignment_source, exp.experiment_key) == \
            ("running", "exposures", key)
        assert exp.actual_start == origin + timedelta(days=synthetic.first_day)
        runs = latest_runs(demo, exp.id)
        assert [r.role for r in runs][0] == "assignment"
        assert runs[0].units is not None and runs[0].units > 9_000
        assert runs[0].multi_variant_units  # counted and excluded
        assert all("ExperimentOS" in r.sql and "SELECT" in r.sql for r in runs)


def test_demo_warehouse_results_recover_the_known_effects(demo: Session) -> None:
    # One-tap reorder: +15% order rate
    conversion = _row(demo, "One-tap reorder", "conversion_7d")
    assert conversion.decision_state == "significant" and conversion.lift > 0.05
    revenue = _row(demo, "One-tap reorder", "revenue_per_user_7d")
    assert revenue.cuped and revenue.decision_state == "significant"
    # regression-adjusted on its pre-period and the declared covariate (tenure_days)
    assert revenue.test == "regression_adjusted"
    assert revenue.adjustment == f"CUPED: −{revenue.variance_reduction:.0%} variance"
    assert revenue.variance_reduction is not None and revenue.variance_reduction > 0.1
    assert conversion.test == "regression_adjusted"  # on tenure_days only (no pre-period)
    # Search filters v2: no effect
    null = _row(demo, "Search filters v2", "revenue_per_user_7d")
    assert null.decision_state == "not_significant"
    assert null.lift_ci_low < 0 < null.lift_ci_high
    # Product bundles: +15% revenue per order; +10% orders over +25% sessions
    per_session = _row(demo, "Product bundles", "rev_per_session_7d", "discounted")
    assert per_session.decision_state == "significant" and per_session.lift > 0
    upsell = _row(demo, "Product bundles", "rev_per_session_7d", "upsell")
    assert upsell.lift < 0
    assert _row(demo, "Product bundles", "conversion_7d", "upsell").lift > 0
    # ... and the p90 of page views per user, a quantile read in the warehouse, rises with
    # the upsell's sessions (core.stats.quantile_test on the stored arms).
    p90 = _row(demo, "Product bundles", "p90_page_views_7d", "upsell")
    assert (p90.kind, p90.test, p90.decision_state) == ("quantile", "quantile_woodruff",
                                                        "significant")
    assert p90.treatment_mean > p90.control_mean
    assert _row(demo, "Product bundles", "p90_page_views_7d", "discounted").test == \
        "quantile_woodruff"


def test_demo_warehouse_seeding_again_changes_nothing(demo: Session) -> None:
    def state() -> tuple[object, ...]:
        return (demo.scalar(select(func.count()).select_from(MetricDailyStat)),
                demo.scalar(select(func.count()).select_from(AuditEntry)),
                tuple(demo.execute(select(WarehouseRun.source, WarehouseRun.ran_at)
                                   .order_by(WarehouseRun.id)).all()))

    path = warehouse_path(demo)
    before, stamp = state(), path.stat().st_mtime_ns
    summary = seed_demo(demo, today=TODAY + timedelta(days=3))  # another day: same demo
    assert "Demo warehouse" in summary and "nothing added, 0 experiments refreshed" in summary
    assert state() == before and path.stat().st_mtime_ns == stamp
    # a deleted file is written again for the experiments' day 0, whatever the day
    path.unlink()
    assert ensure_warehouse(demo, today=TODAY + timedelta(days=3)) == \
        (path, TODAY - timedelta(days=WAREHOUSE_DAYS), True)
    assert state() == before
