"""Quantile metrics through the results, from an ingested unit-level file on SQLite and
PostgreSQL. Reference written out from the unit rows: numpy's inverted-CDF quantiles at p and
p -/+ z sqrt(p (1 - p) / n), Woodruff's SE (U - L) / (2 z), scipy's normal distribution, and
Fieller's interval for the relative difference (tests/core/stats/reference_fieller.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.testing import assert_allclose
from scipy import stats
from sqlalchemy.orm import Session

from core.analysis.results import (
    QUANTILES_NOT_AS_OF,
    compute_results,
    cumulative_series,
    refresh_results,
)
from core.data.ingestion import ingest_file
from core.stats.quantile import BOUND_Z
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import START, write_parquet
from tests.core.data.test_ingestion_quantile import quantile_experiment, quantile_units
from tests.core.stats import reference_fieller as fieller


def _woodruff(x: np.ndarray, p: float) -> tuple[float, float]:
    n = x.size
    half = BOUND_Z * math.sqrt(p * (1 - p) / n)
    low, q, high = np.quantile(x, [p - half, p, p + half], method="inverted_cdf")
    return float(q), float(((high - low) / (2 * stats.norm.ppf(0.975))) ** 2)


def test_results_quantile_metric_tests_the_p90_difference(session: Session,
                                                          tmp_path: Path) -> None:
    exp = quantile_experiment(session)
    cols = quantile_units(3000, 3000, slower=1.08)
    ingest_file(session, path=write_parquet(tmp_path / "q.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    snap = compute_results(session, experiment_id=exp)
    row = next(c for c in snap.comparisons if c.metric == "p90_load_ms")
    assert (row.kind, row.test, row.role) == ("quantile", "quantile_woodruff", "guardrail")
    x = cols["p90_load_ms"].astype(float)
    treated = cols["variant"] == "treatment"
    q_c, v_c = _woodruff(x[~treated], 0.9)
    q_t, v_t = _woodruff(x[treated], 0.9)
    assert_allclose([row.control_mean, row.treatment_mean], [q_c, q_t], rtol=1e-12)
    assert_allclose(row.diff, q_t - q_c, rtol=1e-12)
    # the guardrail's harm test: one-sided "greater" (load time: lower is better)
    se = math.sqrt(v_c + v_t)
    assert row.alternative == "greater"
    assert_allclose(row.p_value, stats.norm.sf((q_t - q_c) / se), rtol=1e-8)
    assert_allclose(row.diff_ci_low, (q_t - q_c) - stats.norm.isf(0.05) * se, rtol=1e-8)
    assert_allclose(row.lift_ci_low, fieller.lift_interval(
        q_t, v_t, q_c, v_c, alpha=0.05, alternative="greater", df=math.inf)[0], rtol=1e-8)
    assert row.decision_state == "guardrail_breach"
    # the stored snapshot's fingerprint covers the quantile statistics: a new load changes it
    first = refresh_results(session, experiment_id=exp, actor=EDITOR)
    cols2 = quantile_units(3000, 3000, seed=9, slower=1.08)
    ingest_file(session, path=write_parquet(tmp_path / "q2.parquet", cols2), experiment_id=exp,
                actor=EDITOR)
    assert refresh_results(session, experiment_id=exp, actor=EDITOR).fingerprint != (
        first.fingerprint)


def test_results_quantile_metric_is_not_tested_as_of_an_earlier_day_nor_day_by_day(
        session: Session, tmp_path: Path) -> None:
    exp = quantile_experiment(session)
    cols = quantile_units(2000, 2000)
    cols["date"] = np.array([START, START.replace(day=START.day + 1)] * 2000, dtype=object)
    ingest_file(session, path=write_parquet(tmp_path / "q.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    now = next(c for c in compute_results(session, experiment_id=exp).comparisons
               if c.metric == "p90_load_ms")
    assert now.test == "quantile_woodruff"
    past = next(c for c in compute_results(session, experiment_id=exp, as_of=START).comparisons
                if c.metric == "p90_load_ms")
    assert past.test == "" and past.p_value is None
    assert QUANTILES_NOT_AS_OF in past.reason
    assert [p for p in cumulative_series(session, experiment_id=exp, metric="p90_load_ms")] == []


def test_segments_leave_a_quantile_metric_out(session: Session, tmp_path: Path) -> None:
    from core.analysis.segments import segment_results

    exp = quantile_experiment(session)
    cols = quantile_units(1000, 1000)
    cols["platform"] = np.array(["web", "ios"] * 1000, dtype=object)
    ingest_file(session, path=write_parquet(tmp_path / "q.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    (platform,) = segment_results(session, experiment_id=exp)
    assert {c.metric for c in platform.comparisons} == {"conv"}
