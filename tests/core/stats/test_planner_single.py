"""One plan, not a curve: the scalar fast path gives the answers of statsmodels and of the
vectorised path; the expected variance reduction (R^2) shrinks the sample as the closed form says.

References:
* statsmodels ``NormalIndPower().solve_power`` (proportions: the unpooled Wald z-test is its
  normal power with effect size d sqrt(1 + 1/r) / sqrt(p1 q1 + p2 q2 / r)) and
  ``TTestIndPower().solve_power`` (means at equal arms, where its pooled df 2n - 2 is Welch's df
  at the planned sd), two-sided power counting both tails in both libraries;
* the closed form of the normal approximation with CUPED's variance sd^2 (1 - R^2) (Deng, Xu,
  Kohavi & Walker 2013, section 3.2): n = (z_{1-alpha/2} + z_{1-beta})^2 2 sd^2 (1 - R^2) / delta^2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower

from core.stats import (
    mde_mean,
    mde_proportion,
    planner,
    power_mean,
    power_proportion,
    sample_size_mean,
    sample_size_proportion,
)

PROPORTION_CASES = [
    # baseline, relative mde, alpha, power, alternative, ratio
    (0.10, 0.10, 0.05, 0.80, "two-sided", 1.0),
    (0.03, 0.05, 0.05, 0.90, "two-sided", 1.0),
    (0.50, 0.02, 0.01, 0.80, "two-sided", 2.0),
    (0.20, 0.15, 0.10, 0.95, "greater", 0.5),
    (0.25, 0.30, 0.05, 0.60, "two-sided", 1.0),
]


@pytest.mark.parametrize(("baseline", "mde", "alpha", "power", "alternative", "ratio"),
                         PROPORTION_CASES)
def test_planner_single_proportion_matches_statsmodels_normal_ind_power(
    baseline: float, mde: float, alpha: float, power: float, alternative: str, ratio: float
) -> None:
    p2 = baseline * (1 + mde)
    s = math.sqrt(baseline * (1 - baseline) + p2 * (1 - p2) / ratio)
    effect = (p2 - baseline) * math.sqrt(1 + 1 / ratio) / s
    sm_alt = "two-sided" if alternative == "two-sided" else "larger"
    reference = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power,
                                             ratio=ratio, alternative=sm_alt)
    got = sample_size_proportion(baseline, mde, alpha=alpha, power=power,
                                 alternative=alternative, ratio=ratio, round_up=False)
    assert isinstance(got, float)
    assert_allclose(got, reference, rtol=1e-8)  # statsmodels' brentq stops near 1e-10
    assert_allclose(NormalIndPower().power(effect_size=effect, nobs1=got, alpha=alpha,
                                           ratio=ratio, alternative=sm_alt),
                    power, rtol=0, atol=1e-12)
    assert sample_size_proportion(baseline, mde, alpha=alpha, power=power,
                                  alternative=alternative, ratio=ratio) == math.ceil(reference)


MEAN_CASES = [
    # sd, mde, alpha, power, alternative
    (1.0, 0.2, 0.05, 0.80, "two-sided"),
    (24.0, 1.0, 0.05, 0.90, "two-sided"),
    (1.0, 1.5, 0.05, 0.80, "two-sided"),  # n ~ 8: the t and the normal differ most
    (3.0, 0.05, 0.01, 0.95, "two-sided"),
    (1.0, 0.5, 0.10, 0.80, "greater"),
]


@pytest.mark.parametrize(("sd", "mde", "alpha", "power", "alternative"), MEAN_CASES)
def test_planner_single_mean_matches_statsmodels_ttest_ind_power(
    sd: float, mde: float, alpha: float, power: float, alternative: str
) -> None:
    sm_alt = "two-sided" if alternative == "two-sided" else "larger"
    reference = TTestIndPower().solve_power(effect_size=mde / sd, alpha=alpha, power=power,
                                            ratio=1.0, alternative=sm_alt)
    got = sample_size_mean(sd, mde, alpha=alpha, power=power, alternative=alternative,
                           round_up=False)
    assert isinstance(got, float)
    assert_allclose(got, reference, rtol=1e-7)  # statsmodels' brentq stops within ~1e-8
    # and statsmodels' own power function at our n gives back the target power
    assert_allclose(TTestIndPower().power(effect_size=mde / sd, nobs1=got, alpha=alpha,
                                          alternative=sm_alt), power, rtol=0, atol=1e-12)
    assert sample_size_mean(sd, mde, alpha=alpha, power=power,
                            alternative=alternative) == math.ceil(reference)


def test_planner_single_call_agrees_with_the_vectorised_path_everywhere() -> None:
    """Seeded grid over every argument: the fast path (plain floats) and the vectorised path
    (one-element arrays) find the same root, to 1e-10, and the same whole units."""
    rng = np.random.default_rng(2025)
    for i in range(120):
        alpha = float(10 ** rng.uniform(-6, -0.5))
        power = float(rng.uniform(0.55, 0.9999))
        ratio = float(10 ** rng.uniform(-1.5, 1.5))
        variants = int(rng.integers(2, 8))
        alternative = ("two-sided", "greater", "less")[i % 3]
        common = {"alpha": alpha, "power": power, "ratio": ratio, "variants": variants,
                  "alternative": alternative}
        effect, r2 = float(10 ** rng.uniform(-3, 0.5)), float(rng.uniform(0, 0.9))
        one = sample_size_mean(1.0, effect, r_squared=r2, round_up=False, **common)
        many = sample_size_mean(np.array([1.0]), effect, r_squared=r2, round_up=False, **common)
        assert_allclose(one, many[0], rtol=1e-10)
        assert sample_size_mean(1.0, effect, r_squared=r2, **common) == int(
            sample_size_mean(np.array([1.0]), effect, r_squared=r2, **common)[0])
        baseline, mde = float(rng.uniform(0.02, 0.6)), float(10 ** rng.uniform(-2, -0.3))
        one = sample_size_proportion(baseline, mde, round_up=False, **common)
        many = sample_size_proportion(np.array([baseline]), mde, round_up=False, **common)
        assert_allclose(one, many[0], rtol=1e-10)
        n = float(rng.uniform(2, 1e5)) / min(ratio, 1.0)
        no_power = {k: v for k, v in common.items() if k != "power"}
        assert_allclose(power_mean(1.0, effect, n, r_squared=r2, **no_power),
                        power_mean(np.array([1.0]), effect, n, r_squared=r2, **no_power)[0],
                        rtol=0, atol=1e-14)
        assert_allclose(power_proportion(baseline, mde, n, **no_power),
                        power_proportion(np.array([baseline]), mde, n, **no_power)[0],
                        rtol=0, atol=1e-14)
        assert_allclose(mde_mean(2.5, n, r_squared=r2, **common),
                        mde_mean(np.array([2.5]), n, r_squared=r2, **common)[0], rtol=1e-10)
        one = mde_proportion(baseline, n, **common)
        many = mde_proportion(np.array([baseline]), n, **common)[0]
        assert (math.isnan(one) and math.isnan(many)) or abs(one / many - 1) < 1e-10


@pytest.mark.parametrize(("n", "alpha", "power", "alternative"), [
    (500.0, 0.05, 0.8, "two-sided"), (9043.0, 0.01, 0.9, "two-sided"), (3.0, 0.05, 0.8,
                                                                         "two-sided"),
    (40.0, 0.1, 0.95, "greater"),
])
def test_planner_single_mde_matches_statsmodels_power(
    n: float, alpha: float, power: float, alternative: str
) -> None:
    """statsmodels' power at our MDE is the target (its effect-size solve stops ~1e-6 short, so
    it is compared at that tolerance): TTestIndPower for means, NormalIndPower at the Wald
    effect size of the rate found for proportions."""
    sm_alt = "two-sided" if alternative == "two-sided" else "larger"
    delta = mde_mean(3.0, n, alpha=alpha, power=power, alternative=alternative)
    assert isinstance(delta, float)
    assert_allclose(TTestIndPower().power(effect_size=delta / 3.0, nobs1=n, alpha=alpha,
                                          alternative=sm_alt), power, rtol=0, atol=1e-12)
    assert_allclose(delta / 3.0, TTestIndPower().solve_power(
        nobs1=n, alpha=alpha, power=power, alternative=sm_alt), rtol=1e-5)
    d = mde_proportion(0.2, n * 10, alpha=alpha, power=power, alternative=alternative)
    p2 = 0.2 + d
    effect = d * math.sqrt(2) / math.sqrt(0.2 * 0.8 + p2 * (1 - p2))
    assert_allclose(NormalIndPower().power(effect_size=effect, nobs1=n * 10, alpha=alpha,
                                           alternative=sm_alt), power, rtol=0, atol=1e-12)


def test_planner_single_mde_proportion_unreachable_is_nan() -> None:
    """Two units a variant detect no change in a 50% rate at 99% power: NaN, as the
    vectorised path says."""
    assert math.isnan(mde_proportion(0.5, 2.0, power=0.99))
    assert math.isnan(mde_proportion(np.array([0.5]), 2.0, power=0.99)[0])


def test_planner_single_call_uses_no_scipy_stats_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path is taken: scipy.stats.nct (its argument checks cost more than the solve)
    is never called for one plan."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("scipy.stats.nct called on the single-plan path")

    monkeypatch.setattr(stats.nct, "sf", refuse)
    monkeypatch.setattr(stats.nct, "cdf", refuse)
    assert sample_size_mean(1.0, 0.2) == 394  # R power.t.test(delta=0.2, power=0.8): 393.4
    assert 0.79 < power_mean(1.0, 0.2, 394) < 0.81
    assert 0.19 < mde_mean(1.0, 394) < 0.21


def test_planner_single_call_bad_input_gets_the_vectorised_message() -> None:
    with pytest.raises(ValueError, match="power .* must exceed alpha"):
        sample_size_mean(1.0, 0.2, alpha=0.5, power=0.4)
    with pytest.raises(ValueError, match="baseline \\+ relative mde must stay"):
        sample_size_proportion(0.9, 0.2)
    with pytest.raises(ValueError, match="variants must be a whole number"):
        sample_size_proportion(0.1, 0.1, variants=2.5)
    with pytest.raises(ValueError, match="alternative must be one of"):
        sample_size_mean(1.0, 0.2, alternative="both")  # type: ignore[arg-type]


# ----------------------------------------------------------------- variance reduction (R^2)


@pytest.mark.parametrize("r_squared", [0.0, 0.2, 0.5, 0.9])
def test_planner_r_squared_shrinks_the_sample_as_the_closed_form(r_squared: float) -> None:
    """Normal approximation: n = (z_{1-alpha/2} + z_{1-beta})^2 2 sd^2 (1 - R^2) / delta^2
    (sd 10, delta 0.05: n ~ 628,000 x (1 - R^2)). The t plan needs z_{1-alpha/2}^2 / 4 ~ 0.96
    units more per arm whatever n (Guenther 1981), so within 1.5 units of it; planning
    without R^2 would miss by 62,800 x R^2."""
    sd, delta, alpha, power = 10.0, 0.05, 0.05, 0.8
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    closed = z**2 * 2 * sd**2 * (1 - r_squared) / delta**2
    got = sample_size_mean(sd, delta, alpha=alpha, power=power, r_squared=r_squared,
                           round_up=False)
    assert_allclose(got, closed, rtol=0, atol=1.5)
    vectorised = sample_size_mean(np.array([sd]), delta, alpha=alpha, power=power,
                                  r_squared=r_squared, round_up=False)
    assert_allclose(vectorised[0], closed, rtol=0, atol=1.5)


@pytest.mark.parametrize(("sd", "delta", "r_squared"), [(1.0, 0.3, 0.3), (2.0, 1.0, 0.6),
                                                         (1.0, 0.1, 0.45)])
def test_planner_r_squared_matches_statsmodels_with_the_reduced_sd(
    sd: float, delta: float, r_squared: float
) -> None:
    """statsmodels TTestIndPower at effect size delta / (sd sqrt(1 - R^2)) (equal arms)."""
    effect = delta / (sd * math.sqrt(1 - r_squared))
    solver = TTestIndPower()
    n = sample_size_mean(sd, delta, r_squared=r_squared, round_up=False)
    assert_allclose(n, solver.solve_power(effect_size=effect, alpha=0.05, power=0.8), rtol=1e-7)
    assert_allclose(solver.power(effect_size=effect, nobs1=n, alpha=0.05), 0.8, atol=1e-12)
    assert_allclose(power_mean(sd, delta, 50, r_squared=r_squared),
                    solver.power(effect_size=effect, nobs1=50, alpha=0.05), rtol=1e-10)
    mde = mde_mean(sd, 50, r_squared=r_squared)
    # statsmodels' effect-size solve stops ~3e-6 short; its power function at ours is exact
    assert_allclose(mde, solver.solve_power(nobs1=50, alpha=0.05, power=0.8) * sd
                    * math.sqrt(1 - r_squared), rtol=1e-5)
    assert_allclose(solver.power(effect_size=mde / (sd * math.sqrt(1 - r_squared)), nobs1=50,
                                 alpha=0.05), 0.8, atol=1e-12)


@pytest.mark.parametrize("r_squared", [-0.1, 1.0, 1.5, float("nan")])
def test_planner_r_squared_outside_zero_one_is_refused(r_squared: float) -> None:
    for call in (lambda: sample_size_mean(1.0, 0.2, r_squared=r_squared),
                 lambda: sample_size_mean(np.array([1.0, 2.0]), 0.2, r_squared=r_squared),
                 lambda: power_mean(1.0, 0.2, 100, r_squared=r_squared),
                 lambda: mde_mean(1.0, 100, r_squared=r_squared)):
        with pytest.raises(ValueError, match=r"r_squared must lie in \[0, 1\)"):
            call()


def test_planner_fast_helpers_decline_what_they_do_not_take() -> None:
    """Arrays, booleans and out-of-range values go to the vectorised path."""
    assert planner._fast_common(0.05, 0.8, "two-sided", 1.0, 2) == (2, 0.05)
    assert planner._fast_common(0.05, 0.8, "two-sided", True, 2) is None
    assert planner._fast_common(0.05, 0.02, "two-sided", 1.0, 3) is None  # power <= 0.05 / 2
    assert planner._fast_mean_effect(1.0, 0.2, None, True, 0.0) is None  # relative, no baseline
    assert planner._fast_mean_effect(np.array(1.0), 0.2, None, False, 0.0) is None


def test_planner_single_call_underflow_corners_answer_as_the_vectorised_path() -> None:
    """Plain floats raise where numpy returns inf (schemathesis found a 5e-324 baseline and
    mde: ZeroDivisionError, a 500): such corners take the vectorised path."""
    with np.errstate(all="ignore"):
        assert sample_size_proportion(5e-324, 5e-324, round_up=False) == math.inf
        assert sample_size_mean(1.0, 5e-324, round_up=False) == math.inf
        assert sample_size_mean(5e-324, 1.0, r_squared=0.999999, round_up=False) == float(
            sample_size_mean(np.array([5e-324]), 1.0, r_squared=0.999999, round_up=False)[0])
