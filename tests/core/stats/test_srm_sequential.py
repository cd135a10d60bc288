"""Sequential (anytime-valid) SRM test: Lindon & Malek (2022), "Anytime-Valid Inference for
Multinomial Count Data", NeurIPS; reference implementation Optimizely ``ssrm``
(github.com/optimizely/ssrm, ``ssrm_test/test_ssrm_test.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from core.stats import (
    DEFAULT_CONCENTRATION,
    dirichlet_multinomial_log_bayes_factor,
    sequential_srm_test,
    srm_test,
)

# Optimizely ssrm, test_sequential_posteriors (time-aggregated data, null [0.4, 0.4, 0.2],
# Dirichlet(1, 1, 1)): log marginal likelihoods M1 and M0 after each batch; log BF = M1 - M0.
SSRM_BATCHES = [[20, 17, 9], [18, 21, 8], [4, 6, 4], [18, 19, 11]]
SSRM_M1 = [-7.028201432058012, -11.947847738358888, -15.471401950257842, -19.96484521090386]
SSRM_M0 = [-4.0776406466061985, -8.265946861099877, -11.610743519545139, -15.781031228536165]


def test_dirichlet_multinomial_log_bayes_factor_matches_ssrm_reference_values() -> None:
    cumulative = np.cumsum(SSRM_BATCHES, axis=0)
    got = [dirichlet_multinomial_log_bayes_factor(row, [0.4, 0.4, 0.2], [1, 1, 1])
           for row in cumulative]
    assert_allclose(got, np.subtract(SSRM_M1, SSRM_M0), rtol=1e-12)


@pytest.mark.parametrize(("counts", "weights", "concentration"), [
    ([5120, 4880], [0.5, 0.5], DEFAULT_CONCENTRATION),
    ([3000, 3400, 1500], [0.4, 0.4, 0.2], 100.0),
    ([10, 0], [0.3, 0.7], 1.0),
])
def test_dirichlet_multinomial_log_bayes_factor_matches_scipy(
    counts: list[int], weights: list[float], concentration: float
) -> None:
    # Independent closed form: scipy.stats.dirichlet_multinomial.logpmf (marginal under the
    # Dirichlet prior) minus scipy.stats.multinomial.logpmf (likelihood under the plan).
    prior = concentration * np.asarray(weights)
    n = sum(counts)
    expected = (stats.dirichlet_multinomial.logpmf(counts, prior, n)
                - stats.multinomial.logpmf(counts, n, weights))
    got = dirichlet_multinomial_log_bayes_factor(counts, weights, prior)
    assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_sequential_srm_p_value_is_one_over_running_max_of_bayes_factor() -> None:
    rows = [[100, 100], [260, 140], [300, 300]]  # a mismatch early, balanced later
    r = sequential_srm_test(rows, [0.5, 0.5], concentration=10.0)
    direct = [dirichlet_multinomial_log_bayes_factor(x, [0.5, 0.5], [5.0, 5.0]) for x in rows]
    assert_allclose(r.log_bayes_factors, direct, rtol=1e-12)
    # the p-value keeps the evidence of day 2 (it never increases): 1 / max BF
    assert_allclose(r.p_value, min(1.0, np.exp(-max(direct))), rtol=1e-12)
    assert r.p_value < sequential_srm_test(rows[-1], [0.5, 0.5], concentration=10.0).p_value
    assert r.observed == (300, 300) and r.flagged == (r.p_value < 0.001)


def test_sequential_srm_batching_does_not_change_the_bayes_factor() -> None:
    # Lindon & Malek: the mixture likelihood depends on the counts only, so one unit at a time
    # and a day's batch give the same Bayes factor (ssrm test_accumulator).
    rng = np.random.default_rng(7)
    units = rng.choice(3, size=60, p=[0.2, 0.5, 0.3])
    one_hot = np.cumsum(np.eye(3, dtype=int)[units], axis=0)
    r = sequential_srm_test(one_hot, [1 / 3, 1 / 3, 1 / 3], concentration=3.0)
    batch = dirichlet_multinomial_log_bayes_factor(one_hot[-1], [1 / 3] * 3, [1.0, 1.0, 1.0])
    assert_allclose(r.log_bayes_factor, batch, rtol=1e-12)


def test_sequential_srm_daily_checks_keep_false_alarms_at_one_in_a_thousand() -> None:
    # 6,000 simulated experiments, a true 50/50 split, 1,000 units a day, checked every day for
    # 30 days at p < 0.001. Ville's inequality bounds the chance of ANY false alarm over the
    # 30 checks by 0.001. The bound is meaningful at this size: with k alarms among 6,000, the
    # one-sided 95% Clopper-Pearson upper limit of the rate is <= 0.001 for k <= 1 (it is 3/6000
    # = 0.0005 at k = 0), so the assertion fails if the daily false-alarm rate were above 0.1%.
    rng = np.random.default_rng(20261207)
    experiments, days, per_day = 6_000, 30, 1_000
    a = rng.binomial(per_day, 0.5, size=(experiments, days)).cumsum(axis=1)
    b = per_day * np.arange(1, days + 1) - a
    alarms = sum(sequential_srm_test(np.column_stack([a[i], b[i]]), [0.5, 0.5]).flagged
                 for i in range(experiments))
    upper = stats.beta.ppf(0.95, alarms + 1, experiments - alarms)
    assert upper <= 0.001, (alarms, upper)
    # the chi-square check read every day inflates the same level about tenfold
    chi_alarms = sum(
        min(srm_test([a[i, d], b[i, d]], [0.5, 0.5]).p_value for d in range(days)) < 0.001
        for i in range(600))
    assert chi_alarms / 600 > 0.003


def test_sequential_srm_detects_a_52_48_split_with_high_power() -> None:
    rng = np.random.default_rng(11)
    experiments, days, per_day = 400, 30, 1_000
    a = rng.binomial(per_day, 0.52, size=(experiments, days)).cumsum(axis=1)
    b = per_day * np.arange(1, days + 1) - a
    found = np.mean([sequential_srm_test(np.column_stack([a[i], b[i]]), [0.5, 0.5]).flagged
                     for i in range(experiments)])
    assert found >= 0.95


@pytest.mark.parametrize(("rows", "weights", "kwargs", "match"), [
    ([[5, 5], [4, 6]], [0.5, 0.5], {}, "not decrease"),
    ([[0, 0]], [0.5, 0.5], {}, "all zero"),
    ([[1.5, 2]], [0.5, 0.5], {}, "whole numbers"),
    ([[1, 2]], [0.5, 0.6], {}, "sum to 1"),
    ([[1, 2]], [0.5, 0.5], {"concentration": 0.0}, "concentration"),
    ([[1, 2]], [0.5, 0.5], {"threshold": 1.0}, "threshold"),
    ([[[1, 2]]], [0.5, 0.5], {}, "one row of counts"),
])
def test_sequential_srm_rejects_bad_input(rows: object, weights: list[float],
                                          kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sequential_srm_test(rows, weights, **kwargs)


def test_dirichlet_multinomial_log_bayes_factor_rejects_a_bad_prior() -> None:
    with pytest.raises(ValueError, match="Dirichlet parameters"):
        dirichlet_multinomial_log_bayes_factor([3, 4], [0.5, 0.5], [1.0, -1.0])
