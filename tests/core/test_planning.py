"""Planner service: numbers against R and statsmodels, inverse modes, curves, the sentence,
observed baselines, and saving a plan (audited) — the last on SQLite and PostgreSQL.

References:
* conversion rates: the unpooled Wald z-test the engine runs, Chow, Shao & Wang (2008) section
  4.2, computed with statsmodels ``normal_power`` and scipy ``brentq``
  (``tests/core/stats/reference_power.py``), and the book's published example (p. 89);
* means: R 4.2.2 ``power.t.test`` (``strict = TRUE``), the published table in
  ``tests/core/stats/results/results_r.py`` (POWER_T_DELTA);
* statsmodels 0.15 ``TTestIndPower.solve_power`` (noncentral t, both tails), computed here;
* the demo's raw user-level data (:func:`core.demo_data.generate_units`), aggregated with numpy,
  for observed baselines.
"""

from __future__ import annotations

import math
import time
from datetime import date, timedelta

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import brentq
from sqlalchemy.orm import Session
from statsmodels.stats.power import TTestIndPower

from core import catalogue, planning, registry
from core.config import get_settings
from core.demo_data import DEMO_TRUTH, generate_units
from core.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation
from core.stats import duration_days
from db.session import make_engine, session_factory
from tests.conftest import ADMIN, EDITOR, VIEWER
from tests.core.stats.reference_power import unpooled_n_control_ceil, unpooled_power
from tests.core.stats.results.results_r import POWER_T_DELTA

# (p1, p2, alpha, power): two-sided plans at equal arms (the inputs of R's POWER_PROP_N rows)
PROP_PLANS = [(0.10, 0.11, 0.05, 0.8), (0.05, 0.06, 0.05, 0.8), (0.30, 0.33, 0.01, 0.9),
              (0.50, 0.45, 0.05, 0.8), (0.02, 0.025, 0.10, 0.95)]


def inputs(**overrides: object) -> planning.PlanInputs:
    values: dict[str, object] = {"baseline": 0.10, "mde": 0.10, "daily_traffic": 1000}
    values.update(overrides)
    return planning.make_inputs(**values)


# --------------------------------------------------------------------------- sample size


@pytest.mark.parametrize("row", PROP_PLANS)
def test_planning_sample_size_matches_the_unpooled_z_test(row: tuple) -> None:
    p1, p2, alpha, power = row
    expected = unpooled_n_control_ceil(p1, p2, power=power, alpha=alpha)  # statsmodels
    plan = planning.plan_sample_size(inputs(baseline=min(p1, p2), mde=abs(p2 - p1),
                                            relative=False, alpha=alpha, power=power))
    assert plan.n_control == expected
    assert plan.total == 2 * expected
    assert [v.units for v in plan.variants] == [expected] * 2


def test_planning_sample_size_matches_chow_shao_wang_example() -> None:
    # Chow, Shao & Wang (2008) p. 89 (powerandsamplesize.com "2-Sample, 2-Sided Equality"):
    # p_A = 0.65, p_B = 0.85, alpha 0.05, power 0.8 -> 70 per group
    plan = planning.plan_sample_size(inputs(baseline=0.65, mde=0.20, relative=False))
    assert plan.n_control == 70


def test_planning_relative_mde_is_a_fraction_of_the_baseline() -> None:
    # statsmodels normal_power (unpooled z-test), 10% -> 11%, power 0.8: n = 14748.6 -> 14749
    expected = unpooled_n_control_ceil(0.10, 0.11)
    assert expected == 14749
    plan = planning.plan_sample_size(inputs(baseline=0.10, mde=0.10, relative=True))
    assert plan.n_per_variant == expected
    assert_allclose(plan.mde_absolute, 0.01, rtol=1e-12)
    assert_allclose(plan.mde_relative, 0.10, rtol=1e-12)


@pytest.mark.parametrize(
    ("weights", "alternative", "sm_alternative"),
    [((0.5, 0.5), "two-sided", "two-sided"), ((0.6, 0.4), "two-sided", "two-sided"),
     ((0.4, 0.3, 0.3), "greater", "larger")],
)
def test_planning_mean_sample_size_matches_statsmodels(
    weights: tuple[float, ...], alternative: str, sm_alternative: str
) -> None:
    sd, delta = 5.0, 1.0
    plan = planning.plan_sample_size(inputs(kind="mean", baseline=12.0, sd=sd, mde=delta,
                                            relative=False, weights=weights,
                                            alternative=alternative))
    k = len(weights)
    ratio = min(weights[1:]) / weights[0]
    reference = TTestIndPower().solve_power(
        effect_size=delta / sd, alpha=0.05 / (k - 1), power=0.8, ratio=ratio,
        alternative=sm_alternative,
    )
    if ratio == 1:  # Welch's df = the pooled t's 2n - 2: the same test's power
        assert plan.n_control == math.ceil(reference - 1e-6)
    else:  # Welch's df are fewer than TTestIndPower's pooled n_c + n_t - 2: at least as many
        # units, and at n in the hundreds (df ~ 1,000) less than one more
        assert math.ceil(reference - 1e-6) <= plan.n_control <= math.ceil(reference - 1e-6) + 1
    # every arm gets its share of the control's units; the smallest arm is what gets stored
    assert [v.units for v in plan.variants] == [
        math.ceil(round(plan.n_control * w / weights[0], 6)) for w in weights
    ]
    assert plan.n_per_variant == min(v.units for v in plan.variants)


@pytest.mark.parametrize("r_squared", [0.0, 0.25, 0.6])
def test_planning_expected_variance_reduction_matches_statsmodels(r_squared: float) -> None:
    """statsmodels TTestIndPower at effect size delta / (sd sqrt(1 - R^2)): CUPED's adjusted
    metric has variance sd^2 (1 - R^2) (Deng et al. 2013). Power and MDE modes agree."""
    sd, delta = 5.0, 1.0
    typed = inputs(kind="mean", baseline=12.0, sd=sd, mde=delta, relative=False,
                   r_squared=r_squared)
    plan = planning.plan_sample_size(typed)
    effect = delta / (sd * math.sqrt(1 - r_squared))
    reference = TTestIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8)
    assert plan.n_control == math.ceil(reference - 1e-6)
    power = planning.plan_for_sample(typed, n_per_variant=plan.n_control).power
    assert_allclose(power, TTestIndPower().power(effect_size=effect, nobs1=plan.n_control,
                                                 alpha=0.05), rtol=1e-10)
    found = planning.plan_for_units(typed, n_control=plan.n_control).mde_absolute
    assert found is not None and found <= delta
    assert_allclose(TTestIndPower().power(effect_size=found / (sd * math.sqrt(1 - r_squared)),
                                          nobs1=plan.n_control, alpha=0.05), 0.8, atol=1e-10)
    assert ("CUPED removing" in plan.summary) == (r_squared > 0)


def test_planning_expected_variance_reduction_is_validated() -> None:
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(InvalidInput, match="r_squared: give the expected variance"):
            inputs(kind="mean", baseline=12.0, sd=5.0, r_squared=bad)
    with pytest.raises(InvalidInput, match="r_squared: variance reduction .* mean metrics"):
        inputs(r_squared=0.3)  # a conversion rate


def test_planning_duration_uses_traffic_exposure_and_the_control_share() -> None:
    plan = planning.plan_sample_size(inputs(daily_traffic=1000, exposure=0.5))
    # equal split: the same answer as core.stats.duration_days
    assert plan.days == duration_days(plan.n_control, 1000, exposure=0.5) == math.ceil(
        unpooled_n_control_ceil(0.10, 0.11) / 250)
    unequal = planning.plan_sample_size(inputs(daily_traffic=1000, weights=(0.25, 0.75)))
    assert unequal.days == math.ceil(unequal.n_control / (1000 * 0.25))
    assert unequal.variants[1].units == 3 * unequal.n_control


def test_planning_more_traffic_or_a_bigger_effect_shortens_the_plan() -> None:
    base = planning.plan_sample_size(inputs())
    assert planning.plan_sample_size(inputs(daily_traffic=2000)).days < base.days
    assert planning.plan_sample_size(inputs(mde=0.2)).n_control < base.n_control
    assert planning.plan_sample_size(inputs(power=0.9)).n_control > base.n_control
    assert planning.plan_sample_size(inputs(weights=(0.34, 0.33, 0.33))).n_control > (
        base.n_control)


# --------------------------------------------------------------------------- inverse modes


# (n, p1, p2, alpha, alternative): the inputs of R's POWER_PROP_POWER rows
PROP_POWERS = [(1000, 0.10, 0.12, 0.05, "two-sided"), (1000, 0.10, 0.12, 0.05, "greater"),
               (50, 0.30, 0.40, 0.05, "two-sided"), (20000, 0.05, 0.055, 0.01, "greater"),
               (30, 0.5, 0.52, 0.05, "two-sided")]


@pytest.mark.parametrize("row", PROP_POWERS)
def test_planning_power_for_a_sample_matches_the_unpooled_z_test(row: tuple) -> None:
    n, p1, p2, alpha, alternative = row
    plan = planning.plan_for_sample(
        inputs(baseline=p1, mde=p2 - p1, relative=False, alpha=alpha, alternative=alternative),
        n_per_variant=n,
    )
    expected = unpooled_power(p1, p2, n, alpha=alpha, alternative=alternative)  # statsmodels
    assert_allclose(plan.power, expected, rtol=1e-10)
    assert plan.n_per_variant == n and plan.mode == "power"


@pytest.mark.parametrize(("n", "p1", "power", "alpha", "alternative"), [
    (1000, 0.10, 0.8, 0.05, "two-sided"), (1000, 0.10, 0.8, 0.05, "greater"),
    (5000, 0.05, 0.9, 0.05, "two-sided"), (200, 0.4, 0.8, 0.01, "greater"),
])
def test_planning_mde_for_a_duration_matches_the_unpooled_z_test(
    n: int, p1: float, power: float, alpha: float, alternative: str
) -> None:
    # n control units = days x daily x exposure x control share: 10 days x (n / 5) x 0.5
    plan = planning.plan_for_duration(
        inputs(baseline=p1, alpha=alpha, power=power, daily_traffic=n / 5,
               alternative=alternative),
        days=10,
    )
    assert plan.n_control == n
    # the treatment rate at which the reference reaches the power with n control units
    p2 = brentq(lambda p: unpooled_power(p1, p, n, alpha=alpha, alternative=alternative)
                - power, p1 + 1e-9, 1 - 1e-9, xtol=1e-14)
    assert_allclose(plan.mde_absolute, p2 - p1, rtol=1e-6)
    assert_allclose(plan.mde_relative, (p2 - p1) / p1, rtol=1e-6)


@pytest.mark.parametrize("row", [r for r in POWER_T_DELTA if r[4] == "two.sided"])
def test_planning_mean_mde_for_a_duration_matches_r(row: tuple) -> None:
    n, sd, alpha, power, _alt, r_delta = row
    plan = planning.plan_for_duration(
        inputs(kind="mean", baseline=10.0, sd=sd, alpha=alpha, power=power, relative=False,
               daily_traffic=n / 5), days=10)
    assert_allclose(plan.mde_absolute, r_delta, rtol=1e-6)


def test_planning_modes_agree_with_each_other() -> None:
    base = inputs()
    plan = planning.plan_sample_size(base)
    assert planning.plan_for_sample(base, n_per_variant=plan.n_control).power >= base.power
    assert planning.plan_for_sample(base, n_per_variant=plan.n_control - 50).power < base.power
    assert planning.plan_for_duration(base, days=plan.days).mde_absolute <= base.mde_absolute


def test_planning_too_short_a_duration_is_explained() -> None:
    with pytest.raises(InvalidInput, match="fewer than 2 users"):
        planning.plan_for_duration(inputs(daily_traffic=1), days=1)
    tiny = planning.plan_for_duration(inputs(baseline=0.5, daily_traffic=4, power=0.99), days=1)
    assert tiny.mde_absolute is None and tiny.effect_text == "none"
    assert "too few to detect any effect" in tiny.summary


# --------------------------------------------------------------------------- the sentence


def test_planning_summary_sentence_reads_like_the_issue() -> None:
    plan = planning.plan_sample_size(inputs(baseline=0.21, mde=0.05, daily_traffic=4200))
    n = unpooled_n_control_ceil(0.21, 0.2205)  # statsmodels normal_power (unpooled z-test)
    assert plan.days == math.ceil(n / 2100) == 12
    assert plan.summary == (
        f"With 4,200 users a day you can detect a 5% relative lift in 12 days ({n:,} users per "
        f"variant, {2 * n:,} in total; 80% power, two-sided, alpha 0.05)."
    )


def test_planning_summary_sentence_other_modes() -> None:
    absolute = planning.plan_sample_size(inputs(mde=0.01, relative=False, exposure=0.5,
                                                weights=(0.34, 0.33, 0.33),
                                                alternative="greater"))
    assert "50% of them exposed" in absolute.summary
    assert "a 1 percentage-point increase" in absolute.summary
    assert "one-sided" in absolute.summary and "2 treatments each at alpha 0.025" in (
        absolute.summary)
    powered = planning.plan_for_sample(inputs(), n_per_variant=5000)
    assert powered.summary.startswith("With 5,000 users per variant, 10,000 in total, you have a")
    assert f"{powered.power:.0%} chance (power) to detect a 10% relative lift" in powered.summary
    mean = planning.plan_sample_size(inputs(kind="mean", baseline=12, sd=24, mde=0.5,
                                            relative=False, alternative="less"))
    assert "a decrease of 0.5" in mean.summary


# --------------------------------------------------------------------------- curves


def test_planning_power_curve_rises_through_the_plan() -> None:
    plan = planning.plan_sample_size(inputs())
    curve = planning.power_curve(plan)
    assert len(curve.x) > 20 and curve.x[0] == 2
    assert all(b >= a for a, b in zip(curve.y, curve.y[1:], strict=False))
    # the marked point sits on the curve: R power at the plan's n reaches the target
    at_plan = np.interp(plan.n_control, curve.x, curve.y)
    assert_allclose(at_plan, 0.8, atol=0.01)
    assert curve.marker_x == plan.n_control and curve.marker_y == 0.8


def test_planning_mde_curve_falls_with_duration_and_marks_the_plan() -> None:
    plan = planning.plan_for_duration(inputs(daily_traffic=2000), days=14)
    curve = planning.mde_curve(plan)
    assert curve.x[0] == 1 and curve.x[-1] == 28
    assert all(b < a for a, b in zip(curve.y, curve.y[1:], strict=False))
    assert_allclose(curve.y[curve.x.index(14)], plan.mde_relative, rtol=1e-9)
    assert curve.marker_y == plan.mde_relative and curve.y_label.startswith("Detectable relative")


# --------------------------------------------------------------------------- validation


def test_planning_inputs_report_every_problem() -> None:
    with pytest.raises(InvalidInput) as err:
        planning.make_inputs(baseline=1.5, mde=0.1, daily_traffic=100, weights=(0.5, 0.6))
    assert len(err.value.problems) == 2
    assert any("between 0% and 100% (it is 150%)" in p for p in err.value.problems)
    assert any("add up to 100% (they add up to 110%)" in p for p in err.value.problems)
    rounded = planning.make_inputs(baseline=0.1, mde=0.1, daily_traffic=100,
                                   weights=(0.3333, 0.3333, 0.3333))
    assert_allclose(rounded.weights, [1 / 3] * 3, rtol=1e-12)
    with pytest.raises(InvalidInput, match="standard deviation"):
        planning.make_inputs(kind="mean", baseline=3, mde=0.1, daily_traffic=100)
    with pytest.raises(InvalidInput, match="mde"):
        planning.make_inputs(baseline=0.1, mde=0, daily_traffic=100)


def test_planning_inputs_stay_in_the_range_a_real_plan_needs() -> None:
    with pytest.raises(InvalidInput) as err:
        inputs(alpha=1e-12, power=0.999999)
    assert any(p.startswith("alpha:") and "1e-06" in p for p in err.value.problems)
    assert any(p.startswith("power:") and "0.9999" in p for p in err.value.problems)
    edge = inputs(kind="mean", baseline=0, sd=1, mde=None, relative=False,
                  alpha=planning.MIN_ALPHA, power=planning.MAX_POWER,
                  weights=(0.05,) * 20)
    started = time.perf_counter()
    plan = planning.plan_for_units(edge, n_control=2)  # the slowest plan still allowed
    assert time.perf_counter() - started < 1.0  # ~10 ms; generous for a loaded machine
    assert plan.mde_absolute is not None and plan.mde_absolute > 1000


def test_planning_solve_past_the_time_budget_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLANNER_TIME_BUDGET_SECONDS", "1e-9")
    get_settings.cache_clear()
    try:
        with pytest.raises(InvalidInput, match=r"within its 1e-09 s budget.*larger alpha"):
            planning.plan_for_units(inputs(kind="mean", baseline=0, sd=1, mde=None,
                                           relative=False), n_control=100)
    finally:
        monkeypatch.delenv("PLANNER_TIME_BUDGET_SECONDS")
        get_settings.cache_clear()
    assert planning.plan_for_units(inputs(kind="mean", baseline=0, sd=1, mde=None,
                                          relative=False), n_control=100).mde_absolute


def test_planning_refuses_a_plan_of_more_than_ten_years() -> None:
    with pytest.raises(InvalidInput, match="larger MDE or more traffic"):
        planning.plan_sample_size(inputs(mde=0.001, daily_traffic=10))


def test_planning_without_a_cap_returns_a_plan_of_any_length() -> None:
    # the backlog's testability: a decade-long plan is "not testable", not an error
    plan = planning.plan_sample_size(inputs(mde=0.001, daily_traffic=10), max_days=None)
    assert plan.days is not None and plan.days > planning.MAX_DAYS
    assert plan.days == math.ceil(plan.n_control / (10 * 0.5))


def test_planning_refuses_an_effect_no_finite_sample_detects() -> None:
    with pytest.raises(InvalidInput, match="no finite sample"):
        planning.plan_sample_size(inputs(kind="mean", baseline=0, sd=1e12, mde=1e-9,
                                         relative=False))


def test_planning_without_traffic_has_no_days() -> None:
    plan = planning.plan_sample_size(inputs(daily_traffic=None))
    assert plan.days is None
    assert plan.n_control == planning.plan_sample_size(inputs()).n_control
    assert plan.summary.startswith(f"With {plan.n_per_variant:,} users per variant, ")
    assert "you can detect a 10% relative lift (80% power, two-sided" in plan.summary
    assert planning.mde_curve(plan).x == ()
    with pytest.raises(InvalidInput, match="daily_traffic"):
        planning.plan_for_duration(inputs(daily_traffic=None), days=14)


def test_planning_effect_for_units_is_the_duration_modes_effect() -> None:
    by_days = planning.plan_for_duration(inputs(daily_traffic=1000), days=14)
    by_units = planning.plan_for_units(inputs(mde=None, daily_traffic=None),
                                       n_control=14 * 1000 * 0.5)
    assert by_units.mde_absolute == by_days.mde_absolute
    assert by_units.days is None and "in total, you can detect a 14.7% relative" in by_units.summary
    none = planning.plan_for_units(inputs(mde=None, power=0.99, baseline=0.5), n_control=2)
    assert none.mde_absolute is None and "too few to detect any effect" in none.summary
    with pytest.raises(InvalidInput, match="mde"):
        planning.plan_sample_size(inputs(mde=None))


def test_planning_weights_for_ratio_give_the_ratio() -> None:
    assert_allclose(planning.weights_for_ratio(4), (0.2, 0.8), rtol=1e-12)
    assert_allclose(planning.weights_for_ratio(0.5, 3), (0.5, 0.25, 0.25), rtol=1e-12)
    assert_allclose(planning.make_inputs(baseline=0.1, mde=0.1,
                                         weights=planning.weights_for_ratio(0.25)).ratio, 0.25)


def test_planning_refuses_an_impossible_treatment_rate() -> None:
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        planning.plan_sample_size(inputs(baseline=0.9, mde=0.2))


# --------------------------------------------------------------------------- observed baselines


@pytest.fixture(scope="module")
def demo_session(demo_db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(demo_db_url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


@pytest.mark.parametrize("name, metric", [("Annual plan discount", "revenue_per_user"),
                                          ("One-page checkout", "checkout_conversion")])
def test_planning_observed_baseline_matches_the_raw_demo_data(
    demo_session: Session, name: str, metric: str
) -> None:
    exp = registry.get_experiment_by_name(demo_session, name=name)
    assert exp.actual_start is not None and exp.actual_end is not None
    raw = generate_units(name, DEMO_TRUTH[name], start=exp.actual_start, last=exp.actual_end)
    control = raw[metric][raw["variant"] == "control"].astype(float)
    found = planning.observed_baseline(demo_session, experiment_id=exp.id, metric=metric)
    assert found.n == control.size
    assert_allclose(found.mean, control.mean(), rtol=1e-9)
    assert_allclose(found.sd, control.std(ddof=1), rtol=1e-6)
    days = (exp.actual_end - exp.actual_start).days + 1
    assert_allclose(found.daily_traffic, raw["variant"].size / days, rtol=1e-9)
    assert found.kind == catalogue.get_metric(demo_session, name=metric).kind
    assert name in found.description


def test_planning_observed_baseline_without_data_says_what_to_do(demo_session: Session) -> None:
    social = registry.get_experiment_by_name(demo_session, name="Social login")  # proposed
    with pytest.raises(NotFound, match="type the baseline in"):
        planning.observed_baseline(demo_session, experiment_id=social.id, metric="signup_rate")
    sources = planning.baseline_sources(demo_session)
    assert "Social login" not in {s.experiment_name for s in sources}
    checkout = next(s for s in sources if s.experiment_name == "Checkout button colour")
    assert checkout.metrics[0] == "checkout_conversion"  # the primary metric first


# --------------------------------------------------------------------------- saving a plan


@pytest.fixture
def proposed(session: Session) -> registry.ExperimentView:
    catalogue.create_metric(session, data={"name": "conversion", "kind": "binomial"},
                            actor=ADMIN)
    return registry.create_experiment(session, actor=EDITOR, data={
        "name": "Green button", "owner": "maria", "primary_metric": "conversion",
        "hypothesis": "A green button lifts conversion.",
        "variants": [{"name": "control", "weight": 0.5}, {"name": "green", "weight": 0.5}],
    })


def test_planning_save_plan_writes_the_plan_and_audits_it(
    session: Session, proposed: registry.ExperimentView
) -> None:
    plan = planning.plan_sample_size(inputs(mde=0.05, alpha=0.01, power=0.9))
    saved = planning.save_plan(session, experiment_id=proposed.id, plan=plan,
                               analysis_mode="sequential", expected_version=proposed.version,
                               actor=EDITOR)
    assert saved.planned_sample_size == plan.n_per_variant
    assert (saved.mde, saved.alpha, saved.power, saved.analysis_mode) == (
        0.05, 0.01, 0.9, "sequential")
    assert saved.version == proposed.version + 1
    last = registry.audit_history(session, experiment_id=proposed.id)[-1]
    assert last.action == "update" and last.actor == EDITOR.name
    assert last.changes["planned_sample_size"] == [None, plan.n_per_variant]
    assert saved.alternative == "two-sided" and "alternative" not in last.changes


def test_planning_save_plan_keeps_the_test_direction_it_was_sized_for(
    session: Session, proposed: registry.ExperimentView
) -> None:
    """A one-sided plan needs fewer units; saved onto an experiment,
    the experiment's primary is tested one-sided too, so the sample size fits the test."""
    one = planning.plan_sample_size(inputs(alternative="greater"))
    two = planning.plan_sample_size(inputs())
    assert one.n_per_variant < two.n_per_variant
    saved = planning.save_plan(session, experiment_id=proposed.id, plan=one,
                               analysis_mode="fixed", expected_version=proposed.version,
                               actor=EDITOR)
    assert (saved.planned_sample_size, saved.alternative) == (one.n_per_variant, "greater")
    last = registry.audit_history(session, experiment_id=proposed.id)[-1]
    assert last.changes["alternative"] == ["two-sided", "greater"]
    down = planning.plan_sample_size(inputs(alternative="less"))
    with pytest.raises(InvalidInput, match="conversion is higher-is-better"):
        planning.save_plan(session, experiment_id=proposed.id, plan=down, analysis_mode="fixed",
                           expected_version=saved.version, actor=EDITOR)


def test_planning_save_plan_refusals(session: Session, proposed: registry.ExperimentView) -> None:
    plan = planning.plan_sample_size(inputs())
    with pytest.raises(PermissionDenied):
        planning.save_plan(session, experiment_id=proposed.id, plan=plan, analysis_mode="fixed",
                           expected_version=proposed.version, actor=VIEWER)
    three = planning.plan_sample_size(inputs(weights=(0.34, 0.33, 0.33)))
    with pytest.raises(InvalidInput, match="set the number of variants to 2"):
        planning.save_plan(session, experiment_id=proposed.id, plan=three, analysis_mode="fixed",
                           expected_version=proposed.version, actor=EDITOR)
    running = registry.transition_experiment(
        session, experiment_id=proposed.id, to_status="running",
        expected_version=planning.save_plan(
            session, experiment_id=proposed.id, plan=plan, analysis_mode="fixed",
            expected_version=proposed.version, actor=EDITOR).version,
        actor=EDITOR, on=date.today() - timedelta(days=1))
    with pytest.raises(RuleViolation, match="only be saved onto a proposed experiment"):
        planning.save_plan(session, experiment_id=running.id, plan=plan, analysis_mode="fixed",
                           expected_version=running.version, actor=EDITOR)


@pytest.fixture
def three_way(session: Session) -> registry.ExperimentView:
    """A proposed experiment split 34/33/33."""
    catalogue.create_metric(session, data={"name": "conversion", "kind": "binomial"},
                            actor=ADMIN)
    return registry.create_experiment(session, actor=EDITOR, data={
        "name": "Three ways", "owner": "maria", "primary_metric": "conversion",
        "hypothesis": "Either new copy lifts conversion.",
        "variants": [{"name": "control", "weight": 0.34}, {"name": "short", "weight": 0.33},
                     {"name": "long", "weight": 0.33}],
    })


def test_planning_save_plan_refuses_a_plan_sized_for_another_split(
    session: Session, three_way: registry.ExperimentView
) -> None:
    """Issue 23: a 50/25/25 plan saved onto a 34/33/33 experiment would read "100% of plan"
    with about two-thirds of the planned power. It is refused in words naming both splits, the
    users per variant the experiment's split needs and the power the plan would have there;
    nothing is written."""
    plan = planning.plan_sample_size(inputs(mde=0.05, weights=(0.5, 0.25, 0.25)))
    at_split = planning.plan_sample_size(inputs(mde=0.05, weights=(0.34, 0.33, 0.33)))
    # every arm at 100% of plan: the treatments (33%) at the planned size, the control at 34/33
    reached = planning.plan_for_sample(inputs(mde=0.05, weights=(0.34, 0.33, 0.33)),
                                       n_per_variant=plan.n_per_variant * 0.34 / 0.33).power
    assert at_split.n_per_variant > plan.n_per_variant and 0.6 < reached < 0.7
    with pytest.raises(RuleViolation) as refused:
        planning.save_plan(session, experiment_id=three_way.id, plan=plan,
                           analysis_mode="fixed", expected_version=three_way.version,
                           actor=EDITOR)
    assert refused.value.message == (
        "This plan is sized for a 50/25/25 split, but 'Three ways' splits its traffic "
        f"34/33/33. At 34/33/33 it needs {at_split.n_per_variant:,} users per variant, not "
        f"{plan.n_per_variant:,}: with {plan.n_per_variant:,} its power would be "
        f"{round(reached * 100)}%, not 80%. Size the plan for a 34/33/33 split, or set the "
        "experiment's split to 50/25/25.")
    assert refused.value.http_status == 409
    unchanged = registry.get_experiment(session, experiment_id=three_way.id)
    assert (unchanged.version, unchanged.planned_sample_size) == (three_way.version, None)
    # a plan fits the split it was sized for; equal thirds are 0.67 points off 34/33/33
    assert planning.split_mismatch(at_split, three_way) is None
    thirds = planning.plan_sample_size(inputs(weights=(0.3333, 0.3333, 0.3333)))
    assert (planning.split_mismatch(thirds, three_way) or "").startswith(
        "This plan is sized for a 33.33/33.33/33.33 split")


def test_planning_save_plan_can_set_the_experiments_split_to_the_plans(
    session: Session, three_way: registry.ExperimentView
) -> None:
    plan = planning.plan_sample_size(inputs(mde=0.05, weights=(0.5, 0.25, 0.25)))
    saved = planning.save_plan(session, experiment_id=three_way.id, plan=plan,
                               analysis_mode="fixed", expected_version=three_way.version,
                               actor=EDITOR, set_split=True)
    assert [(v.name, v.weight) for v in saved.variants] == [
        ("control", 0.5), ("short", 0.25), ("long", 0.25)]
    assert saved.planned_sample_size == plan.n_per_variant
    assert saved.version == three_way.version + 1  # one audited update
    last = registry.audit_history(session, experiment_id=three_way.id)[-1]
    assert last.action == "update" and {"variants", "planned_sample_size"} <= set(last.changes)
    assert planning.split_mismatch(plan, saved) is None


# --------------------------------------------------------------------------- issue 23, round 2


def test_planning_power_curve_counts_users_as_the_headline_does() -> None:
    """At 50/25/25 the control needs twice a treatment's users: the headline's users per
    variant are the smallest arm's, and the power curve's x axis and marker count the same."""
    plan = planning.plan_sample_size(inputs(mde=0.05, weights=(0.5, 0.25, 0.25)))
    assert plan.n_control > plan.n_per_variant
    curve = planning.power_curve(plan)
    assert curve.marker_x == plan.n_per_variant and curve.x_label == "Users per variant"
    assert_allclose(np.interp(plan.n_per_variant, curve.x, curve.y), 0.8, atol=0.01)
    assert curve.x[0] == 2  # 2 users in the smallest arm
    again = planning.plan_for_sample(  # "users per variant" typed in the power mode
        plan.inputs, n_per_variant=planning.control_units(plan.inputs, plan.n_per_variant))
    assert again.n_per_variant == plan.n_per_variant and again.power >= 0.8


def test_planning_names_arms_as_the_experiments_variants() -> None:
    plan = planning.plan_sample_size(inputs(weights=(0.34, 0.33, 0.33)))
    assert [v.name for v in plan.variants] == ["control", "treatment_1", "treatment_2"]
    named = planning.name_arms(plan, ["control", "short", "long"])
    assert [v.name for v in named.variants] == ["control", "short", "long"]
    assert [v.units for v in named.variants] == [v.units for v in plan.variants]
    assert planning.name_arms(plan, ["control", "b"]) == plan  # another number of arms


def test_planning_save_plan_stores_its_inputs_and_sets_the_planned_dates(
    session: Session, proposed: registry.ExperimentView
) -> None:
    """Issue 23: the plan's inputs (baseline, sd, ...) are saved with it and read back by the
    Planner; the planned dates follow the duration it computed, from today."""
    typed = inputs(kind="mean", baseline=12.5, sd=30.0, mde=0.04, daily_traffic=2500,
                   exposure=0.5, r_squared=0.35)
    plan = planning.plan_sample_size(typed)
    today = date(2027, 3, 1)
    saved = planning.save_plan(session, experiment_id=proposed.id, plan=plan,
                               analysis_mode="fixed", expected_version=proposed.version,
                               actor=EDITOR, today=today)
    assert saved.plan_inputs is not None and saved.plan_inputs["sd"] == 30.0
    assert saved.plan_inputs["r_squared"] == 0.35  # the expected variance reduction too
    assert planning.make_inputs(**saved.plan_inputs) == typed
    assert (saved.planned_start, saved.planned_end) == (
        today, today + timedelta(days=plan.days - 1))
    draft = planning.plan_draft(session, experiment_id=proposed.id)
    assert draft.values == typed.model_dump() and "saved plan's inputs" in draft.source
    assert draft.variant_names == ("control", "green")
    # a planned start stays; the end follows the new plan
    longer = planning.plan_sample_size(typed.model_copy(update={"mde": 0.02}))
    start = date(2027, 4, 1)
    moved = registry.update_experiment(session, experiment_id=proposed.id,
                                       changes={"planned_start": start},
                                       expected_version=saved.version, actor=EDITOR)
    again = planning.save_plan(session, experiment_id=proposed.id, plan=longer,
                               analysis_mode="fixed", expected_version=moved.version,
                               actor=EDITOR, today=today)
    assert (again.planned_start, again.planned_end) == (
        start, start + timedelta(days=longer.days - 1))


def test_planning_draft_takes_the_primary_metrics_observed_baseline(
    demo_session: Session
) -> None:
    """A proposed experiment without a saved plan opens on its primary metric's observed
    control data (from an experiment that measured it), with its own MDE, alpha and split."""
    social = registry.get_experiment_by_name(demo_session, name="Social login")
    assert social.status == "proposed" and social.plan_inputs is None
    draft = planning.plan_draft(demo_session, experiment_id=social.id)
    source = next(s for s in planning.baseline_sources(demo_session)
                  if social.primary_metric in s.metrics)
    seen = planning.observed_baseline(demo_session, experiment_id=source.experiment_id,
                                      metric=social.primary_metric)
    assert draft.values["baseline"] == seen.mean
    assert draft.values["daily_traffic"] == seen.daily_traffic
    assert draft.values["alpha"] == social.alpha
    assert draft.values["weights"] == tuple(v.weight for v in social.variants)
    assert draft.source == f"Baseline: {seen.description}"
    with pytest.raises(NotFound):
        planning.plan_draft(demo_session, experiment_id=999_999)
