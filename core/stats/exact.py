"""Fisher's exact conditional test for two proportions, with intervals that agree with it.

Conditioning on the total number of conversions m = x_c + x_t, the treatment's count X follows
Fisher's noncentral hypergeometric distribution with odds ratio psi (Fisher 1935; R
``fisher.test``): P(X = k) is proportional to C(n_t, k) C(n_c, m - k) psi^k on
max(0, m - n_c) <= k <= min(n_t, m).

* p-values: "greater" P(X >= x | psi0), "less" P(X <= x | psi0), "two-sided" the sum of the
  probabilities not larger than that of the observed table (times 1 + 1e-7, R's rule; = R
  ``fisher.test``, scipy ``fisher_exact`` at psi0 = 1).
* intervals: the set of psi0 the same test does not reject at level alpha (test inversion), so
  the interval excludes the null exactly when p < alpha, by construction. One-sided bounds
  solve P(X >= x | psi) = alpha (lower, = R ``fisher.test(alternative="greater")$conf.int``)
  or P(X <= x | psi) = alpha (upper).
* difference and lift: each psi is mapped to the fitted table with the observed margins, whose
  treatment rate is E[X | psi] / n_t and control rate (m - E[X | psi]) / n_c; the mapping is
  increasing, gives the observed rates at the conditional MLE and equal rates at psi = 1, so the
  psi interval becomes an interval for diff = p_t - p_c and lift = p_t / p_c - 1 that excludes 0
  exactly when psi's excludes 1. A null beyond the reach of the fitted tables (a wide margin
  with a lopsided table) cannot be rejected, and an interval reaching that end of the support
  is extended to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from core.stats._validation import InsufficientDataError
from core.types import Alternative

MAX_TABLES = 2_000_000
"""Largest conditional support enumerated (16 MB per array); larger tables are refused."""
T_MAX = 700.0  # |log psi| beyond which all the mass sits on one end of the support
REL_ERR = 1.0 + 1e-7  # R fisher.test's tolerance for "as or less likely than observed"


@dataclass(frozen=True)
class ExactInterval:
    p_value: float
    diff_ci_low: float
    diff_ci_high: float
    lift_ci_low: float
    lift_ci_high: float
    diff_null: float
    odds_ratio_ci_low: float
    odds_ratio_ci_high: float


class _Conditional:
    """The conditional distribution of the treatment's conversions given both margins."""

    def __init__(self, x_c: int, n_c: int, x_t: int, n_t: int) -> None:
        m = x_c + x_t
        lo, hi = max(0, m - n_c), min(n_t, m)
        if hi - lo + 1 > MAX_TABLES:
            raise InsufficientDataError(
                f"the exact test would enumerate {hi - lo + 1:,} tables (control {x_c}/{n_c}, "
                f"treatment {x_t}/{n_t}): an arm has under 5 conversions or non-conversions "
                f"while both arms and both outcomes are in the millions; check the data (such "
                f"a split usually means a logging problem) or wait for more conversions"
            )
        self.n_c, self.n_t, self.m, self.lo, self.hi = n_c, n_t, m, lo, hi
        k = np.arange(lo, hi + 1, dtype=np.float64)
        self.k = k
        # log C(n_t, k) C(n_c, m - k) up to a constant, as a running sum of the log ratios of
        # neighbouring terms (accurate to a few ulps even when n is 1e8, unlike gammaln sums)
        j = k[:-1]
        steps = np.log((n_t - j) * (m - j)) - np.log((j + 1) * (n_c - m + j + 1))
        self.logw = np.concatenate(([0.0], np.cumsum(steps)))
        self.ix = x_t - lo

    def pmf(self, t: float) -> np.ndarray:
        a = self.logw + self.k * t
        w = np.exp(a - a.max())
        return w / w.sum()

    def p(self, t: float, alternative: Alternative) -> float:
        d = self.pmf(t)
        if alternative == "greater":
            return min(1.0, float(d[self.ix:].sum()))
        if alternative == "less":
            return min(1.0, float(d[: self.ix + 1].sum()))
        return min(1.0, float(d[d <= d[self.ix] * REL_ERR].sum()))

    def mean(self, t: float) -> float:
        return float(self.pmf(t) @ self.k)

    def solve_mean(self, target: float) -> float:
        """log psi with E[X | psi] = target, clamped to +/- T_MAX at the support's ends."""
        if target <= self.lo:
            return -T_MAX
        if target >= self.hi:
            return T_MAX
        f = lambda t: self.mean(t) - target  # noqa: E731
        a, b = -1.0, 1.0
        while f(a) > 0 and a > -T_MAX:
            a = max(2 * a, -T_MAX)
        while f(b) < 0 and b < T_MAX:
            b = min(2 * b, T_MAX)
        return float(optimize.brentq(f, a, b, xtol=1e-13, rtol=4 * np.finfo(float).eps))

    def rates(self, t: float) -> tuple[float, float]:
        e = self.mean(t)
        return e / self.n_t, (self.m - e) / self.n_c


def _bisect(c: _Conditional, rejected: float, accepted: float, alpha: float,
            alternative: Alternative) -> float:
    """A boundary between a rejected and an accepted log psi; returns the accepted side."""
    a, b = rejected, accepted
    for _ in range(200):
        if abs(b - a) <= 1e-10 * max(1.0, abs(a), abs(b)):
            break
        mid = 0.5 * (a + b)
        if c.p(mid, alternative) < alpha:
            a = mid
        else:
            b = mid
    return b


def _outward(c: _Conditional, start: float, direction: float, alpha: float,
             alternative: Alternative) -> float:
    """From an accepted log psi, step outward until rejected, then bisect; +/-T_MAX if never."""
    step = 1.0
    prev = start
    while True:
        t = start + direction * step
        if abs(t) >= T_MAX:
            t = direction * T_MAX
            if c.p(t, alternative) >= alpha:
                return t
            return _bisect(c, t, prev, alpha, alternative)
        if c.p(t, alternative) < alpha:
            return _bisect(c, t, prev, alpha, alternative)
        prev = t
        step *= 2.0


def _side(c: _Conditional, t0: float, t_hat: float, p0: float, direction: float, alpha: float,
          alternative: Alternative) -> float:
    """One end of {t : p(t) >= alpha}, on the side ``direction`` of the estimate t_hat.

    Bracketed by the null t0 so that the end excludes t0 exactly when p(t0) < alpha."""
    null_on_this_side = (t0 - t_hat) * direction > 0
    if null_on_this_side and p0 < alpha:
        return _bisect(c, t0, t_hat, alpha, alternative)
    if null_on_this_side:
        return _outward(c, t0, direction, alpha, alternative)
    return _outward(c, t_hat, direction, alpha, alternative)


def fisher_exact_inference(
    x_c: int, n_c: int, x_t: int, n_t: int, *, alpha: float, alternative: Alternative,
    lift_null: float,
) -> ExactInterval:
    """Exact conditional p-value and intervals (module docstring) for H0: lift = lift_null.

    The null on the odds-ratio scale is the psi whose fitted table has p_t = (1 + lift_null) p_c
    with the observed margins (psi = 1 when lift_null = 0); ``diff_null`` is that table's
    p_t - p_c (0 when lift_null = 0).
    """
    c = _Conditional(x_c, n_c, x_t, n_t)
    if c.lo == c.hi:  # nothing converted (or everything): the table carries no information
        d_lo, d_hi = (-1.0, 1.0) if alternative == "two-sided" else (
            (-1.0, math.inf) if alternative == "greater" else (-math.inf, 1.0))
        l_lo = -1.0 if alternative != "less" else -math.inf
        return ExactInterval(1.0, d_lo, d_hi, l_lo, math.inf, 0.0, 0.0, math.inf)
    if lift_null == 0:
        t0 = 0.0
    else:
        rr0 = 1.0 + lift_null
        t0 = c.solve_mean(rr0 * c.m * c.n_t / (c.n_c + rr0 * c.n_t))
    p0 = c.p(t0, alternative)
    t_hat = c.solve_mean(float(x_t))
    if alternative == "greater":
        lo_t = -T_MAX if x_t == c.lo else _side(c, t0, t_hat, p0, -1.0, alpha, alternative)
        hi_t = T_MAX
    elif alternative == "less":
        lo_t = -T_MAX
        hi_t = T_MAX if x_t == c.hi else _side(c, t0, t_hat, p0, 1.0, alpha, alternative)
    else:
        lo_t = _side(c, t0, t_hat, p0, -1.0, alpha, alternative)
        hi_t = _side(c, t0, t_hat, p0, 1.0, alpha, alternative)

    def mapped(t: float) -> tuple[float, float]:
        if abs(t) >= T_MAX:
            e = float(c.lo if t < 0 else c.hi)
            pt, pc = e / c.n_t, (c.m - e) / c.n_c
        else:
            pt, pc = c.rates(t)
        lift = pt / pc - 1.0 if pc > 0 else math.inf
        return pt - pc, lift

    d_lo, l_lo = mapped(lo_t)
    d_hi, l_hi = mapped(hi_t)
    if t0 == 0.0:
        diff_null = 0.0
    else:
        pt0, pc0 = c.rates(t0)
        diff_null = pt0 - pc0
    # A null beyond what the fitted tables can reach (a margin so wide that the null table
    # falls outside the conditional support) cannot be rejected; an interval reaching that
    # end of the support therefore reaches the null too.
    if lo_t <= -T_MAX:
        d_lo, l_lo = min(d_lo, diff_null), min(l_lo, lift_null)
    if hi_t >= T_MAX:
        d_hi, l_hi = max(d_hi, diff_null), max(l_hi, lift_null)
    if alternative == "greater":
        d_hi, l_hi = math.inf, math.inf
    elif alternative == "less":
        d_lo, l_lo = -math.inf, -math.inf

    def psi(t: float) -> float:
        return 0.0 if t <= -T_MAX else (math.inf if t >= T_MAX else math.exp(t))

    return ExactInterval(p0, d_lo, d_hi, l_lo, l_hi, diff_null, psi(lo_t), psi(hi_t))
