"""The planner's work is bounded: the noncentral t deep in its tail, solver steps, a time budget.

References:
* df = 2: V = chi-square(2) is exponential with mean 2, so P(V < x) = 1 - exp(-x / 2) and the
  noncentral t's tail is a Gaussian integral, P(T' > q) = 1 - sqrt(c / (c + 2))
  exp(-ncp^2 / (c + 2)) with c = q^2 (E exp(-(Z + ncp)^2 / c) = sqrt(c / (c + 2))
  exp(-ncp^2 / (c + 2)), Z standard normal; the event Z < -ncp, of probability Phi(-ncp), is
  left out: 0 in double precision at the ncp below);
* scipy ``stats.nct`` (Boost) where it is quick and exact (moderate noncentralities).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import special, stats

from core.stats import BudgetExceeded, mde_mean, planner, power_mean, sample_size_mean, time_budget


def _df2_power(ncp: float, q: float) -> float:
    """P(T'_{2, ncp} > q), the closed form of the module docstring."""
    c = q * q
    return float(1.0 - np.sqrt(c / (c + 2.0)) * np.exp(-ncp * ncp / (c + 2.0)))


@pytest.mark.parametrize(("alpha", "power", "variants"), [
    (1e-12, 0.999999, 2),  # issue 24's hostile MDE request: 7.4 s, and 2.5 % off, before
    (1e-6, 0.9999, 20),  # the slowest plan the API still takes
])
def test_planner_mean_mde_at_two_units_matches_the_df2_closed_form_quickly(
    alpha: float, power: float, variants: int
) -> None:
    started = time.perf_counter()
    delta = mde_mean(1.0, 2, alpha=alpha, power=power, variants=variants)
    took = time.perf_counter() - started
    # n = 2 per arm: df = 2, ncp = delta (sd 1), q = t_2 quantile at alpha / (variants - 1) / 2
    q = float(special.stdtrit(2, 1.0 - alpha / (variants - 1) / 2))
    assert_allclose(_df2_power(delta, q), power, rtol=0, atol=1e-12)
    assert took < 1.0, f"{took:.2f} s"  # ~10 ms; generous for a loaded machine


def test_planner_noncentral_t_tail_quadrature_agrees_with_boost() -> None:
    """Seeded: where both apply (ncp >= 20, Boost quick there), within 1e-11; half the points
    where the tail is between 0 and 1 (large ncp there needs a large q, so a small df)."""
    rng = np.random.default_rng(24)
    df = np.concatenate([10 ** rng.uniform(np.log10(2), 1.5, 300),
                         10 ** rng.uniform(np.log10(2), 7, 300)])
    tail = np.concatenate([10 ** rng.uniform(-9, -2, 300),
                           10 ** rng.uniform(-9, np.log10(0.5), 300)])
    q = special.stdtrit(df, 1 - tail)
    p = rng.uniform(0.01, 0.99999, 300)
    ncp = np.concatenate([q[:300] * np.sqrt(special.chdtri(df[:300], p) / df[:300])
                          + special.ndtri(p), 10 ** rng.uniform(np.log10(20), 3.5, 300)])
    keep = (ncp >= 20) & (ncp <= 3000)
    assert keep[:300].sum() > 50
    boost = stats.nct.sf(q[keep], df[keep], ncp[keep])
    assert_allclose(planner._nct_sf_quadrature(q[keep], df[keep], ncp[keep]), boost,
                    rtol=0, atol=1e-11)


def test_planner_mean_power_at_a_huge_noncentrality_is_quick_and_exact() -> None:
    q = float(special.stdtrit(2, 1 - 1e-6 / 2))
    effects = np.array([1e3, 3e3, 1e4, 1e6, 1e9])
    started = time.perf_counter()
    got = power_mean(1.0, effects, 2, alpha=1e-6)
    assert time.perf_counter() - started < 1.0
    assert_allclose(got, [_df2_power(e, q) for e in effects], rtol=0, atol=1e-12)


def test_planner_effect_too_small_for_any_sample_stops_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No finite n: the solver stops at the first infinite bracket, not after 200 doublings."""
    calls = 0
    real = planner._t_power

    def counted(*args):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return real(*args)

    monkeypatch.setattr(planner, "_t_power", counted)
    with np.errstate(all="ignore"):  # sd / mde overflows, as it does in core.planning
        n = sample_size_mean(1e12, 1e-300, alpha=0.05, power=0.9, round_up=False)
    assert not np.isfinite(n)
    assert calls < 10, calls


def test_planner_solve_past_its_time_budget_is_refused_saying_what_to_change() -> None:
    with time_budget(0.0), pytest.raises(BudgetExceeded, match="budget.*larger alpha"):
        mde_mean(1.0, 100, alpha=0.05, power=0.8)
    assert mde_mean(1.0, 100, alpha=0.05, power=0.8) > 0  # the budget ends with the block
    with time_budget(5.0):
        assert sample_size_mean(1.0, 0.1) > 0
