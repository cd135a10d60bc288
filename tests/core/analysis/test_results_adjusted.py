"""Results with several covariates, end to end from a user-level file: the file's ``cov_*``
columns and each metric's own ``_pre`` column become per-day cross-product sums (DuckDB), are
stored (metric_daily_stats.covariate_sums), pooled over the days, and the results use the
regression-adjusted test (Lin 2013).

Reference: statsmodels OLS of y on [1, T, X - xbar, T (X - xbar)] over the file's units, HC2
standard errors (as tests/core/stats/test_regression.py): the treatment coefficient to 1e-9,
the standard error to 2% (HC2 against the per-arm residual variance, n = 600 per arm).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core.analysis.results import compute_results
from core.data.ingestion import ingest_file
from core.errors import InvalidInput
from db import metric_repository as mrepo
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import make_experiment, make_units, write_parquet


def _with_covariates(n: int, seed: int = 3) -> dict[str, np.ndarray]:
    cols = make_units(n, seed=seed, lift={"treatment": 0.05})
    rng = np.random.default_rng(seed)
    total = cols["variant"].size
    tenure = np.round(rng.gamma(3.0, 4.0, total), 1)
    cols["cov_tenure"] = tenure
    cols["cov_age"] = rng.integers(18, 70, total).astype(np.int64)
    cols["revenue"] = np.round(cols["revenue"] + 0.8 * tenure + rng.normal(0, 1, total), 2)
    return cols


def _lin(cols: dict[str, np.ndarray], metric: str, names: list[str]):  # type: ignore[no-untyped-def]
    y = cols[metric].astype(float)
    x = np.column_stack([cols[c].astype(float) for c in names])
    t = (cols["variant"] == "treatment").astype(float)
    xm = x - x.mean(axis=0)
    design = np.column_stack([np.ones_like(y), t, xm, t[:, None] * xm])
    return sm.OLS(y, design).fit(cov_type="HC2")


def test_results_regression_adjust_on_the_files_covariates(session: Session,
                                                           tmp_path: Path) -> None:
    exp = make_experiment(session)
    cols = _with_covariates(600)
    ingest_file(session, path=write_parquet(tmp_path / "u.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    totals = mrepo.stat_totals(session, experiment_id=exp)
    assert all(t.stats.covariates is not None for t in totals)
    snap = compute_results(session, experiment_id=exp)
    rows = {c.metric: c for c in snap.comparisons}

    rev = rows["revenue"]
    fit = _lin(cols, "revenue", ["revenue_pre", "cov_tenure", "cov_age"])
    assert rev.test == "regression_adjusted" and rev.cuped
    assert_allclose(rev.diff, fit.params[1], rtol=1e-9)
    half = (rev.diff_ci_high - rev.diff_ci_low) / 2
    assert_allclose(half / 1.96, fit.bse[1], rtol=0.02)
    assert rev.variance_reduction is not None and rev.variance_reduction > 0.3
    assert rev.adjustment == f"CUPED: −{rev.variance_reduction:.0%} variance"

    conv = rows["conv"]  # a proportion: no _pre column, so the cov_ columns only
    fit = _lin(cols, "conv", ["cov_tenure", "cov_age"])
    assert conv.test == "regression_adjusted"
    assert_allclose(conv.diff, fit.params[1], rtol=1e-9)


def test_results_without_cov_columns_keep_single_covariate_cuped(session: Session,
                                                                 tmp_path: Path) -> None:
    exp = make_experiment(session)
    cols = make_units(300)
    ingest_file(session, path=write_parquet(tmp_path / "u.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    rev = next(c for c in compute_results(session, experiment_id=exp).comparisons
               if c.metric == "revenue")
    assert rev.test == "welch_cuped"
    assert rev.adjustment is not None and rev.adjustment.startswith("CUPED: −")


def test_results_ratio_metric_adjusts_on_its_own_pre_period_without_cov_columns(
        session: Session, tmp_path: Path) -> None:
    """A ratio metric's <numerator>_pre and <denominator>_pre columns alone (no cov_ columns)
    make its covariate vector: it was ignored before. Reference: the OLS of the unit-level
    delta-method linearisation l = (num - R_a den) / dbar_a on [1, T, X - xbar, T (X - xbar)]
    (tests/core/stats/test_regression.py): the treatment coefficient is diff - (R_t - R_c),
    to 1e-9."""
    from tests.core.data.test_ingestion_ratio import ratio_experiment, ratio_units

    exp = ratio_experiment(session)
    cols = ratio_units(600)
    rng = np.random.default_rng(8)
    total = cols["unit_id"].size
    cols["revenue_pre"] = np.round(cols["revenue"] * 0.7 + rng.gamma(2.0, 2.0, total), 2)
    cols["sessions_pre"] = cols["sessions"] + rng.poisson(1.0, total)
    ingest_file(session, path=write_parquet(tmp_path / "r.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    rps = next(c for c in compute_results(session, experiment_id=exp).comparisons
               if c.metric == "revenue_per_session")
    assert rps.test == "ratio_regression_adjusted" and rps.cuped
    num, den = cols["revenue"].astype(float), cols["sessions"].astype(float)
    treated = cols["variant"] == "treatment"
    lin = np.empty(total)
    ratios = {}
    for arm in (False, True):
        m = treated == arm
        ratios[arm] = num[m].sum() / den[m].sum()
        lin[m] = (num[m] - ratios[arm] * den[m]) / den[m].mean()
    fit = _lin({**cols, "l": lin}, "l", ["revenue_pre", "sessions_pre"])
    assert_allclose(rps.diff - (ratios[True] - ratios[False]), fit.params[1], rtol=1e-9,
                    atol=1e-12)


def test_non_numeric_covariate_is_refused_and_nothing_is_written(session: Session,
                                                                 tmp_path: Path) -> None:
    exp = make_experiment(session)
    cols = _with_covariates(50)
    cols["cov_tenure"] = np.array([str(v) for v in cols["cov_tenure"]], dtype=object)
    cols["cov_tenure"][3] = "ten"
    with pytest.raises(InvalidInput, match="cov_tenure: 1 non-numeric"):
        ingest_file(session, path=write_parquet(tmp_path / "u.parquet", cols),
                    experiment_id=exp, actor=EDITOR)
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0


def test_results_post_stratify_on_the_plans_dimension(session: Session, tmp_path: Path) -> None:
    """Reference: Miratrix, Sekhon & Yu (2013), sum_h w_h (ybar_th - ybar_ch) with pooled
    stratum shares w_h and variance sum_h w_h^2 (s2_ch/n_ch + s2_th/n_th), computed with
    numpy from the file's units (1e-9)."""
    from db.models import Experiment

    exp = make_experiment(session, secondaries=("revenue", "load_ms"))
    cols = make_units(500, seed=9)
    rng = np.random.default_rng(9)
    platform = rng.choice(np.array(["ios", "android", "web"], dtype=object),
                          size=cols["variant"].size, p=[0.3, 0.3, 0.4])
    cols["platform"] = platform
    cols["load_ms"] = np.round(cols["load_ms"] + np.where(platform == "web", 400.0, 0.0), 1)
    row = session.get(Experiment, exp)
    assert row is not None
    row.post_stratify_on = "platform"
    session.flush()
    ingest_file(session, path=write_parquet(tmp_path / "u.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    snap = compute_results(session, experiment_id=exp)
    load = next(c for c in snap.comparisons if c.metric == "load_ms")
    assert load.test == "post_stratified"
    y, v = cols["load_ms"].astype(float), cols["variant"]
    strata = sorted(set(platform))
    w = np.array([(platform == h).mean() for h in strata])
    d = np.array([y[(platform == h) & (v == "treatment")].mean()
                  - y[(platform == h) & (v == "control")].mean() for h in strata])
    var = np.array([sum(y[(platform == h) & (v == a)].var(ddof=1)
                        / ((platform == h) & (v == a)).sum() for a in ("control", "treatment"))
                    for h in strata])
    assert_allclose(load.diff, w @ d, rtol=1e-9)
    se = np.sqrt((w * w) @ var)  # a secondary metric: two-sided z interval
    assert_allclose([load.diff_ci_low, load.diff_ci_high],
                    [w @ d - 1.959963984540054 * se, w @ d + 1.959963984540054 * se],
                    rtol=1e-9)
    assert load.variance_reduction is not None and load.variance_reduction > 0.3
    assert load.adjustment == f"Post-stratified: −{load.variance_reduction:.0%} variance"
    # revenue carries its _pre covariate only: single-covariate CUPED, unchanged
    rev = next(c for c in snap.comparisons if c.metric == "revenue")
    assert rev.test == "welch_cuped"


def test_arms_with_different_covariates_fall_back_to_the_plain_test() -> None:
    """Control loaded with one set of cov_* columns, treatment with another: no common
    regression, so the metric gets the plain Welch test instead of an error."""
    from core.analysis.results import compare_arms
    from core.stats import unit_metric_stats, welch_ttest_from_stats

    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 1))
    c = unit_metric_stats(x[:, 0] + rng.normal(size=100), covariates=x, names=("cov_a",))
    t = unit_metric_stats(x[:, 0] + rng.normal(size=100), covariates=x, names=("cov_b",))
    tested, why = compare_arms("mean", c, t, alpha=0.05, alternative="two-sided",
                               sequential=False, tuning_n=None)
    assert why is None and tested is not None
    assert tested["test"] == "welch" and tested["adjustment"] is None
    ref = welch_ttest_from_stats(c.sufficient, t.sufficient)
    assert_allclose(tested["p_value"], ref.p_value, rtol=1e-12)

