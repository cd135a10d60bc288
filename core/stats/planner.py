"""Experiment planner: sample size, power, minimum detectable effect and duration, vectorised.

Every numeric argument may be a scalar or a numpy array; arrays broadcast against each other
and the result is a numpy array of the broadcast shape. When all inputs are scalars the result
is a plain Python ``int`` (sample sizes, days) or ``float`` (power, MDE).

Conventions shared by all functions:

* Each plan sizes the test the engine runs (:mod:`core.stats.proportion`'s unpooled Wald z for
  conversion rates, :mod:`core.stats.welch`'s Welch t for means), so the power planned is the
  power the analysis achieves, at any split between the arms.
* ``n`` is the control arm's units; the treatment gets ``ratio * n`` (ratio = n_t / n_c).
* ``variants`` counts control plus treatments; with more than two, each treatment-vs-control
  comparison is tested at the Bonferroni level alpha / (variants - 1).
* ``alternative="two-sided"`` counts both rejection tails (R's ``strict = TRUE``);
  ``"greater"`` / ``"less"`` plan a one-sided test in the direction of the effect.
* ``mde`` is positive: the treatment is ``baseline + mde`` for "two-sided"/"greater" and
  ``baseline - mde`` for "less" (times ``baseline`` first when ``relative=True``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.polynomial.hermite_e import hermegauss
from scipy import special, stats

from core.stats import _validation as v
from core.types import Alternative

FloatArray = npt.NDArray[np.float64]

NCP_QUADRATURE = 50.0
"""From this noncentrality on, the noncentral t's tail is integrated over the normal
(:func:`_nct_sf_quadrature`) rather than taken from Boost (``scipy.stats.nct``), whose series
slows as the noncentrality grows (~50 ms a value at 1e6 and df 2, seconds on a loaded machine)
and jitters there, so that a solver cannot settle. Both agree to 1e-13 from 20 on (tests)."""
_NODES, _WEIGHTS = hermegauss(64)
_WEIGHTS = _WEIGHTS / np.sqrt(2.0 * np.pi)
MAX_BRACKET_STEPS = 200
"""Doublings a solver may take to bracket its root (2**200: any finite answer)."""
MAX_SOLVER_STEPS = 100
"""Newton or bisection steps a solver may take inside its bracket."""
_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar("planner_deadline", default=None)


class BudgetExceeded(ValueError):
    """A solve ran past the :func:`time_budget` it was given; the message says what to change."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Within the block, a sample-size or MDE solve still iterating ``seconds`` after the block
    began raises :class:`BudgetExceeded` (checked once per solver step)."""
    token = _DEADLINE.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _check_budget() -> None:
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline[0]:
        raise BudgetExceeded(
            f"the planner found no answer within its {deadline[1]:g} s budget for these inputs: "
            "plan for a larger alpha, a lower power, fewer variants or more units"
        )


def _all_scalar(*args: Any) -> bool:
    return all(np.ndim(a) == 0 for a in args)


def _as_float(x: Any) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def _out_float(x: FloatArray, scalar: bool) -> Any:
    return float(x) if scalar else x


def _out_int(x: FloatArray, scalar: bool) -> Any:
    # round first so 20.000000000000004 does not become 21
    n = np.ceil(np.round(x, 9)).astype(np.int64)
    return int(n) if scalar else n


def _tails(alternative: str) -> int:
    v.check_alternative(alternative)
    return 2 if alternative == "two-sided" else 1


def _alpha_per_comparison(alpha: Any, variants: Any) -> FloatArray:
    v.check_alpha(alpha)
    v.check_variants(variants)
    return _as_float(alpha) / (_as_float(variants) - 1.0)


def _check_ratio(ratio: Any) -> FloatArray:
    v.check_positive(ratio, "ratio", " (ratio = n_treatment / n_control, e.g. 1 for equal arms)")
    return _as_float(ratio)


def _check_mde(mde: Any) -> None:
    v.check_positive(
        mde,
        "mde",
        ": give the size of the effect to detect as a positive number; choose the direction "
        "with alternative='greater' or 'less'",
    )


def _check_plan_n(n: Any, ratio: FloatArray) -> FloatArray:
    """The control units as floats; both arms (n and ratio * n) need at least 2 units."""
    a = _as_float(n)
    if not np.all(np.isfinite(a)) or np.any(a < 2):
        raise ValueError(
            f"n must be at least 2 units per variant (got {n!r}): a variant needs two units to "
            f"estimate its variance"
        )
    if np.any(a * ratio < 2 * (1 - 1e-12)):
        raise ValueError(
            f"ratio * n must be at least 2 (it is {float(np.min(a * ratio)):g}): the treatment "
            f"arm gets ratio * n units and needs two to estimate its variance; give more units "
            f"or a larger ratio"
        )
    return a


# ---------------------------------------------------------------------------------------------
# Scalar fast path: one plan, not a curve. Plain Python floats and scipy.special ufuncs on
# scalars, no arrays and no scipy.stats distribution objects (their argument checks alone cost
# tens of microseconds a call). Each returns None for any input it does not take (arrays,
# out-of-range values, a noncentrality the Boost series is slow at): the vectorised path then
# answers, or raises the error that says what to fix, so every message lives in one place.
# ---------------------------------------------------------------------------------------------

_PLAIN = (float, int, np.float64)
"""Exact types the fast path takes (bool, a subclass of int, is not one of them)."""
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _plain(*args: Any) -> bool:
    return all(type(x) in _PLAIN for x in args)


def _try_fast(fast: Callable[..., float | None], *args: Any) -> float | None:
    """``fast(*args)``, or None where plain floats under- or overflow (a 5e-324 baseline, an
    effect of 1e-300): numpy's inf and nan carry those corners through the vectorised path,
    which answers them, or refuses them in words."""
    try:
        return fast(*args)
    except ArithmeticError:
        return None


def _phi_cdf(x: float) -> float:
    """Standard normal cdf, Phi(x) = erfc(-x / sqrt 2) / 2 (as scipy.special.ndtr)."""
    return 0.5 * math.erfc(-x / _SQRT2)


def _phi_pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


_TAILS = {"two-sided": 2, "greater": 1, "less": 1}


def _fast_common(alpha: Any, power: Any, alternative: str, ratio: Any, variants: Any
                 ) -> tuple[int, float] | None:
    """(tails, alpha per comparison) when these are plain values in range, else None;
    ``power`` None for the power functions (nothing to check)."""
    if not isinstance(alternative, str) or alternative not in _TAILS or not _plain(
            alpha, ratio, variants):
        return None
    if not (0.0 < alpha < 1.0 and 0.0 < ratio < math.inf):
        return None
    if not (2 <= variants < math.inf and float(variants).is_integer()):
        return None
    a = alpha / (variants - 1.0)
    if power is not None and not (type(power) in _PLAIN and a < power < 1.0):
        return None
    return _TAILS[alternative], a


def _fast_sample_size_proportion(baseline: Any, mde: Any, relative: bool, alpha: Any,
                                 power: Any, alternative: str, ratio: Any, variants: Any
                                 ) -> float | None:
    """:func:`sample_size_proportion` for one plan (the same equation, the same root)."""
    common = _fast_common(alpha, power, alternative, ratio, variants)
    if common is None or not _plain(baseline, mde) or not (0.0 < baseline < 1.0
                                                           and 0.0 < mde < math.inf):
        return None
    tails, a = common
    delta = mde * baseline if relative else mde
    p2 = baseline - delta if alternative == "less" else baseline + delta
    if not 0.0 < p2 < 1.0:
        return None
    d = abs(p2 - baseline)
    s = math.sqrt(baseline * (1.0 - baseline) + p2 * (1.0 - p2) / ratio)
    z = float(special.ndtri(1.0 - a / tails))
    u_min = math.sqrt(max(2.0, 2.0 / ratio))
    u = (z + float(special.ndtri(power))) * s / d  # exact when one-sided
    if tails == 1 or u <= u_min:
        return max(u, u_min) ** 2
    # two-sided: power(u) = Phi(u k - z) + Phi(-u k - z), k = d / s, is increasing in u > 0;
    # the one-sided root u is an upper bracket (the far tail only adds), u_min a lower one
    # unless it already reaches the power
    k = d / s

    def excess(u: float) -> float:
        return _phi_cdf(u * k - z) + _phi_cdf(-u * k - z) - power

    if excess(u_min) >= 0:
        return u_min * u_min
    lo, hi = u_min, u
    for _ in range(MAX_SOLVER_STEPS):
        _check_budget()
        fx = excess(u)
        if fx < 0:
            lo = u
        else:
            hi = u
        slope = k * (_phi_pdf(u * k - z) - _phi_pdf(-u * k - z))
        step = fx / slope if slope > 0 else math.inf
        new = u - step
        if not lo < new < hi:
            new = 0.5 * (lo + hi)
        if abs(fx) <= 1e-14 or abs(new - u) <= 1e-13 * u:
            return new * new if abs(fx) > 1e-14 else u * u
        u = new
    return None


def _fast_power_proportion(baseline: Any, mde: Any, n: Any, relative: bool, alpha: Any,
                           alternative: str, ratio: Any, variants: Any) -> float | None:
    """:func:`power_proportion` at one point."""
    common = _fast_common(alpha, None, alternative, ratio, variants)
    if common is None or not _plain(baseline, mde, n) or not (
            0.0 < baseline < 1.0 and 0.0 < mde < math.inf and 2.0 <= n < math.inf
            and n * ratio >= 2.0):
        return None
    tails, a = common
    delta = mde * baseline if relative else mde
    p2 = baseline - delta if alternative == "less" else baseline + delta
    if not 0.0 < p2 < 1.0:
        return None
    ncp = math.sqrt(n) * abs(p2 - baseline) / math.sqrt(
        baseline * (1.0 - baseline) + p2 * (1.0 - p2) / ratio)
    z = float(special.ndtri(1.0 - a / tails))
    return _phi_cdf(ncp - z) + (_phi_cdf(-ncp - z) if tails == 2 else 0.0)


def _fast_t_power(n: float, effect: float, ratio: float, a_tail: float, z: float, tails: int
                  ) -> float | None:
    """:func:`_t_power` at one point; None where it would use the quadrature, or where n is
    so large that the df's terms underflow (no finite plan lies there)."""
    if not n < 1e75:
        return None
    nt = ratio * n
    df = (1.0 / n + 1.0 / nt) ** 2 / (1.0 / (n * n * (n - 1.0)) + 1.0 / (nt * nt * (nt - 1.0)))
    ncp = effect * math.sqrt(n / (1.0 + 1.0 / ratio))
    if not ncp < NCP_QUADRATURE:
        return None
    return _nct_power(df, float(special.stdtrit(df, 1.0 - a_tail)), ncp, z, tails)


def _secant_root(f: Callable[[float], float | None], lo: float, hi: float, x0: float,
                 f0: float, x1: float, *, floor_unknown: bool = False) -> float | None:
    """Root of an increasing f on [lo, hi] (hi may be inf) with f(lo) < 0 <= f(hi), from x0
    (f0 = f(x0), inside) and a first step x1: secant steps kept inside the bracket the signs
    give (bisection, or doubling while it is open above). With ``floor_unknown`` f(lo) is not
    known to be < 0: the first step below ``lo`` evaluates it, and ``lo`` is the answer where
    f(lo) >= 0 (the at-least-2-units floor). None where f gives None or it does not settle."""
    if not lo <= x0 <= hi:
        return None
    floor = lo
    if f0 < 0:
        lo = x0
    else:
        hi = x0
    for _ in range(MAX_SOLVER_STEPS):
        _check_budget()
        if floor_unknown and x1 <= floor:
            at_floor = f(floor)
            if at_floor is None or at_floor >= 0:
                return None if at_floor is None else floor
            floor_unknown = False
        if not lo < x1 < hi:
            x1 = 0.5 * (lo + hi) if hi < math.inf else 2.0 * max(lo, x0)
        f1 = f(x1)
        if f1 is None:
            return None
        if abs(f1) <= 1e-14:
            return x1
        if f1 < 0:
            lo = x1
        else:
            hi = x1
        new = x1 - f1 * (x1 - x0) / (f1 - f0) if f1 != f0 else 0.5 * (lo + hi)
        if abs(new - x1) <= 1e-13 * abs(x1):
            return new if lo < new < hi else x1
        if hi - lo <= 1e-13 * abs(lo):
            return x1
        x0, f0, x1 = x1, f1, new
    return None


def _fast_sample_size_mean(effect: float, alpha: Any, power: Any, alternative: str,
                           ratio: Any, variants: Any) -> float | None:
    """:func:`sample_size_mean` for one plan, ``effect`` = delta / (sd sqrt(1 - R^2)).

    Solved for u = sqrt(n) from a start near the root: the normal approximation with the
    t-correction z^2 / (2 (1 + r)) units (Guenther 1981: z^2 / 4 per arm at equal arms), one
    Newton step with the normal slope, then :func:`_secant_root` on the exact power: three
    evaluations typically."""
    common = _fast_common(alpha, power, alternative, ratio, variants)
    if common is None or not 0.0 < effect < math.inf:
        return None
    tails, a = common
    a_tail = a / tails
    z = float(special.ndtri(1.0 - a_tail))
    c = math.sqrt(1.0 + 1.0 / ratio)
    u_min = math.sqrt(max(2.0, 2.0 / ratio))
    u_z = (z + float(special.ndtri(power))) * c / effect
    x0 = max(math.sqrt(u_z * u_z + z * z / (2.0 * (1.0 + ratio))), u_min)
    if not x0 < math.inf:
        return None

    def excess(u: float) -> float | None:
        p = _fast_t_power(u * u, effect, ratio, a_tail, z, tails)
        return None if p is None else p - power

    f0 = excess(x0)
    if f0 is None or (f0 >= 0 and x0 == u_min):
        return None if f0 is None else x0 * x0
    slope = effect / c * _phi_pdf(effect * x0 / c - z)
    x1 = x0 - f0 / slope if slope > 0 else 2.0 * x0
    u = _secant_root(excess, u_min, math.inf, x0, f0, x1, floor_unknown=x0 > u_min)
    return None if u is None else u * u


def _fast_mde_mean(sd: Any, n: Any, alpha: Any, power: Any, alternative: str, ratio: Any,
                   variants: Any, r_squared: Any) -> float | None:
    """:func:`mde_mean` for one plan: n fixes df and the critical value q, so the root is in
    the noncentrality alone; from the t-adjusted normal start ncp = q + z_power
    sqrt(1 + q^2 / (2 df)), one Newton step with that approximation's slope, then
    :func:`_secant_root` on the exact power."""
    common = _fast_common(alpha, power, alternative, ratio, variants)
    if common is None or not _plain(sd, n, r_squared) or not (
            0.0 < sd < math.inf and 0.0 <= r_squared < 1.0 and 2.0 <= n < 1e75
            and n * ratio >= 2.0):
        return None
    tails, a = common
    a_tail = a / tails
    nt = ratio * n
    df = (1.0 / n + 1.0 / nt) ** 2 / (1.0 / (n * n * (n - 1.0)) + 1.0 / (nt * nt * (nt - 1.0)))
    q = float(special.stdtrit(df, 1.0 - a_tail))
    z = float(special.ndtri(1.0 - a_tail))

    def excess(ncp: float) -> float | None:
        p = _nct_power(df, q, ncp, z, tails)
        return None if p is None else p - power

    spread = math.sqrt(1.0 + q * q / (2.0 * df))
    x0 = q + float(special.ndtri(power)) * spread
    if not x0 > 0:  # a low power at a small df: the approximation has no positive root
        x0 = q
    f0 = excess(x0)
    if f0 is None:
        return None
    slope = _phi_pdf((x0 - q) / spread) / spread
    x1 = x0 - f0 / slope if slope > 0 else 2.0 * x0
    ncp = _secant_root(excess, 0.0, math.inf, x0, f0, x1)
    if ncp is None:
        return None
    return ncp / math.sqrt(n / (1.0 + 1.0 / ratio)) * sd * math.sqrt(1.0 - r_squared)


def _fast_mde_proportion(baseline: Any, n: Any, alpha: Any, power: Any, alternative: str,
                         ratio: Any, variants: Any) -> float | None:
    """:func:`mde_proportion` for one plan: the same root in d on (0, hi), by
    :func:`_secant_root` from the normal start with the control's variance on both arms;
    NaN where even the largest change misses the power."""
    common = _fast_common(alpha, power, alternative, ratio, variants)
    if common is None or not _plain(baseline, n) or not (
            0.0 < baseline < 1.0 and 2.0 <= n < math.inf and n * ratio >= 2.0):
        return None
    tails, a = common
    sign = -1.0 if alternative == "less" else 1.0
    hi = (baseline if alternative == "less" else 1.0 - baseline) * (1.0 - 1e-12)
    z = float(special.ndtri(1.0 - a / tails))
    u = math.sqrt(n)
    q1 = baseline * (1.0 - baseline)

    def excess(d: float) -> float:
        p2 = baseline + sign * d
        ncp = u * d / math.sqrt(q1 + p2 * (1.0 - p2) / ratio)
        return _phi_cdf(ncp - z) + (_phi_cdf(-ncp - z) if tails == 2 else 0.0) - power

    f_hi = excess(hi)
    if f_hi < 0:
        return math.nan
    x0 = min((z + float(special.ndtri(power))) * math.sqrt(q1 * (1.0 + 1.0 / ratio)) / u,
             0.5 * hi)
    f0 = excess(x0)
    x1 = 0.5 * x0 if f0 >= 0 else 0.5 * (x0 + hi)  # a step into the bracket the sign gives
    return _secant_root(excess, 0.0, hi, x0, f0, x1)


def _nct_power(df: float, q: float, ncp: float, z: float, tails: int) -> float | None:
    """P(T' > q) (+ P(T' < -q) when two-sided), T' noncentral t (df, ncp), by Boost
    (``special.nctdtr``; one call for both tails), as :func:`_t_power`: the normal
    approximation where Boost gives nan, None where the quadrature would be used."""
    if not ncp < NCP_QUADRATURE:
        return None
    if tails == 1:
        power = 1.0 - float(special.nctdtr(df, ncp, q))
        return power if math.isfinite(power) else _phi_cdf(ncp - z)
    below_q, far = special.nctdtr(df, ncp, np.array([q, -q])).tolist()  # one call, both tails
    power = 1.0 - below_q if math.isfinite(below_q) else _phi_cdf(ncp - z)
    return power + (far if math.isfinite(far) else _phi_cdf(-ncp - z))


def _fast_power_mean(sd: Any, mde: Any, n: Any, baseline_mean: Any, relative: bool, alpha: Any,
                     alternative: str, ratio: Any, variants: Any, r_squared: Any
                     ) -> float | None:
    """:func:`power_mean` at one point."""
    effect = _fast_mean_effect(sd, mde, baseline_mean, relative, r_squared)
    common = _fast_common(alpha, None, alternative, ratio, variants)
    if effect is None or common is None or type(n) not in _PLAIN or not (
            2.0 <= n < math.inf and n * ratio >= 2.0):
        return None
    tails, a = common
    return _fast_t_power(float(n), effect, float(ratio), a / tails,
                         float(special.ndtri(1.0 - a / tails)), tails)


# ---------------------------------------------------------------------------------------------
# Proportions: the unpooled Wald z-test the engine runs (Chow, Shao & Wang 2008, section 4.2).
# ---------------------------------------------------------------------------------------------


def _treatment_rate(baseline: Any, mde: Any, relative: bool, alternative: str) -> FloatArray:
    v.check_probability_open(baseline, "baseline", " (a conversion rate such as 0.05)")
    _check_mde(mde)
    b = _as_float(baseline)
    delta = _as_float(mde) * b if relative else _as_float(mde)
    p2 = b - delta if alternative == "less" else b + delta
    if not np.all((p2 > 0) & (p2 < 1)):
        kind = "relative " if relative else ""
        raise ValueError(
            f"baseline {'-' if alternative == 'less' else '+'} {kind}mde must stay strictly "
            f"between 0 and 1 (baseline={baseline!r}, mde={mde!r}); use a smaller mde"
        )
    return p2


def _prop_sd(p1: FloatArray, p2: FloatArray, r: FloatArray) -> FloatArray:
    """sqrt(n_c) x the standard error of p_t - p_c that the unpooled Wald z divides by, at the
    planned rates: sqrt(p1 q1 + p2 q2 / r). The test estimates this same variance under H0 and
    H1 (no pooling), so V0 = V1 in the sample-size formula."""
    return np.asarray(np.sqrt(p1 * (1.0 - p1) + p2 * (1.0 - p2) / r))


def _prop_power(u: FloatArray, d: FloatArray, s: FloatArray, z: FloatArray, tails: int
                ) -> FloatArray:
    """Phi(u d / s - z) (+ Phi(-u d / s - z) when two-sided), u = sqrt(n_c)."""
    ncp = u * d / s
    power = special.ndtr(ncp - z)
    if tails == 2:
        power = power + special.ndtr(-ncp - z)
    return np.asarray(power)


def sample_size_proportion(
    baseline: Any,
    mde: Any,
    *,
    relative: bool = True,
    alpha: Any = 0.05,
    power: Any = 0.8,
    alternative: Alternative = "two-sided",
    ratio: Any = 1.0,
    variants: Any = 2,
    round_up: bool = True,
) -> Any:
    """Units per variant (the control's) to detect a change in a conversion rate.

    Args:
        baseline: control conversion rate, in (0, 1).
        mde: minimum detectable effect, > 0; relative to ``baseline`` when ``relative`` (0.1 =
            +10%), else absolute (0.01 = one percentage point). The treatment rate must stay in
            (0, 1).
        relative: whether ``mde`` is relative (default True) or absolute.
        alpha: significance level in (0, 1), split over the variants - 1 comparisons.
        power: target power in (0, 1); must exceed alpha.
        alternative: "two-sided", "greater" or "less" (see module docstring).
        ratio: n_treatment / n_control, > 0.
        variants: arms including control, whole number >= 2.
        round_up: ceil to whole units (default); False returns the exact real solution.

    Returns:
        Control-arm sample size (int, or int64 array; float when ``round_up=False``).

    Formula: the power of the test the engine runs, the unpooled Wald z-test
    z = (p_t - p_c) / sqrt(p_c q_c / n_c + p_t q_t / n_t) (:func:`core.stats.proportion_ztest`,
    "wald_z"). It divides by the unpooled standard error under H0 and H1 alike, so with
    d = |p2 - p1| and s = sqrt(p1 q1 + p2 q2 / r) (p1 = baseline, p2 the treatment rate),

        power = Phi(sqrt(n) d / s - z) + Phi(-sqrt(n) d / s - z)   [two-sided]

    with z = Phi^-1(1 - alpha/2) (the second term is dropped and z = Phi^-1(1 - alpha) when
    one-sided): Chow, Shao & Wang, "Sample Size Calculations in Clinical Research" (2nd ed.
    2008), section 4.2, n_c = (z + z_power)^2 (p1 q1 + p2 q2 / r) / d^2 (= the general
    (z sqrt(V0) + z_power sqrt(V1))^2 / d^2 with V0 = V1); statsmodels
    ``normal_power(d, n, alpha, sigma=s)``. One-sided: that closed form; two-sided: safeguarded
    Newton from it (the far tail counts too). Never below 2 units per arm. (R
    ``power.prop.test`` sizes the pooled-variance test instead, which the engine does not run:
    at unequal splits its n misses the planned power.)
    """
    one = _try_fast(_fast_sample_size_proportion, baseline, mde, relative, alpha, power,
                    alternative, ratio, variants)
    if one is not None:
        return math.ceil(round(one, 9)) if round_up else one
    tails = _tails(alternative)
    v.check_power(power)
    r = _check_ratio(ratio)
    a = _alpha_per_comparison(alpha, variants)
    pw = _as_float(power)
    if np.any(pw <= a):
        raise ValueError(
            f"power ({power!r}) must exceed alpha ({alpha!r}): no sample size reaches it"
        )
    scalar = _all_scalar(baseline, mde, alpha, power, ratio, variants)
    p1 = _as_float(baseline)
    p2 = _treatment_rate(baseline, mde, relative, alternative)
    p1, p2, r, a, pw = np.broadcast_arrays(p1, p2, r, a, pw)
    d = np.abs(p2 - p1)
    s = _prop_sd(p1, p2, r)
    z = special.ndtri(1.0 - a / tails)
    u_min = np.sqrt(np.maximum(2.0, 2.0 / r))  # at least 2 units per arm
    u = np.maximum((z + special.ndtri(pw)) * s / d, u_min)  # exact when one-sided
    if tails == 2:

        def excess_power(u: FloatArray) -> FloatArray:
            return _prop_power(u, d, s, z, tails) - pw

        u = _solve_increasing(excess_power, u_min, u)
    n = u * u
    return _out_int(n, scalar) if round_up else _out_float(n, scalar)


def power_proportion(
    baseline: Any,
    mde: Any,
    n: Any,
    *,
    relative: bool = True,
    alpha: Any = 0.05,
    alternative: Alternative = "two-sided",
    ratio: Any = 1.0,
    variants: Any = 2,
) -> Any:
    """Power of the unpooled two-proportion Wald z-test with ``n`` control units (``ratio * n``
    treated).

    Args:
        baseline, mde, relative, alpha, alternative, ratio, variants: as in
            :func:`sample_size_proportion`.
        n: control units, >= 2 (need not be whole).

    Returns:
        Power in (0, 1) (float or array).

    Formula: Chow, Shao & Wang (2008) section 4.2, the unpooled Wald z-test, as in
    :func:`sample_size_proportion`.
    """
    one = _try_fast(_fast_power_proportion, baseline, mde, n, relative, alpha, alternative,
                    ratio, variants)
    if one is not None:
        return one
    tails = _tails(alternative)
    r = _check_ratio(ratio)
    a = _alpha_per_comparison(alpha, variants)
    nn = _check_plan_n(n, r)
    scalar = _all_scalar(baseline, mde, n, alpha, ratio, variants)
    p1 = _as_float(baseline)
    p2 = _treatment_rate(baseline, mde, relative, alternative)
    z = special.ndtri(1.0 - a / tails)
    out = _prop_power(np.sqrt(nn), np.abs(p2 - p1), _prop_sd(p1, p2, r), z, tails)
    return _out_float(out, scalar)


def mde_proportion(
    baseline: Any,
    n: Any,
    *,
    alpha: Any = 0.05,
    power: Any = 0.8,
    alternative: Alternative = "two-sided",
    ratio: Any = 1.0,
    variants: Any = 2,
) -> Any:
    """Smallest ABSOLUTE change in conversion rate detectable with ``n`` control units.

    Args:
        baseline: control conversion rate, in (0, 1).
        n: control units, >= 2.
        alpha, power, alternative, ratio, variants: as in :func:`sample_size_proportion`.

    Returns:
        The ABSOLUTE minimum detectable effect |p2 - p1| (e.g. 0.012 = 1.2 percentage points;
        divide by ``baseline`` for the relative MDE). NaN where no rate in (0, 1) reaches the
        power (n too small).

    Formula: root in p2 of the unpooled Wald z-test's power equation (Chow, Shao & Wang 2008,
    section 4.2; see :func:`sample_size_proportion`), found by vectorised bisection on (p1, 1)
    - or (0, p1) for "less" - to 1e-12 (one plan: :func:`_fast_mde_proportion`, the same
    root by secant steps).
    """
    one = _try_fast(_fast_mde_proportion, baseline, n, alpha, power, alternative, ratio,
                    variants)
    if one is not None:
        return one
    tails = _tails(alternative)
    v.check_probability_open(baseline, "baseline", " (a conversion rate such as 0.05)")
    v.check_power(power)
    r = _check_ratio(ratio)
    a = _alpha_per_comparison(alpha, variants)
    nn = _check_plan_n(n, r)
    scalar = _all_scalar(baseline, n, alpha, power, ratio, variants)
    p1, nn, r, a, pw = np.broadcast_arrays(_as_float(baseline), nn, r, a, _as_float(power))
    sign = -1.0 if alternative == "less" else 1.0
    hi = p1 if alternative == "less" else 1.0 - p1
    z = special.ndtri(1.0 - a / tails)
    u = np.sqrt(nn)

    def power_at(d: FloatArray) -> FloatArray:
        return _prop_power(u, d, _prop_sd(p1, p1 + sign * d, r), z, tails)

    lo_d = np.zeros_like(p1)
    hi_d = hi * (1.0 - 1e-12)
    reachable = power_at(hi_d) >= pw
    for _ in range(60):
        _check_budget()
        mid = 0.5 * (lo_d + hi_d)
        above = power_at(mid) >= pw
        hi_d = np.where(above, mid, hi_d)
        lo_d = np.where(above, lo_d, mid)
    out = np.where(reachable, 0.5 * (lo_d + hi_d), np.nan)
    return _out_float(out, scalar)


# ---------------------------------------------------------------------------------------------
# Means: the Welch t-test the engine runs; noncentral t with Welch-Satterthwaite df (at equal
# arms R power.t.test(type = "two.sample", strict = TRUE)).
# ---------------------------------------------------------------------------------------------


def _mean_delta(sd: Any, mde: Any, baseline_mean: Any, relative: bool) -> FloatArray:
    v.check_positive(sd, "sd", " (the metric's standard deviation per unit)")
    _check_mde(mde)
    if relative:
        if baseline_mean is None:
            raise ValueError("relative=True needs baseline_mean: the mde is a fraction of it")
        v.check_finite(baseline_mean, "baseline_mean")
        bm = np.abs(_as_float(baseline_mean))
        if np.any(bm == 0):
            raise ValueError("baseline_mean must be non-zero for a relative mde")
        return _as_float(mde) * bm
    return _as_float(mde)


def _check_r_squared(r_squared: Any) -> FloatArray:
    """sqrt(1 - R^2): the factor on the sd of a metric whose variance a pre-experiment covariate
    explains in share R^2 (CUPED leaves sd^2 (1 - R^2); Deng et al. 2013)."""
    r2 = _as_float(r_squared)
    if not np.all((r2 >= 0) & (r2 < 1)):
        raise ValueError(
            f"r_squared must lie in [0, 1) (got {r_squared!r}): the share of the metric's "
            "variance the pre-experiment covariate explains (CUPED's variance reduction, e.g. "
            "0.3); 0 plans without variance reduction"
        )
    return np.asarray(np.sqrt(1.0 - r2))


def _fast_mean_effect(sd: Any, mde: Any, baseline_mean: Any, relative: bool, r_squared: Any
                      ) -> float | None:
    """delta / (sd sqrt(1 - R^2)) for plain, valid scalars; None otherwise."""
    if not _plain(sd, mde, r_squared) or not (0.0 < sd < math.inf and 0.0 < mde < math.inf
                                              and 0.0 <= r_squared < 1.0):
        return None
    if relative:
        if not _plain(baseline_mean) or not (0.0 < abs(baseline_mean) < math.inf):
            return None
        mde = mde * abs(baseline_mean)
    return mde / (sd * math.sqrt(1.0 - r_squared))


def _t_power(
    n: FloatArray, effect: FloatArray, r: FloatArray, a: FloatArray, tails: int
) -> FloatArray:
    """Noncentral-t power of Welch's test; effect = delta / sd, n = control units.

    df is the Welch-Satterthwaite df at the planned (equal) sd, (1/n_c + 1/n_t)^2 /
    (1/(n_c^2 (n_c - 1)) + 1/(n_t^2 (n_t - 1))): 2n - 2 at equal arms (R ``power.t.test``),
    fewer than the pooled n_c + n_t - 2 at unequal ones, as in the test the engine runs.
    """
    nt = r * n
    df = (1.0 / n + 1.0 / nt) ** 2 / (1.0 / (n * n * (n - 1.0)) + 1.0 / (nt * nt * (nt - 1.0)))
    ncp = effect * np.sqrt(n / (1.0 + 1.0 / r))
    qu = special.stdtrit(df, 1.0 - a / tails)
    qu, df, ncp = np.broadcast_arrays(qu, df, ncp)
    # scipy.stats.nct (Boost; special.nctdtr, the fast path's, is the same Boost function in
    # the pinned scipy, where older ones used cdflib, inaccurate at small df) up to
    # NCP_QUADRATURE; beyond it Boost is slow and the integral is exact. Boost still
    # returns nan in corners; there the normal approximation of that tail is used - such
    # tails are ~0 (far) or ~1 (near) anyway.
    z = special.ndtri(1.0 - a / tails)
    large = ncp >= NCP_QUADRATURE
    small_ncp = np.where(large, 0.0, ncp)  # Boost sees only the noncentralities it is quick at
    near = np.asarray(stats.nct.sf(qu, df, small_ncp))
    near = np.where(np.isfinite(near), near, special.ndtr(ncp - z))
    if np.any(large):
        near = np.where(large, _nct_sf_quadrature(qu, df, np.where(large, ncp, 0.0)), near)
    power = near
    if tails == 2:
        # the far tail: P(T' < -q) <= Phi(-ncp), 0 in double precision from 40 on
        far = np.asarray(stats.nct.cdf(-qu, df, small_ncp))
        far = np.where(np.isfinite(far), far, special.ndtr(-ncp - z))
        power = power + np.where(large, 0.0, far)
    return np.asarray(power)


def _nct_sf_quadrature(q: FloatArray, df: FloatArray, ncp: FloatArray) -> FloatArray:
    """P(T' > q) for T' noncentral t (df, ncp), q > 0, ncp >> 1: T' = (Z + ncp) / sqrt(V / df)
    with Z standard normal and V chi-square(df), so T' > q iff V < df ((Z + ncp) / q)^2, and
    P(T' > q) = E_Z[F_df(df ((Z + ncp) / q)^2)] (F the chi-square cdf), by 64-point
    Gauss-Hermite quadrature over Z (the event Z + ncp <= 0, of probability Phi(-ncp), counts
    as never: ~0 for the ncp this is used at)."""
    x = np.maximum(ncp[..., None] + _NODES, 0.0)
    ratio = x / q[..., None]
    cdf = special.chdtr(df[..., None], df[..., None] * ratio * ratio)
    return np.asarray(np.sum(_WEIGHTS * cdf, axis=-1))


def _z_start(a: FloatArray, pw: FloatArray, tails: int) -> FloatArray:
    return np.asarray(special.ndtri(1.0 - a / tails) + special.ndtri(pw))


def _solve_increasing(
    f: Callable[[FloatArray], FloatArray], lo: FloatArray, x0: FloatArray
) -> FloatArray:
    """Elementwise root of an increasing f on [lo, inf), safeguarded Newton (vectorised).

    Brackets the root by doubling from ``x0``, then takes Newton steps (numerical derivative),
    falling back to bisection whenever a step leaves the bracket. Where f(lo) >= 0 already,
    returns ``lo``.
    """
    floor = np.array(lo, dtype=np.float64)
    lo = floor.copy()
    x = np.array(x0, dtype=np.float64)
    at_floor = f(floor) >= 0
    hi = np.where(x > lo, x, lo + np.maximum(lo, 1.0))
    for _ in range(MAX_BRACKET_STEPS):
        _check_budget()
        short = f(hi) < 0
        if not np.any(short & ~at_floor & np.isfinite(hi)):  # an infinite one has no root
            break
        lo = np.where(short, hi, lo)
        hi = np.where(short, hi * 2.0, hi)
    x = np.clip(x, lo, hi)
    for _ in range(MAX_SOLVER_STEPS):
        _check_budget()
        fx = f(x)
        lo = np.where(fx < 0, x, lo)
        hi = np.where(fx >= 0, x, hi)
        h = 1e-7 * np.maximum(np.abs(x), 1e-12)
        slope = (f(x + h) - fx) / h
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = x - fx / slope
        ok = np.isfinite(newton) & (newton > lo) & (newton < hi) & (slope > 0)
        settled = (np.abs(fx) <= 1e-14) | at_floor
        x_new = np.where(settled, x, np.where(ok, newton, 0.5 * (lo + hi)))
        done = settled | (np.abs(x_new - x) <= 1e-13 * np.abs(x)) | ~np.isfinite(x_new)
        x = x_new
        if np.all(done):
            break
    return np.asarray(np.where(at_floor, floor, x))


def sample_size_mean(
    sd: Any,
    mde: Any,
    *,
    baseline_mean: Any = None,
    relative: bool = False,
    alpha: Any = 0.05,
    power: Any = 0.8,
    alternative: Alternative = "two-sided",
    ratio: Any = 1.0,
    variants: Any = 2,
    round_up: bool = True,
    r_squared: Any = 0.0,
) -> Any:
    """Units per variant (the control's) to detect a change in a mean metric (Welch's t-test).

    Args:
        sd: standard deviation of the metric per unit, > 0 (assumed equal in both arms).
        mde: minimum detectable effect, > 0; absolute (metric units) by default, or a
            fraction of ``baseline_mean`` when ``relative=True``.
        baseline_mean: control mean, needed only when ``relative=True``.
        relative: whether ``mde`` is relative to ``baseline_mean``.
        alpha, power, alternative, ratio, variants, round_up: as in
            :func:`sample_size_proportion`.
        r_squared: expected variance reduction, in [0, 1): the share of the metric's variance
            a pre-experiment covariate explains (CUPED: 1 - Var(adjusted)/Var(raw), as a past
            experiment's results report it). The test then runs on sd^2 (1 - R^2). Default 0.

    Returns:
        Control-arm sample size (int or int64 array; float when ``round_up=False``).

    Formula: the power of the test the engine runs, Welch's t (:func:`core.stats.welch_ttest`),
    in the usual noncentral-t approximation with the Welch-Satterthwaite df at the planned sd:
    n_t = r n, df = (1/n + 1/n_t)^2 / (1/(n^2 (n - 1)) + 1/(n_t^2 (n_t - 1))),
    ncp = (delta / sd) / sqrt(1/n + 1/n_t), q = t_{1-alpha/2, df};
    power = P(T'_{df,ncp} > q) + P(T'_{df,ncp} < -q), T' noncentral t (scipy ``stats.nct``).
    At equal arms df = 2n - 2 and this is R ``power.t.test(type = "two.sample",
    strict = TRUE)``; at unequal arms the pooled df n (1 + r) - 2 would overstate the power of
    Welch's test (seeded simulation in ``tests/core/stats/test_planner_simulations.py``).
    Solved for sqrt(n) by safeguarded Newton (numerical derivative, bisection fallback) from the
    normal-approximation start n = (z_{1-alpha/2} + z_power)^2 (1 + 1/r) (sd / delta)^2; never
    below 2 units per arm. One plan (plain scalars) is solved without arrays
    (:func:`_fast_sample_size_mean`), to the same root.

    Variance reduction: with ``r_squared`` = R^2, sd is replaced by sd sqrt(1 - R^2), the
    standard deviation of the CUPED-adjusted metric Y - theta (X - mean X) at the optimal theta
    (Deng, Xu, Kohavi & Walker 2013, "Improving the Sensitivity of Online Controlled
    Experiments by Utilizing Pre-Experiment Data", WSDM, section 3.2: Var = sd^2 (1 - rho^2)).
    In the normal approximation n = (z_{1-alpha/2} + z_power)^2 (1 + 1/r) sd^2 (1 - R^2) /
    delta^2.
    """
    one_effect = _try_fast(_fast_mean_effect, sd, mde, baseline_mean, relative, r_squared)
    if one_effect is not None:
        one = _try_fast(_fast_sample_size_mean, one_effect, alpha, power, alternative, ratio,
                        variants)
        if one is not None:
            return math.ceil(round(one, 9)) if round_up else one
    tails = _tails(alternative)
    v.check_power(power)
    r = _check_ratio(ratio)
    a = _alpha_per_comparison(alpha, variants)
    pw = _as_float(power)
    if np.any(pw <= a):
        raise ValueError(
            f"power ({power!r}) must exceed alpha ({alpha!r}): no sample size reaches it"
        )
    scalar = _all_scalar(sd, mde, baseline_mean, alpha, power, ratio, variants, r_squared)
    effect = _mean_delta(sd, mde, baseline_mean, relative) / (
        _as_float(sd) * _check_r_squared(r_squared))
    effect, r, a, pw = np.broadcast_arrays(effect, r, a, pw)
    # both arms need at least 2 units (R's power.t.test searches n in [2, 1e7])
    u_min = np.sqrt(np.maximum(2.0, 2.0 / r))
    u0 = _z_start(a, pw, tails) / effect * np.sqrt(1.0 + 1.0 / r)

    def excess_power(u: FloatArray) -> FloatArray:
        return _t_power(u * u, effect, r, a, tails) - pw

    u = _solve_increasing(excess_power, u_min, np.maximum(u0, u_min))
    n = u * u
    return _out_int(n, scalar) if round_up else _out_float(n, scalar)


def power_mean(
    sd: Any,
    mde: Any,
    n: Any,
    *,
    baseline_mean: Any = None,
    relative: bool = False,
    alpha: Any = 0.05,
    alternative: Alternative = "two-sided",
    ratio: Any = 1.0,
    variants: Any = 2,
    r_squared: Any = 0.0,
) -> Any:
    """Power of Welch's two-sample t-test with ``n`` control units (``ratio * n`` treated).

    Args:
        sd, mde, baseline_mean, relative, alpha, alternative, ratio, variants, r_squared: as in
            :func:`sample_size_mean`.
        n: control units, >= 2.

    Returns:
        Power in (0, 1) (float or array).

    Formula: noncentral t with the Welch-Satterthwaite df (R ``power.t.test(type =
    "two.sample", strict = TRUE)`` at equal arms), see :func:`sample_size_mean`.
    """
    one = _try_fast(_fast_power_mean, sd, mde, n, baseline_mean, relative, alpha, alternative,
                    ratio, variants, r_squared)
    if one is not None:
        return one
    tails = _tails(alternative)
    r = _check_ratio(ratio)
    a = _alpha_per_comparison(alpha, variants)
    nn = _check_plan_n(n, r)
    scalar = _all_scalar(sd, mde, n, baseline_mean, alpha, ratio, variants, r_squared)
    effect = _mean_delta(sd, mde, baseline_mean, relative) / (
        _as_float(sd) * _check_r_squared(r_squared))
    return _out_float(_t_power(nn, effect, r, a, tails), scalar)


def mde_mean(
    sd: Any,
    n: Any,
    *,
    alpha: Any = 0.05,
    power: Any = 0.8,
    alternative: Alternative = "two-sided",
    ratio: Any = 1.0,
    variants: Any = 2,
    r_squared: Any = 0.0,
) -> Any:
    """Smallest ABSOLUTE difference in means detectable with ``n`` control units.

    Args:
        sd: standard deviation of the metric per unit, > 0.
        n: control units, >= 2.
        alpha, power, alternative, ratio, variants, r_squared: as in :func:`sample_size_mean`.

    Returns:
        The ABSOLUTE minimum detectable effect, in the metric's units (divide by the baseline
        mean for a relative MDE).

    Formula: root in delta of :func:`power_mean`'s equation (Welch df; R ``power.t.test(type =
    "two.sample", strict = TRUE)`` at equal arms), by safeguarded Newton from the normal
    approximation
    delta = (z_{1-alpha/2} + z_power) sd sqrt(1/n + 1/(r n)); with ``r_squared`` the sd is
    sd sqrt(1 - R^2) (see :func:`sample_size_mean`). One plan: :func:`_fast_mde_mean`.
    """
    one = _try_fast(_fast_mde_mean, sd, n, alpha, power, alternative, ratio, variants,
                    r_squared)
    if one is not None:
        return one
    tails = _tails(alternative)
    v.check_positive(sd, "sd", " (the metric's standard deviation per unit)")
    sd_factor = _check_r_squared(r_squared)
    v.check_power(power)
    r = _check_ratio(ratio)
    a = _alpha_per_comparison(alpha, variants)
    nn = _check_plan_n(n, r)
    pw = _as_float(power)
    if np.any(pw <= a):
        raise ValueError(
            f"power ({power!r}) must exceed alpha ({alpha!r}): no effect size reaches it"
        )
    scalar = _all_scalar(sd, n, alpha, power, ratio, variants, r_squared)
    sd_a, nn, r, a, pw = np.broadcast_arrays(_as_float(sd) * sd_factor, nn, r, a, pw)
    e0 = _z_start(a, pw, tails) * np.sqrt((1.0 + 1.0 / r) / nn)

    def excess_power(e: FloatArray) -> FloatArray:
        return _t_power(nn, e, r, a, tails) - pw

    e = _solve_increasing(excess_power, np.zeros_like(e0), e0)
    return _out_float(e * sd_a, scalar)


# ---------------------------------------------------------------------------------------------
# Duration
# ---------------------------------------------------------------------------------------------


def duration_days(
    n_per_variant: Any,
    daily_units: Any,
    *,
    exposure: Any = 1.0,
    variants: int = 2,
    weights: Any = None,
) -> Any:
    """Days until every arm reaches ``n_per_variant`` units.

    Args:
        n_per_variant: units each arm needs (e.g. from :func:`sample_size_proportion`), > 0.
        daily_units: eligible units arriving per day, > 0.
        exposure: fraction of eligible units enrolled in the experiment, in (0, 1].
        variants: number of arms including control, whole number >= 2.
        weights: traffic share per arm (length ``variants``, each > 0, summing to 1); default
            equal split.

    Returns:
        Whole days (ceil), int or int64 array: n_per_variant / (daily_units * exposure * w_min),
        where w_min is the smallest weight - the arm that fills last binds.
    """
    v.check_positive(n_per_variant, "n_per_variant")
    v.check_positive(daily_units, "daily_units", " (eligible units per day)")
    ex = _as_float(exposure)
    if not np.all((ex > 0) & (ex <= 1)):
        raise ValueError(f"exposure must lie in (0, 1] (got {exposure!r}): the enrolled fraction")
    if np.ndim(variants) != 0:
        raise ValueError("variants must be a single whole number >= 2")
    v.check_variants(variants)
    k = int(variants)
    w = np.full(k, 1.0 / k) if weights is None else v.check_weights(weights, k)
    scalar = _all_scalar(n_per_variant, daily_units, exposure)
    days = _as_float(n_per_variant) / (_as_float(daily_units) * ex * w.min())
    return _out_int(days, scalar)
