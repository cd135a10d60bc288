"""Results inference wired through core.stats: the decision state agrees with the interval shown
(the issue's examples and a seeded property test), the MOVER path for small or lopsided counts,
sequential tuning to the plan, one-sided guardrail intervals and the Bayesian readout."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from sqlalchemy.orm import Session

from core.analysis.results import (
    SEQUENTIAL_WITHOUT_PLAN,
    compute_results,
    cumulative_series,
)
from core.analysis.snapshot import MetricComparison
from core.stats import MetricStats
from db import metric_repository as mrepo
from db.metric_repository import AssignmentRow, DailyStatRow
from db.models import Experiment, Metric
from tests.core.data.test_ingestion import START, make_experiment
from tests.core.stats.results import mover_e


def put(session: Session, exp_id: int, metric: str,
        arms: list[tuple[int, float, float]], *, assign: bool = True) -> None:
    """Store one day of sufficient statistics (n, sum, sum of squares) per arm, in variant
    order, and (optionally) the assignment counts."""
    exp = session.get(Experiment, exp_id)
    assert exp is not None
    metric_id = session.query(Metric).filter_by(name=metric).one().id
    rows = [DailyStatRow(v.id, metric_id, START, MetricStats(n, s, ss))
            for v, (n, s, ss) in zip(exp.variants, arms, strict=True)]
    mrepo.upsert_daily_stats(session, experiment_id=exp_id, rows=rows, source="test")
    if assign:
        mrepo.upsert_assignments(session, experiment_id=exp_id, rows=[
            AssignmentRow(v.id, START, n) for v, (n, _s, _ss) in zip(exp.variants, arms,
                                                                   strict=True)])
    session.flush()


def binomial(n: int, x: int) -> tuple[int, float, float]:
    return n, float(x), float(x)


def normal(n: int, mean: float, sd: float) -> tuple[int, float, float]:
    """Sums whose sample mean and sd (ddof=1) are exactly ``mean`` and ``sd``."""
    return n, n * mean, (n - 1) * sd * sd + n * mean * mean


def only(session: Session, exp_id: int) -> MetricComparison:
    (row,) = compute_results(session, experiment_id=exp_id).comparisons
    return row


def excludes_zero(low: float | None, high: float | None) -> bool:
    low = -math.inf if low is None else low
    high = math.inf if high is None else high
    return low > 0 or high < 0


@pytest.mark.parametrize(("metric", "arms"), [
    ("conv", [binomial(10000, 1000), binomial(10000, 1085)]),
    ("revenue", [normal(2000, 10.0, 4.0), normal(2000, 9.753, 4.0)]),
])
def test_results_issue_examples_state_agrees_with_the_lift_interval(
    session: Session, metric: str, arms: list[tuple[int, float, float]]
) -> None:
    """Issue 12: 10000/1000 vs 10000/1085 showed p = 0.0492 "significant" beside a lift CI
    containing 0; means 10 vs 9.753 (sd 4, n 2000) showed p = 0.0509 beside a lift CI
    excluding 0. The state now follows the lift's own p-value, which its CI inverts."""
    exp = make_experiment(session, primary=metric, guardrails=(), secondaries=(), planned=100)
    put(session, exp, metric, arms)
    row = only(session, exp)
    assert row.decision_on == "lift"
    assert (row.lift_p_value < 0.05) == excludes_zero(row.lift_ci_low, row.lift_ci_high)
    assert (row.p_value < 0.05) == excludes_zero(row.diff_ci_low, row.diff_ci_high)
    assert (row.decision_state == "significant") == excludes_zero(row.lift_ci_low,
                                                                  row.lift_ci_high)
    # The difference's p-value is the Wald/Welch one (statsmodels/scipy conventions).
    if metric == "conv":
        (n_c, x_c, _), (n_t, x_t, _) = arms
        p_c, p_t = x_c / n_c, x_t / n_t
        z = (p_t - p_c) / math.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
        assert_allclose(row.p_value, 2 * stats.norm.sf(abs(z)), rtol=1e-10)
        assert row.test == "wald_z"
    else:
        ref = stats.ttest_ind_from_stats(9.753, 4.0, 2000, 10.0, 4.0, 2000, equal_var=False)
        assert_allclose(row.p_value, ref.pvalue, rtol=1e-10)
        assert row.test == "welch"


@pytest.mark.parametrize("mode", ["fixed", "sequential"])
def test_results_state_agrees_with_the_interval_shown_over_random_inputs(
    session: Session, mode: str
) -> None:
    """Property (seeded): for one comparison, "significant" <=> the lift CI excludes 0, and for
    each of the difference and the lift, "CI excludes 0" <=> "its p < alpha"."""
    rng = np.random.default_rng(20261202)
    exp_b = make_experiment(session, name="prop b", primary="conv", guardrails=(),
                            secondaries=(), planned=50, mode=mode)
    exp_m = make_experiment(session, name="prop m", primary="revenue", guardrails=(),
                            secondaries=(), planned=50, mode=mode)
    checked = 0
    for _ in range(40):
        n_c = n_t = int(rng.integers(200, 5000))  # equal arms: no sample ratio mismatch
        base = rng.uniform(0.05, 0.5)
        lift = rng.normal(0, 0.15)
        x_c = int(rng.binomial(n_c, base))
        x_t = int(rng.binomial(n_t, min(0.95, base * (1 + lift))))
        put(session, exp_b, "conv", [binomial(n_c, x_c), binomial(n_t, x_t)], assign=False)
        mean = rng.uniform(1, 50)
        put(session, exp_m, "revenue", [normal(n_c, mean, mean * rng.uniform(0.2, 2)),
                                        normal(n_t, mean * (1 + lift / 3),
                                               mean * rng.uniform(0.2, 2))], assign=False)
        for exp in (exp_b, exp_m):
            row = only(session, exp)
            assert row.sequential is (mode == "sequential")
            lift_out = excludes_zero(row.lift_ci_low, row.lift_ci_high)
            assert (row.lift_p_value < 0.05) == lift_out
            assert (row.p_value < 0.05) == excludes_zero(row.diff_ci_low, row.diff_ci_high)
            assert row.decision_state in ("significant", "not_significant")
            assert (row.decision_state == "significant") == lift_out
            checked += 1
    assert checked == 80


def test_results_small_counts_use_the_small_count_mover_test(session: Session) -> None:
    """Issue 12: 2/10 vs 1e6/1e8 gave a pooled-z p = 1.6e-9. The MOVER interval's end reaches 0
    where the small arm's Clopper–Pearson limit reaches the large arm's 1% (known to 3e-5):
    p = 2 P(X >= 2) for X ~ Binomial(10, 0.01) (scipy binom.sf) = 0.0085 (core.stats'
    test_mover has the derivation)."""
    exp = make_experiment(session, primary="conv", guardrails=(), secondaries=(), planned=5,
                          variants=(("control", 1e-7), ("treatment", 1 - 1e-7)))
    put(session, exp, "conv", [binomial(10, 2), binomial(10**8, 10**6)], assign=False)
    row = only(session, exp)
    assert row.test == "mover_cp"
    assert_allclose(row.p_value, 2 * stats.binom.sf(1, 10, 0.01), rtol=1e-5)
    assert "small-count MOVER test" in row.reason


def test_results_zero_conversions_never_give_a_zero_width_lift_interval(
    session: Session,
) -> None:
    """Issue 12: 10/500 vs 0/500 returned the lift CI [-1, -1]. p: the MOVER-E reference
    written out with scipy's exact limits (tests/core/stats/results/mover_e.py)."""
    exp = make_experiment(session, primary="conv", guardrails=(), secondaries=(), planned=100)
    put(session, exp, "conv", [binomial(500, 10), binomial(500, 0)])
    row = only(session, exp)
    assert row.test == "mover_cp"
    assert row.lift_ci_low is not None and row.lift_ci_high is not None
    assert row.lift_ci_high - row.lift_ci_low > 0.1
    ref = mover_e.p_value(10, 500, 0, 500, alternative="two-sided", quantity="diff", null=0.0)
    assert_allclose(row.p_value, ref, rtol=1e-6)


def test_results_sequential_without_a_planned_sample_is_refused_clearly(
    session: Session,
) -> None:
    exp = make_experiment(session, primary="conv", guardrails=(), secondaries=(),
                          planned=100, mode="sequential")
    session.get(Experiment, exp).planned_sample_size = None  # type: ignore[union-attr]
    session.flush()
    put(session, exp, "conv", [binomial(5000, 500), binomial(5000, 600)])
    snap = compute_results(session, experiment_id=exp)
    (row,) = snap.comparisons
    assert row.decision_state == "too_early" and row.p_value is None
    assert SEQUENTIAL_WITHOUT_PLAN in row.reason
    assert snap.verdict is not None and snap.verdict.recommendation == "keep_running"
    assert cumulative_series(session, experiment_id=exp) == []


def test_results_sequential_is_tuned_to_the_planned_sample(session: Session) -> None:
    """Always-valid p of the normal-mixture confidence sequence (Howard et al. 2021, eq. 14),
    written out here: tuning to the plan (not the current n) is what the snapshot uses."""
    planned = 4000
    exp = make_experiment(session, primary="conv", guardrails=(), secondaries=(),
                          planned=planned, mode="sequential")
    put(session, exp, "conv", [binomial(1500, 150), binomial(1500, 200)])
    row = only(session, exp)
    p_c, p_t = 150 / 1500, 200 / 1500
    z = (p_t - p_c) / math.sqrt(p_c * (1 - p_c) / 1500 + p_t * (1 - p_t) / 1500)
    rho2 = (-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / (2 * planned)
    nr2 = 3000 * rho2
    expected = min(1.0, math.sqrt(nr2 + 1) * math.exp(-z * z * nr2 / (2 * (nr2 + 1))))
    assert row.sequential
    assert_allclose(row.p_value, expected, rtol=1e-10)


def test_results_guardrails_get_one_sided_intervals(session: Session) -> None:
    """Guardrails are one-sided harm tests: their interval is one-sided too (the open end is
    null in the snapshot), and it excludes 0 exactly when the harm test is significant."""
    exp = make_experiment(session, primary="conv", guardrails=("refunds", "load_ms"),
                          secondaries=(), planned=100)
    put(session, exp, "conv", [binomial(3000, 300), binomial(3000, 330)])
    put(session, exp, "refunds", [binomial(3000, 90), binomial(3000, 130)], assign=False)
    put(session, exp, "load_ms", [normal(3000, 800, 100), normal(3000, 801, 100)],
        assign=False)
    snap = compute_results(session, experiment_id=exp)
    refunds = next(r for r in snap.comparisons if r.metric == "refunds")
    load = next(r for r in snap.comparisons if r.metric == "load_ms")
    for r in (refunds, load):  # lower is better: harm is an increase, H1 "greater"
        assert r.alternative == "greater"
        assert r.lift_ci_high is None and r.diff_ci_high is None
        assert r.lift_ci_low is not None
    assert refunds.decision_state == "guardrail_breach" and refunds.lift_ci_low > 0
    assert load.decision_state == "not_significant" and load.lift_ci_low < 0
    # One-sided Welch p for the load guardrail (scipy).
    ref = stats.ttest_ind_from_stats(801, 100, 3000, 800, 100, 3000, equal_var=False,
                                     alternative="greater")
    assert_allclose(load.p_value, ref.pvalue, rtol=1e-9)


def test_results_bayesian_readout_matches_a_seeded_monte_carlo(session: Session) -> None:
    """Flat prior: the posterior of the lift is N(lift, se^2). Chance to beat control and the
    expected losses checked against 2,000,000 draws of that posterior (seeded), 3 decimals."""
    exp = make_experiment(session, primary="conv", guardrails=(), secondaries=(), planned=100)
    put(session, exp, "conv", [binomial(4000, 400), binomial(4000, 440)])
    row = only(session, exp)
    b = row.bayesian
    assert b is not None and b.prior == "flat"
    p_c, p_t = 0.1, 0.11
    se = math.sqrt(p_t * (1 - p_t) / 4000 / p_c**2 + p_t**2 * p_c * (1 - p_c) / 4000 / p_c**4)
    draws = np.random.default_rng(7).normal(p_t / p_c - 1, se, 2_000_000)
    assert_allclose(b.chance_to_beat_control, (draws > 0).mean(), atol=1e-3)
    assert_allclose(b.expected_loss_ship, np.maximum(0, -draws).mean(), atol=1e-3)
    assert_allclose(b.expected_loss_dont_ship, np.maximum(0, draws).mean(), atol=1e-3)
    assert_allclose([b.ci_low, b.ci_high], np.quantile(draws, [0.025, 0.975]), atol=1e-3)


def test_results_srm_withholds_the_bayesian_readout_too(session: Session) -> None:
    exp = make_experiment(session, primary="conv", guardrails=(), secondaries=(), planned=100)
    put(session, exp, "conv", [binomial(4000, 400), binomial(4600, 440)])
    row = only(session, exp)
    assert row.blocked and row.bayesian is None and row.lift_p_value is None


def test_results_series_points_carry_the_lift_p_value(session: Session) -> None:
    exp = make_experiment(session, primary="conv", guardrails=(), secondaries=(), planned=100)
    put(session, exp, "conv", [binomial(4000, 400), binomial(4000, 470)])
    (point,) = cumulative_series(session, experiment_id=exp)
    row = only(session, exp)
    assert point.lift_p_value == row.lift_p_value and point.day == START
    assert START + timedelta(days=0) == point.day
