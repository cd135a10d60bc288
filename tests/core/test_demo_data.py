"""The demo metric data, end to end on SQLite and PostgreSQL: `seed_demo` loads it (files through
DuckDB, one experiment by SQL push-down over the `events` table) and the results recover the
known effects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.analysis.results import compute_results, refresh_running
from core.analysis.segments import segment_results
from core.analysis.snapshot import ResultsSnapshot
from core.data.metric_sources import get_metric_source
from core.demo import seed_demo
from core.demo_data import DEMO_TRUTH, generate_units
from db import metric_repository as mrepo
from db.demo_events import EVENTS
from db.migrate import upgrade
from db.models import MetricDailyStat
from db.session import make_engine
from tests.conftest import EDITOR, create_postgres_database, drop_postgres_database

TODAY = date(2026, 6, 15)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Session]:
    """A freshly migrated database with the demo portfolio and its metric data (committed)."""
    if request.param == "sqlite":
        url: str | None = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    else:
        url = create_postgres_database("experimentos_demo")
        if url is None:
            pytest.skip("no PostgreSQL server")
    assert url is not None
    upgrade(url)
    engine = make_engine(url)
    session = Session(engine, expire_on_commit=False)
    seed_demo(session, today=TODAY)
    yield session
    session.close()
    engine.dispose()
    if request.param == "postgresql":
        drop_postgres_database(url)


def results(session: Session, name: str) -> ResultsSnapshot:
    exp = registry.get_experiment_by_name(session, name=name)
    return compute_results(session, experiment_id=exp.id)


def row(snap: ResultsSnapshot, metric: str, treatment: str = "treatment"):  # type: ignore[no-untyped-def]
    return next(c for c in snap.comparisons if c.metric == metric and c.treatment == treatment)


def test_demo_clear_winner_is_significant_and_its_ci_covers_the_true_lift(demo: Session) -> None:
    conv = row(results(demo, "Checkout button colour"), "checkout_conversion")
    assert conv.decision_state == "significant"
    truth = DEMO_TRUTH["Checkout button colour"].effects[("checkout_conversion", "treatment")]
    assert conv.lift_ci_low < truth < conv.lift_ci_high


def test_demo_flat_experiment_is_not_significant_and_loaded_by_sql(demo: Session) -> None:
    snap = results(demo, "Search ranking v2")
    assert {c.decision_state for c in snap.comparisons} == {"not_significant"}
    # one-sided (guardrail) intervals have an open end, stored as None (= -inf / +inf)
    assert all((c.lift_ci_low is None or c.lift_ci_low < 0)
               and (c.lift_ci_high is None or c.lift_ci_high > 0) for c in snap.comparisons)
    exp = registry.get_experiment_by_name(demo, name="Search ranking v2")
    source = get_metric_source(demo, experiment_id=exp.id)
    assert source is not None and source.url is None and "FROM events" in source.query
    assert row(snap, "session_minutes").cuped
    assert demo.scalar(select(func.count()).select_from(EVENTS)) > 50_000


def test_demo_sample_ratio_mismatch_overrides_everything(demo: Session) -> None:
    snap = results(demo, "Onboarding checklist")
    assert snap.srm is not None and snap.srm.flagged
    assert {c.decision_state for c in snap.comparisons} == {"srm_untrustworthy"}


def test_demo_guardrail_regression_is_a_breach(demo: Session) -> None:
    snap = results(demo, "Free shipping threshold")
    refunds = row(snap, "refund_rate")
    assert refunds.decision_state == "guardrail_breach"
    assert refunds.lift > 0 and refunds.alternative == "greater"
    assert row(snap, "page_load_time_ms").decision_state == "not_significant"


def test_demo_short_of_plan_is_too_early(demo: Session) -> None:
    snap = results(demo, "Pricing page redesign")
    assert snap.progress == pytest.approx(0.4)
    assert {c.decision_state for c in snap.comparisons} == {"too_early"}


def test_demo_sequential_three_arm_test_finds_its_winner_early(demo: Session) -> None:
    snap = results(demo, "Recommendations carousel")
    assert snap.analysis_mode == "sequential" and not snap.plan_met
    top = row(snap, "revenue_per_user", "carousel_top")
    assert top.decision_state == "significant" and top.sequential and top.cuped
    assert row(snap, "revenue_per_user", "carousel_bottom").decision_state == "too_early"
    assert len(snap.comparisons) == 6


def test_demo_completed_experiments_have_realised_results(demo: Session) -> None:
    states = {name: row(results(demo, name), DEMO_PRIMARY[name]).decision_state
              for name in DEMO_PRIMARY}
    assert states == {
        "One-page checkout": "significant",
        "Dark mode default": "not_significant",
        "Annual plan discount": "significant",
        "Trust badges on cart": "significant",
    }
    annual = row(results(demo, "Annual plan discount"), "revenue_per_user")
    assert annual.lift < 0 and "significantly worse" in annual.reason


DEMO_PRIMARY = {"One-page checkout": "checkout_conversion", "Dark mode default": "session_minutes",
                "Annual plan discount": "revenue_per_user",
                "Trust badges on cart": "checkout_conversion"}


def test_demo_seeding_again_changes_nothing(demo: Session) -> None:
    before = demo.scalar(select(func.count()).select_from(MetricDailyStat))
    events = demo.scalar(select(func.count()).select_from(EVENTS))
    summary = seed_demo(demo, today=TODAY)
    assert "0 experiments loaded, 12 already had data" in summary
    assert demo.scalar(select(func.count()).select_from(MetricDailyStat)) == before
    assert demo.scalar(select(func.count()).select_from(EVENTS)) == events


def test_demo_refresh_running_stores_one_snapshot_each(demo: Session) -> None:
    first = refresh_running(demo, actor=EDITOR)
    second = refresh_running(demo, actor=EDITOR)
    assert len(first) == 11  # the running experiments, 3 of them fed from the warehouse
    assert [s.snapshot_id for s in first] == [s.snapshot_id for s in second]
    exp = registry.get_experiment_by_name(demo, name="Checkout button colour")
    assert len(mrepo.snapshots(demo, experiment_id=exp.id)) == 1


def test_generator_is_seeded_and_draws_the_stated_parameters(tmp_path: Path) -> None:
    truth = DEMO_TRUTH["Checkout button colour"]
    a = generate_units("Checkout button colour", truth, start=date(2026, 1, 1),
                       last=date(2026, 1, 21))
    b = generate_units("Checkout button colour", truth, start=date(2026, 1, 1),
                       last=date(2026, 1, 21))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    control = a["variant"] == "control"
    assert control.sum() == 10_000
    # the conversion rate and the revenue mean are within 4 standard errors of the truth
    rate = a["checkout_conversion"][control].mean()
    assert abs(rate - 0.10) < 4 * np.sqrt(0.1 * 0.9 / 10_000)
    revenue = a["revenue_per_user"][control]
    assert abs(revenue.mean() - 12.0) < 4 * revenue.std() / np.sqrt(revenue.size)
    assert np.corrcoef(np.log(revenue + 0.01), np.log(a["revenue_per_user_pre"][control]))[
        0, 1] > 0.4


def _variants(session: Session, experiment_id: int) -> dict[int, str]:
    from db.models import Variant

    return {v.id: v.name for v in session.scalars(
        select(Variant).where(Variant.experiment_id == experiment_id))}


def _arm_sums(session: Session, name: str, metric: str) -> dict[str, np.ndarray]:
    """Per variant: the stored daily rows of one metric, summed over days."""
    exp = registry.get_experiment_by_name(session, name=name)
    metric_id = next(m.id for m in catalogue.list_metrics(session) if m.name == metric)
    names = _variants(session, exp.id)
    out: dict[str, np.ndarray] = {}
    for r in mrepo.daily_stats(session, experiment_id=exp.id):
        if r.metric_id == metric_id:
            v = names[r.variant_id]
            s = r.stats
            row = np.array([s.n, s.sum, s.sum_squares, s.sum_den or 0.0, s.sum_den_squares or 0.0,
                            s.sum_num_den or 0.0])
            out[v] = out.get(v, 0) + row
    return out


def test_demo_ratio_metric_stores_the_sums_of_its_generated_units(demo: Session) -> None:
    """Revenue per session: the stored sums equal numpy's over the generated units, and the
    realised ratio lift is near the planted +6% (sessions per user unchanged)."""
    name = "Infinite scroll on search"
    exp = registry.get_experiment_by_name(demo, name=name)
    last = max(r.day for r in mrepo.daily_stats(demo, experiment_id=exp.id))
    cols = generate_units(name, DEMO_TRUTH[name], start=exp.actual_start, last=last)
    arms = _arm_sums(demo, name, "revenue_per_session")
    for v, got in arms.items():
        mask = cols["variant"] == v
        y, x = cols["revenue"][mask].astype(float), cols["sessions"][mask].astype(float)
        np.testing.assert_allclose(got, [mask.sum(), y.sum(), (y * y).sum(), x.sum(),
                                         (x * x).sum(), (x * y).sum()], rtol=1e-9)
    ratio = {v: a[1] / a[3] for v, a in arms.items()}
    assert abs(ratio["treatment"] / ratio["control"] - 1 - 0.06) < 0.03
    sessions = {v: a[3] / a[0] for v, a in arms.items()}
    assert abs(sessions["treatment"] / sessions["control"] - 1) < 0.03


def test_demo_segment_experiment_stores_slices_with_the_effect_in_one_segment(
    demo: Session,
) -> None:
    """Mobile express checkout: slices per platform and country, assignment counts per value
    adding up to the arm; conversion lifts on ios and android (+25% planted), not on web."""
    exp = registry.get_experiment_by_name(demo, name="Mobile express checkout")
    assert mrepo.dimensions(demo, experiment_id=exp.id) == ["country", "platform"]
    metric_id = next(m.id for m in catalogue.list_metrics(demo)
                     if m.name == "checkout_conversion")
    control = next(i for i, n in _variants(demo, exp.id).items() if n == "control")
    rate: dict[tuple[str, bool], float] = {}
    for value in ("web", "ios", "android"):
        rows = [r for r in mrepo.daily_slice_stats(demo, experiment_id=exp.id,
                                                   dimension="platform")
                if r.value == value and r.metric_id == metric_id]
        for is_control in (True, False):
            part = [r for r in rows if (r.variant_id == control) == is_control]
            rate[(value, is_control)] = (sum(r.stats.sum for r in part)
                                          / sum(r.stats.n for r in part))
    lift = {v: rate[(v, False)] / rate[(v, True)] - 1 for v in ("web", "ios", "android")}
    assert abs(lift["web"]) < 0.1
    assert lift["ios"] > 0.1 and lift["android"] > 0.1
    units = sum(a.units for a in mrepo.assignments(demo, experiment_id=exp.id))
    for dimension in ("platform", "country"):
        assert sum(a.units for a in mrepo.slice_assignments(
            demo, experiment_id=exp.id, dimension=dimension)) == units == 16_000


def test_demo_segment_experiment_ships_with_its_guardrail_unharmed(demo: Session) -> None:
    """Mobile express checkout reads as its story: conversion up overall (the mobile gain),
    refund_rate (no true effect) not significantly worse, so the verdict is ship; the slices
    show the gain on ios and android, none on web (exploratory, never in the verdict)."""
    snap = results(demo, "Mobile express checkout")
    assert row(snap, "checkout_conversion").decision_state == "significant"
    refunds = row(snap, "refund_rate")
    assert refunds.decision_state == "not_significant" and refunds.p_value > 0.3
    assert snap.verdict is not None and snap.verdict.recommendation == "ship"
    exp = registry.get_experiment_by_name(demo, name="Mobile express checkout")
    (platform,) = segment_results(demo, experiment_id=exp.id, dimension="platform")
    conv = {c.value: c for c in platform.comparisons if c.metric == "checkout_conversion"}
    assert conv["ios"].significant and conv["android"].significant
    assert not conv["web"].significant
    assert not any(c.significant for c in platform.comparisons if c.metric == "refund_rate")


def test_demo_plans_show_a_one_sided_primary_and_a_guardrail_margin(demo: Session) -> None:
    """Infinite scroll on search tests its primary one-sided (open upper end); Search ranking
    v2 shows its page-load guardrail non-inferior within the plan's 2% margin."""
    scroll = row(results(demo, "Infinite scroll on search"), "revenue_per_session")
    assert scroll.alternative == "greater" and scroll.lift_ci_high is None
    assert scroll.lift_ci_low is not None
    assert (scroll.lift_ci_low > 0) == (scroll.lift_p_value < 0.05)
    load = row(results(demo, "Search ranking v2"), "page_load_time_ms")
    assert load.margin == 0.02 and load.noninferiority_p_value is not None
    assert load.noninferiority_p_value < 0.05
    assert load.decision_state == "not_significant" and "non-inferior" in load.reason


def test_demo_quantile_metric_stores_the_p90_of_its_generated_units(demo: Session) -> None:
    """Infinite scroll on search guards p90_page_load_ms: each arm's stored QuantileStats equal
    core.stats.quantile_stats over the generated units (numpy inverted-CDF quantiles), and the
    results test it with the order-statistic interval, covering the true lift of 0."""
    from core.stats import quantile_stats

    name = "Infinite scroll on search"
    exp = registry.get_experiment_by_name(demo, name=name)
    last = max(r.day for r in mrepo.daily_stats(demo, experiment_id=exp.id))
    cols = generate_units(name, DEMO_TRUTH[name], start=exp.actual_start, last=last)
    names = _variants(demo, exp.id)
    stored = {names[r.variant_id]: r.stats
              for r in mrepo.quantile_stats(demo, experiment_id=exp.id)}
    for v, got in stored.items():
        assert got == quantile_stats(cols["p90_page_load_ms"][cols["variant"] == v], 0.9)
    assert set(stored) == {"control", "treatment"}
    p90 = row(results(demo, name), "p90_page_load_ms")
    assert (p90.kind, p90.test, p90.role) == ("quantile", "quantile_woodruff", "guardrail")
    assert p90.lift_ci_low < 0.0 and p90.decision_state != "guardrail_breach"
