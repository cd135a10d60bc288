"""Small-count inference for two proportions: MOVER intervals built from Clopper–Pearson limits,
with the p-value that belongs to each interval.

The small-count path of :func:`core.stats.proportion_ztest` (an arm with fewer than 5 observed or
expected conversions or non-conversions) needs intervals for the difference p_t - p_c and the
relative risk p_t / p_c (lift = RR - 1) that stay valid where normal approximations of either
arm fail: a handful of conversions, rates near 0 or 1, and lopsided arms (10 units against
10^8, where the score and Wald tests reject a true null far more often than alpha).

* Per arm, the exact Clopper–Pearson limits (Clopper & Pearson 1934; R ``binom.test``, scipy
  ``binomtest(...).proportion_ci()``): at one-sided level a, lower l = B^-1(a; x, n - x + 1)
  (0 when x = 0) and upper u = B^-1(1 - a; x + 1, n - x) (1 when x = n), each covering its
  rate with probability >= 1 - a.
* MOVER (method of variance estimates recovery) combines them. Difference (Newcombe 1998,
  method 10, with Clopper–Pearson limits in place of Wilson's: "MOVER-E", Laud 2017; R
  ``ratesci::moverci(type = "exact")``):
  L = d - sqrt((p_t - l_t)^2 + (u_c - p_c)^2),  U = d + sqrt((u_t - p_t)^2 + (p_c - l_c)^2).
  Relative risk (Donner & Zou 2012, "MOVER-R"; Fagerland & Newcombe 2013):
  L = [p_t p_c - sqrt((p_t p_c)^2 - l_t u_c (2 p_t - l_t)(2 p_c - u_c))] / [u_c (2 p_c - u_c)],
  U = [p_t p_c + sqrt((p_t p_c)^2 - u_t l_c (2 p_t - u_t)(2 p_c - l_c))] / [l_c (2 p_c - l_c)],
  with L computed as l_t (2 p_t - l_t) / (p_t p_c + sqrt(...)) (the same number, free of the
  0/0 at u_c = 2 p_c) and U = inf when x_c = 0.
  Two-sided intervals at level alpha use a = alpha / 2 in each arm; one-sided ones a = alpha
  on their one side ([L, inf) for "greater", (-inf, U] for "less").
* p-values: each bound moves monotonically towards the estimate as a grows (the per-arm limits
  are held at the estimate once they reach it, so an interval always contains its estimate),
  so a null is excluded at exactly the levels above one value of a; that value is the
  one-sided p-value (1 when the null is on the other side of the estimate, or at it), and the
  two-sided p-value is twice the one-sided p-value of the side the null lies on (capped at 1).
  Computing p by solving bound(a) = null, bracketed by a = alpha (two-sided: alpha / 2) itself,
  makes "the interval excludes the null" and "p < alpha" the same statement, for the
  difference and the lift alike.

The difference and the lift are separate hypotheses (diff_null = lift_null * p_c, lift_null
on the ratio scale), each with its own p-value, as on the Wald path. Validity is shown by
seeded simulations (tests/core/stats/test_simulations.py): the 95% intervals cover 0.970-0.996
in issue 22's three scenarios and issue 12's lopsided one. MOVER-E is conservative rather than
exact (Fisher's conditional test, a score or a Wald interval would each fail one of them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy import special

from core.types import Alternative

INF = math.inf
Z_MAX = 37.5
"""Largest normal quantile solved for (one-sided level 5e-308); a smaller p is reported as 0."""
_SQRT1_2 = math.sqrt(0.5)


@dataclass(frozen=True)
class MoverInference:
    """Intervals and p-values of the difference and the lift (see the module docstring)."""

    diff_ci_low: float
    diff_ci_high: float
    p_value: float
    lift_ci_low: float
    lift_ci_high: float
    lift_p_value: float


def clopper_pearson(x: int, n: int, a: float) -> tuple[float, float]:
    """One-sided Clopper–Pearson limits (lower, upper) at level a each, held at x / n.

    Args:
        x: successes, 0 <= x <= n.
        n: trials, >= 1.
        a: one-sided level in (0, 1); (lower, upper) is the two-sided 1 - 2a interval of R
            ``binom.test(x, n, conf.level = 1 - 2a)`` when a < 0.5.

    Returns:
        (min(B^-1(a; x, n - x + 1), x/n), max(B^-1(1 - a; x + 1, n - x), x/n)), with lower
        0 when x = 0 and upper 1 when x = n.
    """
    return _cp_low(x, n, a), _cp_high(x, n, a)


def _cp_low(x: int, n: int, a: float) -> float:
    if x == 0:
        return 0.0
    low = float(special.betaincinv(x, n - x + 1, a))
    # scipy returns nan where the limit underflows (a below about 1e-150): 0 is its limit
    return 0.0 if math.isnan(low) else min(low, x / n)


def _cp_high(x: int, n: int, a: float) -> float:
    if x == n:
        return 1.0
    high = float(special.betainccinv(x + 1, n - x, a))
    return 1.0 if math.isnan(high) else max(high, x / n)


def mover_difference(p_c: float, l_c: float, u_c: float, p_t: float, l_t: float, u_t: float
                     ) -> tuple[float, float]:
    """MOVER interval for p_t - p_c from per-arm limits with l <= p <= u (Newcombe 1998,
    method 10, eq. for L and U in the module docstring)."""
    d = p_t - p_c
    return d - math.hypot(p_t - l_t, u_c - p_c), d + math.hypot(u_t - p_t, p_c - l_c)


def mover_ratio(p_c: float, l_c: float, u_c: float, p_t: float, l_t: float, u_t: float
                ) -> tuple[float, float]:
    """MOVER-R interval for p_t / p_c from per-arm limits with l <= p <= u (Donner & Zou 2012).

    Lower 0 when p_t = 0 (and l_t = 0); upper inf when l_c = 0."""
    return _ratio_low(p_c, u_c, p_t, l_t), _ratio_high(p_c, l_c, p_t, u_t)


def _ratio_low(p_c: float, u_c: float, p_t: float, l_t: float) -> float:
    num = l_t * (2.0 * p_t - l_t)
    if num <= 0.0:
        return 0.0
    pp = p_t * p_c
    den = pp + math.sqrt(max(pp * pp - num * u_c * (2.0 * p_c - u_c), 0.0))
    return num / den if den > 0.0 else INF  # 0 only when p_c = u_c = 0: the ratio is unbounded


def _ratio_high(p_c: float, l_c: float, p_t: float, u_t: float) -> float:
    den = l_c * (2.0 * p_c - l_c)
    if den <= 0.0:
        return INF
    pp = p_t * p_c
    disc = pp * pp - u_t * (2.0 * p_t - u_t) * den
    return (pp + math.sqrt(max(disc, 0.0))) / den


def _root(g: Callable[[float], float], lo: float, g_lo: float, hi: float, g_hi: float) -> float:
    """A root of g between lo and hi (either order), where g changes sign, by the
    Anderson–Björck regula falsi (nearly linear functions converge in a few steps; the bracket
    is kept throughout)."""
    for _ in range(100):
        z = hi - g_hi * (hi - lo) / (g_hi - g_lo)
        if not min(lo, hi) < z < max(lo, hi):  # rounding at convergence: take the midpoint
            z = 0.5 * (lo + hi)
        g_z = g(z)
        if g_z == 0.0:
            return z
        step = abs(z - hi)
        if (g_z > 0.0) == (g_hi > 0.0):
            m = 1.0 - g_z / g_hi
            g_lo *= m if m > 0.0 else 0.5
        else:
            lo, g_lo = hi, g_hi
        hi, g_hi = z, g_z
        if min(step, abs(hi - lo)) <= 1e-12 * max(1.0, abs(hi)):
            break
    return hi


def _tail_p(bound: Callable[[float], float], null: float, estimate: float, a_ref: float,
            z_ref: float, at_ref: float, sign: float) -> float:
    """inf{a : the one-sided bound at level a excludes null}, 1 if no level does.

    ``sign`` is +1 for a lower bound (it excludes the null when bound > null and rises with a)
    and -1 for an upper bound; ``at_ref`` is the bound at a_ref = Phi(-z_ref), the level of the
    interval itself. Solved on the normal-quantile scale z = -Phi^-1(a), where the bounds are
    nearly linear, and bracketed by a_ref, so that p < a_ref exactly when at_ref excludes the
    null."""
    if sign * (estimate - null) <= 0.0:
        return 1.0  # the null is at the estimate or beyond it: no one-sided level excludes it

    def g(z: float) -> float:  # > 0 where the bound at level a(z) excludes the null
        return sign * (bound(_level(z)) - null)

    g_ref = sign * (at_ref - null)
    # first guess: the bound taken as linear in z, from the estimate at z = 0 (a = 1/2, where
    # the limits are about the estimates) through at_ref at z_ref
    guess = z_ref * (estimate - null) / (estimate - at_ref) if estimate != at_ref else z_ref
    if g_ref > 0.0:  # excluded at a_ref: the root lies at a smaller level (larger z)
        z = _bracket_root(g, z_ref, g_ref, guess, Z_MAX, None)
        return 0.0 if z is None else min(_level(z), math.nextafter(a_ref, 0.0))
    # not excluded at a_ref; as a -> 1 the limits reach the estimates, and so does the bound
    z = _bracket_root(g, z_ref, g_ref, guess, -Z_MAX, sign * (estimate - null))
    return 1.0 if z is None else max(_level(z), a_ref)


def _bracket_root(g: Callable[[float], float], z0: float, g0: float, guess: float, end: float,
                  g_end: float | None) -> float | None:
    """The root of g between z0 and end, where g changes sign; None if it keeps the sign of
    g0 up to ``end`` (g_end: g at ``end`` if known). Secant steps from (z0, g0) and ``guess``
    first (the bounds are nearly linear in z: three or four steps); if they stray, secant steps
    outward find a bracket, which :func:`_root` closes."""
    direction = 1.0 if end > z0 else -1.0
    lo_z, hi_z = min(z0, end), max(z0, end)
    za, ga = z0, g0
    zb = guess if lo_z < guess < hi_z and guess != z0 else z0 + 0.5 * direction
    for _ in range(8):
        gb = g(zb)
        if gb == 0.0:
            return zb
        if gb == ga:
            break
        zc = zb - gb * (zb - za) / (gb - ga)
        if not lo_z < zc < hi_z:
            break
        if abs(zc - zb) <= 1e-10 * max(1.0, abs(zc)):
            return zc
        za, ga, zb = zb, gb, zc
    step = 0.5 * direction
    while True:
        z1 = min(z0 + step, end) if direction > 0 else max(z0 + step, end)
        g1 = g_end if (z1 == end and g_end is not None) else g(z1)
        if (g1 > 0.0) != (g0 > 0.0):
            return _root(g, z0, g0, z1, g1)
        if z1 == end:
            return None
        slope = (g1 - g0) / (z1 - z0)
        secant = -1.2 * g1 / slope if slope * g1 * direction < 0.0 else 0.0
        step = direction * max(secant * direction, abs(z1 - z0))  # no shorter than the last
        z0, g0 = z1, g1


def _level(z: float) -> float:
    """Phi(-z), the one-sided level of the normal quantile z."""
    return 0.5 * math.erfc(z * _SQRT1_2)


def mover_inference(
    x_c: int, n_c: int, x_t: int, n_t: int, *, alpha: float, alternative: Alternative,
    diff_null: float, lift_null: float,
) -> MoverInference:
    """MOVER-E intervals and their p-values (module docstring) for H0: diff = diff_null and
    H0: lift = lift_null (one-sided: diff <= diff_null for "greater", >= for "less").

    Args:
        x_c, n_c, x_t, n_t: conversions and units per arm, 0 <= x <= n, n >= 1.
        alpha: significance level in (0, 1).
        alternative: "two-sided", "greater" or "less".
        diff_null: the difference tested, in (-1, 1).
        lift_null: the relative lift tested, > -1 (the relative risk 1 + lift_null).
    """
    p_c, p_t = x_c / n_c, x_t / n_t
    diff = p_t - p_c
    rr = p_t / p_c if x_c > 0 else (INF if x_t > 0 else math.nan)
    rr_null = 1.0 + lift_null
    a_ref = alpha / 2.0 if alternative == "two-sided" else alpha
    factor = 2.0 if alternative == "two-sided" else 1.0

    def diff_low(a: float) -> float:
        l_t, u_c = _cp_low(x_t, n_t, a), _cp_high(x_c, n_c, a)
        return diff - math.hypot(p_t - l_t, u_c - p_c)

    def diff_high(a: float) -> float:
        u_t, l_c = _cp_high(x_t, n_t, a), _cp_low(x_c, n_c, a)
        return diff + math.hypot(u_t - p_t, p_c - l_c)

    def rr_low(a: float) -> float:
        return _ratio_low(p_c, _cp_high(x_c, n_c, a), p_t, _cp_low(x_t, n_t, a))

    def rr_high(a: float) -> float:
        return _ratio_high(p_c, _cp_low(x_c, n_c, a), p_t, _cp_high(x_t, n_t, a))

    z_ref = -float(special.ndtri(a_ref))
    d_lo, d_hi, r_lo, r_hi = -INF, INF, 0.0, INF
    p_diff = p_rr = 1.0
    if alternative != "less":
        l_t, u_c = _cp_low(x_t, n_t, a_ref), _cp_high(x_c, n_c, a_ref)
        d_lo = diff - math.hypot(p_t - l_t, u_c - p_c)
        r_lo = _ratio_low(p_c, u_c, p_t, l_t)
        p_diff = _tail_p(diff_low, diff_null, diff, a_ref, z_ref, d_lo, 1.0)
    if alternative != "greater":
        u_t, l_c = _cp_high(x_t, n_t, a_ref), _cp_low(x_c, n_c, a_ref)
        d_hi = diff + math.hypot(u_t - p_t, p_c - l_c)
        r_hi = _ratio_high(p_c, l_c, p_t, u_t)
        p_diff = min(p_diff, _tail_p(diff_high, diff_null, diff, a_ref, z_ref, d_hi, -1.0))
    # At the equality null (diff 0, relative risk 1) the two MOVER intervals exclude it at the
    # same levels (squaring "MOVER-R bound = 1" gives "MOVER bound = 0"), so the difference's p
    # serves the lift, unless rounding makes their intervals disagree at this alpha.
    agree = (d_lo > 0.0) == (r_lo > 1.0) and (d_hi < 0.0) == (r_hi < 1.0)
    if math.isnan(rr):
        # no conversion in either arm: every relative risk in [0, inf) fits the data, at every
        # level; only a null below 0 (a margin above 100%) is excluded, by every level
        p_rr = 0.0 if alternative != "less" and rr_null < 0.0 else 1.0
    elif diff_null == 0.0 and rr_null == 1.0 and agree:
        p_rr = p_diff
    else:
        if alternative != "less":
            p_rr = _tail_p(rr_low, rr_null, rr, a_ref, z_ref, r_lo, 1.0)
        if alternative != "greater":
            p_rr = min(p_rr, _tail_p(rr_high, rr_null, rr, a_ref, z_ref, r_hi, -1.0))
    if alternative == "less":
        r_lo = -INF  # one-sided: the lift interval is (-inf, high]
    # an interval contains its estimate (the per-arm limits are held at the estimates; this
    # only absorbs rounding, and cannot change whether a null on either side is excluded)
    d_lo, d_hi = min(d_lo, diff), max(d_hi, diff)
    if not math.isnan(rr):
        r_lo, r_hi = min(r_lo, rr), max(r_hi, rr)
    return MoverInference(
        diff_ci_low=d_lo, diff_ci_high=d_hi, p_value=min(1.0, factor * p_diff),
        lift_ci_low=r_lo - 1.0, lift_ci_high=r_hi - 1.0, lift_p_value=min(1.0, factor * p_rr),
    )
