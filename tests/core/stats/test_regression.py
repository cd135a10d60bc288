"""Multi-covariate regression adjustment (Lin 2013) and post-stratification (Miratrix, Sekhon &
Yu 2013) from sufficient statistics.

References:
* Lin (2013): statsmodels OLS of y on [1, T, X - xbar, T (X - xbar)] with HC2 standard errors
  (Lin's recommended Huber-White flavour; R ``lm`` + ``sandwich::vcovHC(type="HC2")`` is the
  same computation). The treatment coefficient is the adjusted difference: 1e-10. The HC2 SE
  agrees with the sums' per-arm residual-variance SE to O(1/n) (module docstring of
  core.stats.regression): rtol 3e-3 at n ~ 3,000 per arm. The sums' SE itself equals, to
  1e-10, statsmodels' classical (nonrobust) SE of the intercept of per-arm OLS on
  [1, X - xbar] (the prediction variance at the pooled mean).
* Miratrix et al. (2013): a direct numpy computation of sum_h w_h (ybar_th - ybar_ch) and
  sum_h w_h^2 (s2_ch/n_ch + s2_th/n_th); GrowthBook gbstats
  ``models/tests.py::PostStratificationSummary`` (point estimate; its unconditional variance
  adds the multinomial term, re-implemented here from that source).
* The existing single-covariate CUPED (:func:`core.stats.welch_ttest_cuped`) for k = 1 with
  pooled slopes: 1e-12.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose

from core.stats import covariate_stats, welch_ttest_cuped
from core.stats.covariates import CovariateSums
from core.stats.metric_stats import EMPTY_STATS, MetricStats, unit_metric_stats
from core.stats.ratio import ratio_stats, ratio_test
from core.stats.regression import (
    post_strata,
    post_stratified_test,
    regression_adjust,
    regression_adjusted_test,
)

NAMES = ("pre_period", "tenure", "age")


def _units(rng, n, effect=0.0, hetero=True):
    x = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [5.0, 1.0, 0.0]
    noise = rng.normal(size=n) * ((1 + 0.3 * np.abs(x[:, 0] - 5)) if hetero else 1.0)
    y = 1 + x @ [0.8, -0.3, 1.0] + effect + noise
    return x, y


def _lin_ols(xc, yc, xt, yt, cov_type="HC2"):
    """statsmodels OLS of y on [1, T, Xc, T Xc], Xc centred at the pooled mean (Lin 2013)."""
    x = np.vstack([xc, xt])
    y = np.r_[yc, yt]
    t = np.r_[np.zeros(len(yc)), np.ones(len(yt))]
    xm = x - x.mean(axis=0)
    design = np.column_stack([np.ones_like(y), t, xm, t[:, None] * xm])
    return sm.OLS(y, design).fit(cov_type=cov_type)


def test_regression_adjusted_mean_matches_statsmodels_lin_hc2():
    rng = np.random.default_rng(20261207)
    xc, yc = _units(rng, 3000)
    xt, yt = _units(rng, 3400, effect=0.2)
    c = unit_metric_stats(yc, covariates=xc, names=NAMES)
    t = unit_metric_stats(yt, covariates=xt, names=NAMES)
    r = regression_adjusted_test(c, t)
    fit = _lin_ols(xc, yc, xt, yt, "HC2")
    assert_allclose(r.diff, fit.params[1], rtol=1e-10)
    assert_allclose(r.diff_se, fit.bse[1], rtol=3e-3)
    assert r.method == "regression_adjusted"
    assert r.covariates == NAMES
    # the unadjusted test is Welch's on the same arms
    assert_allclose(r.unadjusted_diff, yt.mean() - yc.mean(), rtol=1e-12)
    assert_allclose(r.unadjusted_diff_se,
                    np.sqrt(yc.var(ddof=1) / yc.size + yt.var(ddof=1) / yt.size), rtol=1e-10)
    assert_allclose(r.variance_reduction, 1 - r.diff_se**2 / r.unadjusted_diff_se**2,
                    rtol=1e-12)
    assert r.variance_reduction > 0.3


def test_regression_adjusted_se_is_per_arm_ols_prediction_variance():
    rng = np.random.default_rng(7)
    xc, yc = _units(rng, 400)
    xt, yt = _units(rng, 500, effect=0.1)
    c = unit_metric_stats(yc, covariates=xc, names=NAMES)
    t = unit_metric_stats(yt, covariates=xt, names=NAMES)
    a = regression_adjust(c, t)
    xbar = np.vstack([xc, xt]).mean(axis=0)
    for x, y, mean, var in ((xc, yc, a.control_mean, a.control_var),
                            (xt, yt, a.treatment_mean, a.treatment_var)):
        fit = sm.OLS(y, sm.add_constant(x - xbar)).fit()
        assert_allclose(mean, fit.params[0], rtol=1e-10)
        assert_allclose(np.sqrt(var), fit.bse[0], rtol=1e-10)


def test_regression_adjusted_proportion_matches_statsmodels_lin_hc2():
    rng = np.random.default_rng(11)
    xc, _ = _units(rng, 4000)
    xt, _ = _units(rng, 4000)
    yc = (rng.random(4000) < 1 / (1 + np.exp(-(xc[:, 0] - 5)))).astype(float)
    yt = (rng.random(4000) < 1 / (1 + np.exp(-(xt[:, 0] - 4.8)))).astype(float)
    c = unit_metric_stats(yc, covariates=xc, names=NAMES)
    t = unit_metric_stats(yt, covariates=xt, names=NAMES)
    r = regression_adjusted_test(c, t)
    fit = _lin_ols(xc, yc, xt, yt, "HC2")
    assert_allclose(r.diff, fit.params[1], rtol=1e-10)
    assert_allclose(r.diff_se, fit.bse[1], rtol=3e-3)


def test_regression_adjusted_ratio_matches_ols_on_linearisation():
    rng = np.random.default_rng(3)

    def arm(n, lift):
        x = rng.normal(size=(n, 2)) * [2.0, 1.0] + [6.0, 0.0]
        den = rng.poisson(np.exp(0.2 * x[:, 0] - 0.5)) + 1.0
        num = den * (2.0 + lift + 0.8 * x[:, 1]) + 0.5 * x[:, 0] + rng.normal(size=n) * den
        return x, num, den

    (xc, nc, dc), (xt, nt, dt) = arm(3000, 0.0), arm(3200, 0.1)
    names = ("pre_revenue", "tenure")
    c = unit_metric_stats(nc, denominators=dc, covariates=xc, names=names)
    t = unit_metric_stats(nt, denominators=dt, covariates=xt, names=names)
    r = regression_adjusted_test(c, t)
    rc, rt = nc.sum() / dc.sum(), nt.sum() / dt.sum()
    lc = (nc - rc * dc) / dc.mean()
    lt = (nt - rt * dt) / dt.mean()
    fit = _lin_ols(xc, lc, xt, lt, "HC2")
    assert r.method == "ratio_regression_adjusted"
    assert_allclose(r.diff - (rt - rc), fit.params[1], rtol=1e-9, atol=1e-12)
    assert_allclose(r.diff_se, fit.bse[1], rtol=3e-3)
    # unadjusted = the delta method's ratio test
    plain = ratio_test(ratio_stats(nc, dc), ratio_stats(nt, dt))
    assert_allclose(r.unadjusted_diff_se, plain.diff_se, rtol=1e-10)
    assert r.variance_reduction > 0.2


def test_single_covariate_pooled_slopes_equal_existing_cuped():
    rng = np.random.default_rng(5)
    x = rng.normal(size=2000)
    y = 2 * x + rng.normal(size=2000)
    xt = rng.normal(size=2100)
    yt = 2 * xt + 0.1 + rng.normal(size=2100)
    c = unit_metric_stats(y, covariates=x[:, None], names=("pre",))
    t = unit_metric_stats(yt, covariates=xt[:, None], names=("pre",))
    mine = regression_adjusted_test(c, t, slopes="pooled")
    cuped = welch_ttest_cuped(covariate_stats(y, x), covariate_stats(yt, xt))
    for field in ("diff", "diff_se", "p_value", "diff_ci_low", "diff_ci_high", "lift",
                  "lift_ci_low", "lift_ci_high"):
        assert_allclose(getattr(mine, field), getattr(cuped, field), rtol=1e-12, err_msg=field)
    assert_allclose(mine.variance_reduction, cuped.variance_reduction, rtol=1e-10)
    # Lin's per-arm slopes differ from CUPED's pooled slope only at O(1/sqrt(n)) here
    lin = regression_adjusted_test(c, t)
    assert_allclose(lin.diff, cuped.diff, atol=0.2 * cuped.diff_se)


def test_regression_adjusted_coverage_at_least_094():
    """Seeded simulation: 500 experiments, n = 300 per arm, true effect 0.3, skewed noise."""
    rng = np.random.default_rng(2026)
    start = time.perf_counter()
    covered = 0
    runs = 500
    for _ in range(runs):
        xc, yc = _units(rng, 300)
        xt, yt = _units(rng, 300, effect=0.3)
        yc = yc + rng.exponential(1.0, 300)
        yt = yt + rng.exponential(1.0, 300)
        r = regression_adjusted_test(unit_metric_stats(yc, covariates=xc, names=NAMES),
                                     unit_metric_stats(yt, covariates=xt, names=NAMES))
        covered += r.diff_ci_low <= 0.3 <= r.diff_ci_high
    assert covered / runs >= 0.94
    assert time.perf_counter() - start < 60


def test_ratio_regression_adjusted_coverage_at_least_094():
    rng = np.random.default_rng(99)
    covered, runs = 0, 400
    true_diff = 0.2  # num = den * (2 + lift + noise) + covariate terms with mean 0
    for _ in range(runs):
        stats = []
        for lift in (0.0, true_diff):
            x = rng.normal(size=(400, 2))
            den = rng.poisson(2.0, 400) + 1.0
            num = den * (2.0 + lift + 0.5 * x[:, 0]) + x[:, 1] + rng.normal(size=400) * den
            stats.append(unit_metric_stats(num, denominators=den, covariates=x,
                                           names=("a", "b")))
        r = regression_adjusted_test(*stats)
        covered += r.diff_ci_low <= true_diff <= r.diff_ci_high
    assert covered / runs >= 0.94


def _strata(rng, n, effect, ratio=False):
    shares = [0.5, 0.3, 0.2]
    h = rng.choice(3, size=n, p=shares)
    level = np.array([1.0, 3.0, 6.0])[h]
    y = level + effect * (1 + h) + rng.normal(size=n) * (1 + h)
    out = {}
    for k, name in enumerate(("mobile", "desktop", "tablet")):
        sel = h == k
        if ratio:
            den = rng.poisson(2.0, sel.sum()) + 1.0
            out[name] = (y[sel] * den, den)
        else:
            out[name] = y[sel]
    return out


def test_post_stratified_mean_matches_miratrix_formula_and_gbstats_point():
    rng = np.random.default_rng(42)
    c_raw, t_raw = _strata(rng, 2000, 0.0), _strata(rng, 2100, 0.1)
    c = {h: unit_metric_stats(v) for h, v in c_raw.items()}
    t = {h: unit_metric_stats(v) for h, v in t_raw.items()}
    r = post_stratified_test(c, t)
    n_total = sum(v.size for v in (*c_raw.values(), *t_raw.values()))
    w = np.array([(c_raw[h].size + t_raw[h].size) / n_total for h in c_raw])
    d = np.array([t_raw[h].mean() - c_raw[h].mean() for h in c_raw])
    var = np.array([c_raw[h].var(ddof=1) / c_raw[h].size + t_raw[h].var(ddof=1) / t_raw[h].size
                    for h in c_raw])
    assert_allclose(r.diff, w @ d, rtol=1e-12)
    assert_allclose(r.diff_se, np.sqrt((w * w) @ var), rtol=1e-12)
    assert r.method == "post_stratified"
    # gbstats PostStratificationSummary (absolute): mean = alpha_matrix . nu_hat, and the
    # covariance adds alpha nu_cov alpha' with nu_cov = (diag(nu) - nu nu') / N
    nu = w  # gbstats nu_hat: stratum unit counts over the total
    alpha_matrix = np.array([[c_raw[h].mean() for h in c_raw], d])  # [control_mean; effect]
    assert_allclose(r.diff, (alpha_matrix @ nu)[1], rtol=1e-12)
    assert_allclose(r.control_mean, (alpha_matrix @ nu)[0], rtol=1e-12)
    gb_var = (w * w) @ var + (nu @ d**2 - (nu @ d) ** 2) / n_total
    assert gb_var >= r.diff_se**2
    assert_allclose(np.sqrt(gb_var), r.diff_se, rtol=0.01)  # equal effects: tiny extra term
    assert r.variance_reduction > 0.3  # the strata's levels explain much of y


def test_post_stratified_ratio_weights_by_denominator_share():
    rng = np.random.default_rng(8)
    c_raw, t_raw = _strata(rng, 2000, 0.0, ratio=True), _strata(rng, 2000, 0.1, ratio=True)
    c = {h: unit_metric_stats(num, denominators=den) for h, (num, den) in c_raw.items()}
    t = {h: unit_metric_stats(num, denominators=den) for h, (num, den) in t_raw.items()}
    r = post_stratified_test(c, t)
    dens = {h: c_raw[h][1].sum() + t_raw[h][1].sum() for h in c_raw}
    w = np.array([dens[h] / sum(dens.values()) for h in c_raw])
    rc = {h: ratio_stats(*c_raw[h]) for h in c_raw}
    rt = {h: ratio_stats(*t_raw[h]) for h in c_raw}
    d = np.array([rt[h].ratio - rc[h].ratio for h in c_raw])
    var = np.array([rc[h].ratio_variance + rt[h].ratio_variance for h in c_raw])
    assert_allclose(r.diff, w @ d, rtol=1e-12)
    assert_allclose(r.diff_se, np.sqrt((w * w) @ var), rtol=1e-12)
    assert r.method == "ratio_post_stratified"


def test_post_stratified_coverage_at_least_094():
    rng = np.random.default_rng(314)
    covered, runs = 0, 600
    for _ in range(runs):
        c_raw, t_raw = _strata(rng, 300, 0.0), _strata(rng, 300, 0.2)
        # true effect: sum_h share_h * 0.2 (1 + h), shares (0.5, 0.3, 0.2)
        truth = 0.2 * (0.5 * 1 + 0.3 * 2 + 0.2 * 3)
        r = post_stratified_test({h: unit_metric_stats(v) for h, v in c_raw.items()},
                                 {h: unit_metric_stats(v) for h, v in t_raw.items()})
        covered += r.diff_ci_low <= truth <= r.diff_ci_high
    assert covered / runs >= 0.94


def test_post_strata_merges_sparse_strata_into_largest():
    rng = np.random.default_rng(1)
    c = {"a": unit_metric_stats(rng.normal(size=50)), "b": unit_metric_stats([1.0])}
    t = {"a": unit_metric_stats(rng.normal(size=60)), "c": unit_metric_stats([2.0, 3.0])}
    strata = post_strata(c, t)
    assert len(strata) == 1
    assert set(strata[0].names) == {"a", "b", "c"}
    assert_allclose(strata[0].weight, 1.0)


def test_regression_adjust_refuses_bad_input():
    s = unit_metric_stats([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="no covariate sums"):
        regression_adjusted_test(s, s)
    a = unit_metric_stats([1.0, 2.0, 3.0], covariates=[[1.0], [2.0], [4.0]], names=("x",))
    b = unit_metric_stats([1.0, 2.0, 3.0], covariates=[[1.0], [2.0], [4.0]], names=("z",))
    with pytest.raises(ValueError, match="different covariates"):
        regression_adjusted_test(a, b)
    with pytest.raises(ValueError, match="slopes"):
        regression_adjusted_test(a, a, slopes="both")  # type: ignore[arg-type]
    tiny = unit_metric_stats([1.0, 2.0], covariates=[[1.0], [2.0]], names=("x",))
    with pytest.raises(ValueError, match="at least 3 units"):
        regression_adjusted_test(tiny, tiny)


def test_constant_covariate_in_an_arm_gets_no_slope():
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.normal(size=200), np.zeros(200)])
    y = x[:, 0] + rng.normal(size=200)
    c = unit_metric_stats(y, covariates=x, names=("a", "flag"))
    r = regression_adjust(c, c)
    assert r.control_slopes[1] == 0.0
    assert_allclose(r.control_mean, y.mean(), rtol=1e-12)


def test_covariate_sums_pool_and_key():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(100, 2))
    y = rng.normal(size=100)
    whole = unit_metric_stats(y, covariates=x, names=("a", "b"))
    parts = (unit_metric_stats(y[:40], covariates=x[:40], names=("a", "b"))
             + unit_metric_stats(y[40:], covariates=x[40:], names=("a", "b")))
    assert_allclose(np.array(parts.covariates.sum_xx), whole.covariates.sum_xx, rtol=1e-12)
    assert_allclose(parts.covariates.xx, x.T @ x, rtol=1e-12)
    assert (EMPTY_STATS + whole).covariates == whole.covariates
    assert whole.key()[-1] == whole.covariates.key()
    assert CovariateSums.from_json(whole.covariates.to_json()) == whole.covariates
    # pooling with units that lack the covariates drops the part (as CUPED's sums)
    assert (whole + MetricStats(3, 1.0, 1.0)).covariates is None
    with pytest.raises(ValueError, match="different covariates"):
        _ = whole.covariates + CovariateSums(("a", "c"), (0, 0), (0, 0, 0), (0, 0))
    with pytest.raises(ValueError, match="sum_xx needs 3"):
        CovariateSums(("a", "b"), (0, 0), (0, 0), (0, 0))


def test_collinear_covariates_give_the_fit_of_one_of_them():
    """Two copies of one covariate: the pseudo-inverse path; the fitted means and their
    variances equal the one-covariate fit except for the residual degrees of freedom."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(300, 1))
    y = 2 * x[:, 0] + rng.normal(size=300)
    xt = rng.normal(size=(320, 1))
    yt = 2 * xt[:, 0] + 0.3 + rng.normal(size=320)
    one = regression_adjust(unit_metric_stats(y, covariates=x, names=("a",)),
                            unit_metric_stats(yt, covariates=xt, names=("a",)))
    two = regression_adjust(
        unit_metric_stats(y, covariates=np.hstack([x, x]), names=("a", "b")),
        unit_metric_stats(yt, covariates=np.hstack([xt, xt]), names=("a", "b")))
    assert_allclose(two.control_mean, one.control_mean, rtol=1e-9)
    assert_allclose(two.treatment_mean, one.treatment_mean, rtol=1e-9)
    assert two.df_control == one.df_control
    assert_allclose(two.control_var, one.control_var, rtol=1e-8)


def test_covariates_on_very_different_scales_match_per_arm_ols():
    """Revenue in cents beside a 0/1 flag and a rate: the LDL' factorisation (unscaled, with
    a relative aliasing rule) gives statsmodels' per-arm OLS at the pooled mean to 1e-9."""
    rng = np.random.default_rng(31)

    def arm(n):
        x = np.column_stack([rng.gamma(2.0, 5e5, n), rng.random(n) < 0.3,
                             rng.normal(size=n) * 1e-3, rng.normal(size=n)])
        y = 2e-6 * x[:, 0] + x[:, 1] + 300 * x[:, 2] + rng.normal(size=n)
        return x, y

    (xc, yc), (xt, yt) = arm(500), arm(600)
    names = ("cents", "flag", "rate", "z")
    a = regression_adjust(unit_metric_stats(yc, covariates=xc, names=names),
                          unit_metric_stats(yt, covariates=xt, names=names))
    xbar = np.vstack([xc, xt]).mean(axis=0)
    for x, y, mean, var, slopes in ((xc, yc, a.control_mean, a.control_var, a.control_slopes),
                                    (xt, yt, a.treatment_mean, a.treatment_var,
                                     a.treatment_slopes)):
        fit = sm.OLS(y, sm.add_constant(x - xbar)).fit()
        assert_allclose(mean, fit.params[0], rtol=1e-9)
        assert_allclose(np.sqrt(var), fit.bse[0], rtol=1e-9)
        assert_allclose(slopes, fit.params[1:], rtol=1e-7)


def test_a_covariate_within_1e_10_of_the_others_is_aliased():
    """x3 = x1 + x2 + noise at 1e-7 of their scale (1 - R^2 ~ 1e-14 < ALIASED): left out, the
    fit equals the one on x1 and x2 alone (as R's lm drops an aliased column)."""
    rng = np.random.default_rng(32)
    x = rng.normal(size=(400, 2))
    y = x @ [1.0, -0.5] + rng.normal(size=400)
    three = np.column_stack([x, x.sum(axis=1) + rng.normal(size=400) * 1e-7])
    two = regression_adjust(unit_metric_stats(y, covariates=x, names=("a", "b")),
                            unit_metric_stats(y[::-1], covariates=x[::-1], names=("a", "b")))
    both = regression_adjust(
        unit_metric_stats(y, covariates=three, names=("a", "b", "c")),
        unit_metric_stats(y[::-1], covariates=three[::-1], names=("a", "b", "c")))
    assert both.control_slopes[2] == 0.0
    assert both.df_control == two.df_control
    assert_allclose(both.control_slopes[:2], two.control_slopes, rtol=1e-9)
    assert_allclose(both.control_var, two.control_var, rtol=1e-9)
