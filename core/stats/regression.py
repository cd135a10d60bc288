"""Regression adjustment with several covariates (Lin 2013) and post-stratification
(Miratrix, Sekhon & Yu 2013), for mean, proportion and ratio metrics, from sufficient statistics.

Regression adjustment (Lin 2013, "Agnostic notes on regression adjustments to experimental
data: reexamining Freedman's critique", Ann. Appl. Stat. 7(1)). In each arm a, regress the
metric y on the covariates X with an intercept: slopes b_a = Sxx_a^-1 Sxy_a (Sxx, Sxy the
within-arm centred cross-products). The adjusted arm mean is the arm's fitted value at the
covariate mean xbar pooled over both arms,

    m_a = ybar_a + b_a' (xbar - xbar_a),

and the adjusted difference m_t - m_c is the coefficient on the treatment indicator in the
OLS of y on [1, T, X - xbar, T (X - xbar)] (treatment x centred covariates). Its variance is
the per-arm prediction variance at xbar,

    Var(m_a) = s2_a (1/n_a + (xbar - xbar_a)' Sxx_a^-1 (xbar - xbar_a)),
    s2_a = (Syy_a - Sxy_a' b_a) / (n_a - 1 - k),

i.e. the per-arm residual variance: everything is a function of n, sum y, sum y^2, sum x_j,
sum x_j x_l and sum x_j y per arm (:class:`core.stats.covariates.CovariateSums`). Lin's
Huber-White (HC) standard error of the interacted regression agrees with it to O(1/n)
relatively: at the arm-centred design the HC0 variance of ybar_a is RSS_a / n_a^2, and the
remaining terms are of order |xbar - xbar_a|^2 = O(1/n) (tests compare with statsmodels HC2).
With ``slopes="pooled"`` one slope vector pooled within arms, b = (Sxx_c + Sxx_t)^-1
(Sxy_c + Sxy_t), is used in both arms and the variance is var(y - b'x)/n_a per arm, treating b
as known: with one covariate this is CUPED (Deng et al. 2013), :func:`core.stats.cuped_adjust`.

A proportion is the mean of a 0/1 metric: the same estimator applies.

Ratio metrics (R = sum num / sum den). The delta method linearises R_a around the arm's
ratio: R_a - R ~ mean of l_i with l_i = (num_i - R_a den_i) / dbar_a, whose per-unit variance
gives the usual delta-method Var(R_a) (:mod:`core.stats.ratio`). Regression adjustment treats
l as the outcome: m_a = R_a + b_a'(xbar - xbar_a) with b_a = Sxx_a^-1 Sxl_a, where

    Sxl_a = (Sx,num_a - R_a Sx,den_a) / dbar_a,  Sll_a = (Snn - 2 R_a Snd + R_a^2 Sdd) / dbar_a^2,

both from sums (which is why a ratio's :class:`CovariateSums` carries sum x_j den besides
sum x_j num); Var(m_a) as above with Sll, Sxl. The reference test fits the OLS of l on
[1, T, X - xbar, T (X - xbar)]: its treatment coefficient equals m_t - m_c - (R_t - R_c).

Post-stratification (Miratrix, Sekhon & Yu 2013, JRSS-B 75(2)) on a categorical dimension
declared before the data: with strata h, weights w_h = (n_ch + n_th) / N (the stratum's share
pooled across arms), the estimate is sum_h w_h (ybar_th - ybar_ch) with variance
sum_h w_h^2 (s2_ch/n_ch + s2_th/n_th) (conditional on the stratum sizes). For a ratio metric
the weights are the stratum's share of the denominator pooled across arms, w_h = (D_ch +
D_th) / D, so that sum_h w_h R_h estimates the whole population's ratio, and each stratum's
ratio variance is the delta method's. A stratum with fewer than 2 units in an arm (or no
denominator, or no variance) cannot be estimated on its own and is merged into the largest
stratum (GrowthBook gbstats ``EffectMomentsPostStratification.combine_cells_for_analysis`` does the
same). GrowthBook's unconditional variance adds the multinomial term
(sum_h w_h d_h^2 - (sum_h w_h d_h)^2) / N for the stratum effects d_h.

``variance_reduction`` = 1 - Var(adjusted difference) / Var(unadjusted difference), the
unadjusted test being the plain test on the same arms (Welch's, or the delta method's).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from core.stats import _validation as v
from core.stats.metric_stats import MetricStats
from core.stats.two_sample import TwoSampleResult, compared
from core.types import Alternative, TestMethod

Slopes = Literal["per_arm", "pooled"]
"""Lin's per-arm slopes (treatment x covariate interactions) or one slope pooled within arms."""
SLOPES: tuple[str, ...] = ("per_arm", "pooled")


class _Arm(NamedTuple):
    """One arm's centred moments of the outcome (y, or a ratio's linearisation l)."""

    n: int
    level: float          # ybar, or the arm's ratio R_a
    xbar: list[float]
    sxx: list[list[float]]
    sxy: list[float]
    syy: float


def _arm(s: MetricStats, name: str) -> _Arm:
    c = s.covariates
    if c is None:
        raise ValueError(f"{name} carries no covariate sums (MetricStats.covariates): load the "
                         "metric with its covariates, or use the unadjusted test")
    # (CovariateSums has checked the lengths: the zips below need no strict=)
    n, total = s.n, s.sum
    xbar = [x / n for x in c.sum_x]
    k = len(xbar)
    sxx = [[0.0] * k for _ in range(k)]
    packed, p = c.sum_xx, 0          # the upper triangle, row by row
    for i in range(k):
        row, mi = sxx[i], n * xbar[i]
        for j in range(i, k):
            row[j] = sxx[j][i] = packed[p] - mi * xbar[j]
            p += 1
    den = s.sum_den
    if den is not None:
        assert s.sum_den_squares is not None and s.sum_num_den is not None
        assert c.sum_xden is not None
        if not den > 0:
            raise ValueError(f"{name}.sum_den must be positive (got {den!r}): a ratio "
                             "metric needs a positive denominator total")
        r = total / den
        dbar = den / n
        snn = s.sum_squares - total * total / n
        sdd = s.sum_den_squares - den * den / n
        snd = s.sum_num_den - total * den / n
        sxl = [((xy - m * total) - r * (xd - m * den)) / dbar
               for xy, xd, m in zip(c.sum_xy, c.sum_xden, xbar)]  # noqa: B905
        return _Arm(n, r, xbar, sxx, sxl,
                    max(snn - 2 * r * snd + r * r * sdd, 0.0) / (dbar * dbar))
    ybar = total / n
    return _Arm(n, ybar, xbar, sxx, [xy - m * total for xy, m in zip(c.sum_xy, xbar)],  # noqa: B905
                max(s.sum_squares - total * ybar, 0.0))


@dataclass(frozen=True)
class RegressionAdjustment:
    """Adjusted arm means (ratios) with the variances of those estimates.

    ``control_var`` / ``treatment_var`` are Var(m_a) (variances of the adjusted means, not
    per unit); ``*_unadjusted_var`` the plain tests' Var(ybar_a) (or the delta method's
    Var(R_a)); ``control_slopes`` / ``treatment_slopes`` the fitted b_a (equal when pooled);
    ``df_*`` the residual degrees of freedom per arm.
    """

    names: tuple[str, ...]
    slopes: Slopes
    control_mean: float
    treatment_mean: float
    control_var: float
    treatment_var: float
    control_unadjusted_mean: float
    treatment_unadjusted_mean: float
    control_unadjusted_var: float
    treatment_unadjusted_var: float
    control_slopes: tuple[float, ...]
    treatment_slopes: tuple[float, ...]
    df_control: int
    df_treatment: int

    @property
    def variance_reduction(self) -> float:
        """1 - Var(adjusted diff) / Var(unadjusted diff); 0 when the latter is 0."""
        before = self.control_unadjusted_var + self.treatment_unadjusted_var
        after = self.control_var + self.treatment_var
        return 1.0 - after / before if before > 0 else 0.0


ALIASED = 1e-10
"""A covariate whose within-arm sum of squares left after the earlier covariates is below this
share of its own (1 - R^2 < 1e-10: constant in the arm, or a linear combination of the others)
gets no slope and is not counted in the rank; R's ``lm`` likewise leaves aliased columns out."""


def _least_squares(sxx: list[list[float]], sxy: list[float], d: list[float]
                   ) -> tuple[list[float], float, float, int]:
    """(b = Sxx^- Sxy, Sxy' b, d' Sxx^- d, rank) from Sxx = L D L' (L unit lower triangular,
    D the pivots; Golub & Van Loan, "Matrix Computations", 4th ed., 4.1.2), an aliased
    covariate (:data:`ALIASED`) getting pivot 0 and no column of L, so that Sxx^- is the
    generalised inverse that leaves it out. Plain floats and loops: with a handful of
    covariates numpy's per-call overhead costs more than the arithmetic (bench_stats, (d))."""
    k = len(sxy)
    tiny = 1e-24 * max(1.0, max([sxx[j][j] for j in range(k)]))
    low: list[list[float]] = []
    piv: list[float] = []
    z: list[float] = []
    e: list[float] = []
    b = [0.0] * k
    explained = quad = 0.0
    rank = 0
    for j in range(k):
        row = sxx[j]
        ajj = row[j]
        lj = [0.0] * k           # row j of L, then L z = Sxy and L e = d forward
        dj, zj, ej = ajj, sxy[j], d[j]
        for m in range(j):
            pm = piv[m]
            if pm:
                lm_row = low[m]
                s = row[m]
                for r in range(m):
                    s -= lj[r] * lm_row[r] * piv[r]
                lm = s / pm
                lj[m] = lm
                dj -= lm * lm * pm
                zj -= lm * z[m]
                ej -= lm * e[m]
        low.append(lj)
        z.append(zj)
        e.append(ej)
        if ajj <= tiny or dj < ALIASED * ajj:
            piv.append(0.0)
            continue
        piv.append(dj)
        rank += 1
        explained += zj * zj / dj
        quad += ej * ej / dj
    for j in range(k - 1, -1, -1):   # L' b = D^-1 z backward; aliased: b_j = 0
        if piv[j]:
            w = z[j] / piv[j]
            for i in range(j + 1, k):
                w -= low[i][j] * b[i]
            b[j] = w
    return b, explained, quad, rank


def _dot(u: list[float], v: list[float]) -> float:
    total = 0.0
    for a, b in zip(u, v, strict=True):
        total += a * b
    return total


class _Adjusted(NamedTuple):
    """Both arms' adjusted means, their variances, residual df and slopes, and the arms."""

    mc: float
    vc: float
    dfc: int
    bc: list[float]
    mt: float
    vt: float
    dft: int
    bt: list[float]
    c: _Arm
    t: _Arm


def _per_arm(a: _Arm, xbar: list[float]) -> tuple[float, float, int, list[float]]:
    """Lin: the arm's own slopes; (adjusted mean at ``xbar``, its variance, residual df,
    slopes)."""
    d = [u - w for u, w in zip(xbar, a.xbar)]  # noqa: B905 (k each)
    b, explained, quad, rank = _least_squares(a.sxx, a.sxy, d)
    df = a.n - 1 - rank
    var = max(a.syy - explained, 0.0) / df * (1.0 / a.n + quad)
    return a.level + _dot(b, d), var, df, b


def _pooled(a: _Arm, xbar: list[float], b: list[float]) -> tuple[float, float, int, list[float]]:
    """One slope vector ``b`` for both arms, treated as known (CUPED)."""
    d = [u - w for u, w in zip(xbar, a.xbar)]  # noqa: B905 (k each)
    resid = a.syy - 2.0 * _dot(b, a.sxy) + _dot(b, [_dot(row, b) for row in a.sxx])
    return a.level + _dot(b, d), max(resid, 0.0) / (a.n - 1) / a.n, a.n - 1, b


def _adjusted(control: MetricStats, treatment: MetricStats, slopes: Slopes) -> _Adjusted:
    if slopes not in SLOPES:
        raise ValueError(f"slopes must be 'per_arm' or 'pooled' (got {slopes!r})")
    if not isinstance(control, MetricStats) or not isinstance(treatment, MetricStats):
        bad, s = ("control", control) if not isinstance(control, MetricStats) else (
            "treatment", treatment)
        raise TypeError(f"{bad} must be a MetricStats (got {type(s).__name__})")
    if control.has_ratio != treatment.has_ratio:
        raise ValueError("control and treatment must both be ratio sums or both mean sums")
    if control.covariates is not None and treatment.covariates is not None and (
            control.covariates.names != treatment.covariates.names):
        raise ValueError(f"the arms carry different covariates ({control.covariates.names!r} "
                         f"and {treatment.covariates.names!r})")
    c, t = _arm(control, "control"), _arm(treatment, "treatment")
    k = len(c.xbar)
    if min(c.n, t.n) < k + 2:
        name, n = ("control", c.n) if c.n < k + 2 else ("treatment", t.n)
        raise v.InsufficientDataError(
            f"{name} has n={n}: regression adjustment on {k} covariate(s) needs at least "
            f"{k + 2} units per arm")
    total = c.n + t.n
    xbar = [(u * c.n + w * t.n) / total for u, w in zip(c.xbar, t.xbar)]  # noqa: B905
    if slopes == "pooled":
        b = _least_squares(
            [[u + w for u, w in zip(ru, rw, strict=True)]
             for ru, rw in zip(c.sxx, t.sxx, strict=True)],
            [u + w for u, w in zip(c.sxy, t.sxy, strict=True)], [0.0] * k)[0]
        (mc, vc, dfc, bc), (mt, vt, dft, bt) = _pooled(c, xbar, b), _pooled(t, xbar, b)
    else:
        (mc, vc, dfc, bc), (mt, vt, dft, bt) = _per_arm(c, xbar), _per_arm(t, xbar)
    return _Adjusted(mc, vc, dfc, bc, mt, vt, dft, bt, c, t)


def regression_adjust(control: MetricStats, treatment: MetricStats, *,
                      slopes: Slopes = "per_arm") -> RegressionAdjustment:
    """Regression-adjust both arms on their covariates (module docstring).

    Args:
        control, treatment: :class:`MetricStats` per arm carrying ``covariates`` with the same
            names (and, for a ratio metric, the ratio sums and ``sum_xden``); each arm needs
            more units than covariates + 1 (n_a >= k + 2).
        slopes: "per_arm" (Lin 2013: treatment x covariate interactions, the default) or
            "pooled" (one within-arm slope vector; k = 1 is CUPED).

    Returns:
        :class:`RegressionAdjustment` with the adjusted means m_a = ybar_a + b_a'(xbar -
        xbar_a) at the pooled covariate mean and Var(m_a) from the per-arm residual variance.
    """
    a = _adjusted(control, treatment, slopes)
    c, t = a.c, a.t
    assert control.covariates is not None
    return RegressionAdjustment(
        names=control.covariates.names, slopes=slopes, control_mean=a.mc, treatment_mean=a.mt,
        control_var=a.vc, treatment_var=a.vt, control_unadjusted_mean=c.level,
        treatment_unadjusted_mean=t.level,
        control_unadjusted_var=c.syy / (c.n - 1) / c.n,
        treatment_unadjusted_var=t.syy / (t.n - 1) / t.n,
        control_slopes=tuple(a.bc), treatment_slopes=tuple(a.bt),
        df_control=a.dfc, df_treatment=a.dft)


@dataclass(frozen=True, kw_only=True)
class AdjustedTestResult(TwoSampleResult):
    """A test on adjusted arm means (regression adjustment or post-stratification).

    Its :class:`TwoSampleResult` fields are the adjusted test's; ``unadjusted_diff`` and
    ``unadjusted_diff_se`` are the plain test's, ``variance_reduction`` = 1 -
    diff_se^2 / unadjusted_diff_se^2, ``covariates`` the covariates' names (or the
    post-stratification dimension's strata), ``df`` the degrees of freedom (inf: z test).
    ``method``: "regression_adjusted", "ratio_regression_adjusted", "post_stratified" or
    "ratio_post_stratified".
    """

    unadjusted_diff: float
    unadjusted_diff_se: float
    variance_reduction: float
    covariates: tuple[str, ...]
    df: float
    method: TestMethod


def _satterthwaite(vc: float, dfc: float, vt: float, dft: float) -> float:
    denom = vc * vc / dfc + vt * vt / dft
    return (vc + vt) ** 2 / denom if denom > 0 else math.inf


def _test(mc: float, vc: float, mt: float, vt: float, df: float, n_c: int, n_t: int, *,
          unadjusted: tuple[float, float], names: tuple[str, ...], method: TestMethod,
          alpha: float, alternative: Alternative, sequential: bool, tuning_n: float | None,
          margin: float) -> AdjustedTestResult:
    fields = compared(mc, vc, mt, vt, n_c, n_t, df=math.inf if sequential else df,
                      alpha=alpha, alternative=alternative, sequential=sequential,
                      tuning_n=tuning_n, margin=margin)
    u_diff, u_se = unadjusted
    reduction = 1.0 - (vc + vt) / (u_se * u_se) if u_se > 0 else 0.0
    return AdjustedTestResult(
        **fields, unadjusted_diff=u_diff, unadjusted_diff_se=u_se,
        variance_reduction=reduction, covariates=names,
        df=math.inf if sequential else df, method=method)


def regression_adjusted_test(
    control: MetricStats,
    treatment: MetricStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    sequential: bool = False,
    tuning_n: float | None = None,
    margin: float = 0.0,
    slopes: Slopes = "per_arm",
) -> AdjustedTestResult:
    """Test the difference of regression-adjusted arm means (mean, proportion or ratio metric).

    Args:
        control, treatment: :class:`MetricStats` per arm with ``covariates`` (same names); a
            ratio metric's also with the ratio sums. n_a >= k + 2.
        alpha, alternative, sequential, tuning_n, margin: as in :func:`core.stats.welch_ttest`.
        slopes: "per_arm" (Lin 2013, default) or "pooled" (CUPED's shared slope).

    Returns:
        :class:`AdjustedTestResult`: diff = m_t - m_c with SE sqrt(Var m_c + Var m_t) (module
        docstring); mean metrics: t with Welch-Satterthwaite degrees of freedom from the
        per-arm residual degrees of freedom; ratio metrics: z (as the delta method's test);
        lift = m_t / m_c - 1 with Fieller's interval.
    """
    a = _adjusted(control, treatment, slopes)
    c, t = a.c, a.t
    ratio = control.has_ratio
    df = math.inf if ratio else _satterthwaite(a.vc, a.dfc, a.vt, a.dft)
    unadjusted = (t.level - c.level,
                  math.sqrt(c.syy / (c.n - 1) / c.n + t.syy / (t.n - 1) / t.n))
    assert control.covariates is not None
    return _test(a.mc, a.vc, a.mt, a.vt, df,
                 control.n, treatment.n, unadjusted=unadjusted, names=control.covariates.names,
                 method="ratio_regression_adjusted" if ratio else "regression_adjusted",
                 alpha=alpha, alternative=alternative, sequential=sequential,
                 tuning_n=tuning_n, margin=margin)


# --------------------------------------------------------------------------- post-stratification


@dataclass(frozen=True)
class Stratum:
    """One stratum of a post-stratified comparison: its weight, arm values and variances."""

    names: tuple[str, ...]
    """The dimension values in it (several when sparse strata were merged into it)."""
    weight: float
    control_mean: float
    treatment_mean: float
    control_var: float
    treatment_var: float


def _arm_value(s: MetricStats) -> tuple[float, float]:
    """(mean or ratio, variance of it) of one arm's sums (n >= 2; a ratio's sum_den > 0): the
    sample mean with s^2/n, or the ratio with the delta method's variance (as
    :attr:`core.stats.ratio.RatioStats.ratio_variance`)."""
    n = s.n
    syy = max(s.sum_squares - s.sum * s.sum / n, 0.0)
    if s.sum_den is not None:
        assert s.sum_den_squares is not None and s.sum_num_den is not None
        r = s.sum / s.sum_den
        sdd = max(s.sum_den_squares - s.sum_den * s.sum_den / n, 0.0)
        snd = s.sum_num_den - s.sum * s.sum_den / n
        dbar = s.sum_den / n
        return r, max(syy - 2.0 * r * snd + r * r * sdd, 0.0) / (n - 1) / (n * dbar * dbar)
    return s.sum / n, syy / (n - 1) / n


def _viable(c: MetricStats, t: MetricStats) -> bool:
    """A stratum estimable on its own: 2+ units, a positive denominator (ratio) and variance
    in each arm (a stratum without conversions in an arm would claim a zero variance)."""
    ok = c.n >= 2 and t.n >= 2
    if ok and c.has_ratio:
        ok = bool(c.sum_den and c.sum_den > 0 and t.sum_den and t.sum_den > 0)
    return ok and _arm_value(c)[1] > 0 and _arm_value(t)[1] > 0


def post_strata(control: Mapping[str, MetricStats], treatment: Mapping[str, MetricStats]
                ) -> tuple[Stratum, ...]:
    """The strata of a post-stratified comparison (module docstring): weights, arm values.

    Args:
        control, treatment: stratum (dimension value) -> :class:`MetricStats` of the arm's
            units in it; a value missing from one arm has no units there. All ratio sums or
            none.

    Returns:
        The strata, the largest first; those with fewer than 2 units in an arm (or a zero
        denominator, or no variance) merged into the largest.
    """
    values = list(dict.fromkeys([*control, *treatment]))
    if not values:
        raise ValueError("post-stratification needs at least one stratum")
    empty = MetricStats(0, 0.0, 0.0)
    cells = []
    for h in values:
        c, t = control.get(h, empty), treatment.get(h, empty)
        for s in (c, t):
            if not isinstance(s, MetricStats):
                raise TypeError(f"stratum {h!r}: give MetricStats (got {type(s).__name__})")
        cells.append(([str(h)], c, t))
    ratios = {s.has_ratio for _h, c, t in cells for s in (c, t) if s.n > 0}
    if len(ratios) > 1:
        raise ValueError("every stratum must carry ratio sums, or none may")
    is_ratio = ratios == {True}

    def size(cell: tuple[list[str], MetricStats, MetricStats]) -> float:
        _h, c, t = cell
        if is_ratio:
            return (c.sum_den or 0.0) + (t.sum_den or 0.0)
        return float(c.n + t.n)

    cells.sort(key=size, reverse=True)
    merged = [cells[0]]
    for cell in cells[1:]:
        if _viable(cell[1], cell[2]):
            merged.append(cell)
        else:
            h0, c0, t0 = merged[0]
            merged[0] = (h0 + cell[0], c0 + cell[1], t0 + cell[2])
    if not _viable(merged[0][1], merged[0][2]):
        raise v.InsufficientDataError(
            "post-stratification needs at least 2 units, a positive denominator (ratio "
            "metrics) and some variation per arm")
    total = sum(size(cell) for cell in merged)
    out = []
    for cell in merged:
        mc, vc = _arm_value(cell[1])
        mt, vt = _arm_value(cell[2])
        out.append(Stratum(tuple(cell[0]), size(cell) / total, mc, mt, vc, vt))
    return tuple(out)


def _pool(cells: Iterable[MetricStats]) -> MetricStats:
    """The arm's sums over every stratum (``sum(cells, EMPTY)`` without a record per step);
    the ratio part when every stratum with units carries it."""
    n = 0
    total = squares = den = den_squares = num_den = 0.0
    ratio = True
    for s in cells:
        n += s.n
        total += s.sum
        squares += s.sum_squares
        if s.sum_den is None or s.sum_den_squares is None or s.sum_num_den is None:
            ratio = ratio and s.n == 0
        else:
            den += s.sum_den
            den_squares += s.sum_den_squares
            num_den += s.sum_num_den
    if ratio and den != 0.0:
        return MetricStats(n, total, squares, sum_den=den, sum_den_squares=den_squares,
                           sum_num_den=num_den)
    return MetricStats(n, total, squares)


def post_stratified_test(
    control: Mapping[str, MetricStats],
    treatment: Mapping[str, MetricStats],
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    sequential: bool = False,
    tuning_n: float | None = None,
    margin: float = 0.0,
) -> AdjustedTestResult:
    """Post-stratified test of a mean, proportion or ratio metric (module docstring).

    Args:
        control, treatment: stratum -> :class:`MetricStats` per arm (:func:`post_strata`);
            the dimension must be fixed before exposure (a pre-declared unit attribute).
        alpha, alternative, sequential, tuning_n, margin: as in :func:`core.stats.welch_ttest`.

    Returns:
        :class:`AdjustedTestResult` with the arm values m_a = sum_h w_h ybar_ah (ratios:
        R_ah), Var(m_a) = sum_h w_h^2 Var(ybar_ah) (Miratrix et al. 2013), a z test;
        ``unadjusted_*`` from the arms' pooled sums; ``covariates`` the strata's names.
    """
    strata = post_strata(control, treatment)
    mc = mt = vc = vt = 0.0
    for s in strata:
        w = s.weight
        mc += w * s.control_mean
        mt += w * s.treatment_mean
        vc += w * w * s.control_var
        vt += w * w * s.treatment_var
    pooled_c, pooled_t = _pool(control.values()), _pool(treatment.values())
    uc, uvc = _arm_value(pooled_c)
    ut, uvt = _arm_value(pooled_t)
    ratio = pooled_c.has_ratio
    return _test(mc, vc, mt, vt, math.inf, pooled_c.n, pooled_t.n,
                 unadjusted=(ut - uc, math.sqrt(uvc + uvt)),
                 names=tuple(h for s in strata for h in s.names),
                 method="ratio_post_stratified" if ratio else "post_stratified", alpha=alpha,
                 alternative=alternative, sequential=sequential, tuning_n=tuning_n,
                 margin=margin)
