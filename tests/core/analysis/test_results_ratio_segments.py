"""Ratio metrics and segment drill-down through the results, from ingested unit-level files on
SQLite and PostgreSQL; references written out from the unit rows with numpy/scipy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from sqlalchemy.orm import Session

from core.analysis import segments
from core.analysis.results import compute_results, cumulative_series
from core.data.ingestion import ingest_file
from core.errors import NotFound
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import make_experiment, make_units, write_parquet
from tests.core.data.test_ingestion_ratio import ratio_experiment, ratio_units
from tests.core.stats import reference_fieller as fieller


def _delta_ratio(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Ratio sum(y)/sum(x) and its delta-method variance (Deng, Knoblich & Lu 2018)."""
    n, r = y.size, y.sum() / x.sum()
    cov = np.cov(y, x, ddof=1)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * x.mean() ** 2)
    return float(r), float(var)


def test_results_ratio_metric_uses_the_delta_method(session: Session, tmp_path: Path) -> None:
    exp = ratio_experiment(session)
    cols = ratio_units(600)
    treated = cols["variant"] == "treatment"
    cols["revenue"] = np.where(treated, np.round(cols["revenue"] * 1.3, 2), cols["revenue"])
    ingest_file(session, path=write_parquet(tmp_path / "r.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    snap = compute_results(session, experiment_id=exp)
    row = next(c for c in snap.comparisons if c.metric == "revenue_per_session")
    assert row.kind == "ratio" and row.test == "delta_ratio"
    y, x = cols["revenue"].astype(float), cols["sessions"].astype(float)
    r_c, v_c = _delta_ratio(y[~treated], x[~treated])
    r_t, v_t = _delta_ratio(y[treated], x[treated])
    assert_allclose([row.control_mean, row.treatment_mean], [r_c, r_t], rtol=1e-10)
    se = math.sqrt(v_c + v_t)
    assert_allclose(row.p_value, 2 * stats.norm.sf(abs((r_t - r_c) / se)), rtol=1e-8)
    assert_allclose([row.diff_ci_low, row.diff_ci_high],
                    (r_t - r_c) + np.array([-1, 1]) * stats.norm.isf(0.025) * se, rtol=1e-8)
    # the lift: Fieller's ratio z-test and interval on the arm ratios and their delta-method
    # variances (tests/core/stats/reference_fieller.py, scipy brentq inversion)
    assert_allclose(row.lift_p_value, fieller.lift_p_value(r_t, v_t, r_c, v_c, 0.0,
                                                           alternative="two-sided", df=math.inf),
                    rtol=1e-8)
    assert_allclose([row.lift_ci_low, row.lift_ci_high],
                    fieller.lift_interval(r_t, v_t, r_c, v_c, alpha=0.05, alternative="two-sided",
                                          df=math.inf), rtol=1e-8)
    assert row.decision_state == "significant" and "delta-method" in row.reason
    assert row.bayesian is not None and row.bayesian.chance_to_beat_control > 0.99
    assert any(p.metric == "revenue_per_session" and p.lift is not None
               for p in cumulative_series(session, experiment_id=exp))


def test_results_segments_per_dimension_value(session: Session, tmp_path: Path) -> None:
    exp = make_experiment(session, guardrails=(), secondaries=(), planned=100)
    cols = make_units(2400, seed=3)
    rng = np.random.default_rng(4)
    country = rng.choice(np.array(["DE", "FR", "US", "IT"], dtype=object),
                         cols["unit_id"].size, p=[0.3, 0.3, 0.3, 0.1])
    cols["country"] = country
    treated = cols["variant"] == "treatment"
    lift_in = treated & (country == "DE")  # the effect lives in DE only
    cols["conv"] = np.where(lift_in, (rng.random(lift_in.size) < 0.45).astype(np.int64),
                            cols["conv"])
    ingest_file(session, path=write_parquet(tmp_path / "s.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    (b,) = segments.segment_results(session, experiment_id=exp, top_n=3)
    assert b.dimension == "country" and b.top_n == 3
    assert [s.value for s in b.slices][-1] == "(other)"
    assert b.slices[-1].members == ("IT",)
    de = next(c for c in b.comparisons if c.value == "DE")
    others = [c for c in b.comparisons if c.value != "DE"]
    assert de.significant and not any(c.significant for c in others)
    c_de = cols["conv"][(country == "DE") & ~treated]
    t_de = cols["conv"][(country == "DE") & treated]
    assert (de.control_n, de.treatment_n) == (c_de.size, t_de.size)
    p_c, p_t = c_de.mean(), t_de.mean()
    z = (p_t - p_c) / math.sqrt(p_c * (1 - p_c) / c_de.size + p_t * (1 - p_t) / t_de.size)
    assert_allclose(de.p_value, 2 * stats.norm.sf(abs(z)), rtol=1e-9)
    assert all(not s.srm_flagged for s in b.slices)
    assert b.exploratory.startswith("Exploratory")
    # The whole-experiment verdict is computed without the slices.
    snap = compute_results(session, experiment_id=exp)
    assert snap.verdict is not None and "country" not in snap.verdict.reason
    # A dimension the data does not carry is named as missing, with those it does carry.
    with pytest.raises(NotFound, match=r"no dimension 'platform'; its dimensions: country"):
        segments.segment_results(session, experiment_id=exp, dimension="platform")


def test_results_refresh_sees_a_change_of_ratio_denominators_alone(session: Session) -> None:
    """Issue 20: the snapshot fingerprint left out the ratio sums, so changing only the
    denominators of one stored row kept serving the old snapshot. The new lift is checked
    against the delta-method lift of the stored sums (numpy)."""
    from sqlalchemy import select

    from core import registry
    from core.analysis.results import refresh_results
    from core.demo import seed_demo
    from db.models import Metric, MetricDailyStat, Variant

    seed_demo(session)
    exp = registry.get_experiment_by_name(session, name="Infinite scroll on search")
    before = refresh_results(session, experiment_id=exp.id, actor=EDITOR)
    metric = session.scalar(select(Metric.id).where(Metric.name == "revenue_per_session"))
    control, treatment = session.scalars(
        select(Variant.id).where(Variant.experiment_id == exp.id).order_by(Variant.position))
    row = session.scalars(
        select(MetricDailyStat).where(MetricDailyStat.experiment_id == exp.id,
                                      MetricDailyStat.metric_id == metric,
                                      MetricDailyStat.variant_id == treatment)
        .order_by(MetricDailyStat.n.desc())).first()
    assert row is not None and row.sum_den is not None
    # Each unit of the row counted with three times its sessions: only the denominators change.
    row.sum_den *= 3
    row.sum_den_squares = (row.sum_den_squares or 0.0) * 9
    row.sum_num_den = (row.sum_num_den or 0.0) * 3
    session.commit()

    after = refresh_results(session, experiment_id=exp.id, actor=EDITOR)
    old = next(c for c in before.comparisons if c.metric == "revenue_per_session")
    new = next(c for c in after.comparisons if c.metric == "revenue_per_session")
    assert after.fingerprint != before.fingerprint
    assert after.snapshot_id != before.snapshot_id
    sums = {vid: np.zeros(2) for vid in (control, treatment)}
    for r in session.scalars(select(MetricDailyStat).where(
            MetricDailyStat.experiment_id == exp.id, MetricDailyStat.metric_id == metric)):
        sums[r.variant_id] += [r.sum, r.sum_den or 0.0]
    ratio = {vid: s[0] / s[1] for vid, s in sums.items()}
    assert new.lift is not None and old.lift is not None
    assert_allclose(new.lift, ratio[treatment] / ratio[control] - 1, rtol=1e-9)
    assert new.lift < 0 < old.lift
