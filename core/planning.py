"""The experiment planner as a service: inputs -> sample sizes, duration, curves and a sentence.

Everything the Planner page shows is computed here (the page only reads widgets and renders):

* :func:`plan_sample_size` — units per variant, total and expected days for a target MDE;
* :func:`plan_for_duration` — the inverse: the smallest detectable effect in a fixed number of
  days (or, equivalently, for the traffic those days bring);
* :func:`plan_for_sample` — the inverse: the power reached with a given number of units;
* :func:`plan_for_units` — the inverse: the smallest detectable effect with a given number of
  units (what :func:`plan_for_duration` finds for the units its days bring);
* :func:`duration` — the days until every arm has its units at a traffic split;
* :func:`power_curve` and :func:`mde_curve` — the curve data behind the two plots;
* :func:`observed_baseline` — a baseline (rate, or mean and SD) and daily traffic taken from a
  catalogue metric's observed data in an existing experiment (the control arm's stored daily
  sufficient statistics);
* :func:`save_plan` — the plan written onto a proposed experiment through
  :func:`core.registry.update_experiment` (audited like any edit), with the test direction it
  was sized for (the experiment's ``alternative``); a plan sized for another traffic split than
  the experiment's is refused in words (:func:`split_mismatch`), or sets the experiment's split
  to its own when asked.

The Planner page, ``POST /api/v1/planner/*`` and the backlog's testability check all size an
experiment through these functions, so each door gives the same answer.

All statistics come from :mod:`core.stats`, which sizes the tests the engine runs: the unpooled
Wald z-test for conversion rates (Chow, Shao & Wang 2008, section 4.2) and Welch's t-test for
means (noncentral t with the Welch-Satterthwaite df; R ``power.t.test`` at equal arms). With
more than two variants every treatment is compared with the control at alpha / (variants - 1)
(Bonferroni), and the treatment with the smallest traffic share binds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.orm import Session

from core import format as fmt
from core.auth import Actor
from core.config import get_settings
from core.errors import InvalidInput, NotFound, RuleViolation
from core.registry.fields import ExperimentView, validation_problems
from core.registry.lifecycle import update_experiment
from core.registry.listing import all_experiments, get_experiment, load_experiment
from core.stats import (
    SufficientStats,
    duration_days,
    mde_mean,
    mde_proportion,
    power_mean,
    power_proportion,
    sample_size_mean,
    sample_size_proportion,
    time_budget,
)
from core.types import Alternative, AnalysisMode, MetricKind, PlanMode
from db import metric_repository as mrepo
from db import repositories as repo

CURVE_POINTS = 60
"""Points per curve: smooth in plotly, cheap to compute (the planner functions are vectorised)."""
SPLIT_TOLERANCE = 0.005
"""A traffic split within half a percentage point of 100% is rounding, and is rescaled."""
MAX_DAYS = 3650
"""Plans longer than ten years are refused: the MDE is unreachable with this traffic."""
MAX_UNITS = 2**53
"""Sample sizes beyond this are no finite answer (the effect is too small to detect)."""
MIN_ALPHA = 1e-6
"""The smallest significance level a plan takes. Experiments test at 0.05 or 0.01, 0.0025 after a
Bonferroni split over 20 arms; a "five sigma" discovery is 5.7e-7 two-sided. Lower levels
plan nothing real and only make the solvers work (docs/api.md, "Under load and faults")."""
MAX_POWER = 0.9999
"""The highest target power a plan takes (plans use 0.8 to 0.95, rarely 0.99); past it the
sample grows without a use and the noncentral t is solved deep in its tail."""


class PlanInputs(BaseModel):
    """What the analyst types in (or takes from observed data). Validated on construction.

    ``baseline`` is the control's conversion rate (binomial) or mean (mean metrics); ``sd`` the
    per-unit standard deviation (mean metrics only). ``mde`` is relative to the baseline when
    ``relative`` (0.05 = +5%), else absolute (rate points or metric units); the modes that solve
    for the effect leave it out. ``weights`` is the traffic split, control first, summing to 1.
    ``daily_traffic`` is the eligible users a day (without it a plan has no duration);
    ``exposure`` is the share of them enrolled. ``r_squared`` is the expected variance
    reduction of a mean metric, in [0, 1): the share of its variance a pre-experiment covariate
    explains (CUPED), so the test runs on sd^2 (1 - R^2) (:func:`core.stats.sample_size_mean`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: MetricKind = "binomial"
    baseline: float
    sd: float | None = Field(default=None, gt=0)
    mde: float | None = Field(default=None, gt=0)
    relative: bool = True
    alpha: float = 0.05
    power: float = 0.8
    alternative: Alternative = "two-sided"
    weights: tuple[float, ...] = (0.5, 0.5)
    daily_traffic: float | None = Field(default=None, gt=0)
    exposure: float = Field(default=1.0, gt=0, le=1)
    r_squared: float = 0.0

    @field_validator("r_squared")
    @classmethod
    def _r_squared_in_range(cls, r_squared: float) -> float:
        if not 0 <= r_squared < 1:
            raise ValueError(f"give the expected variance reduction (R²) as a share from 0 up "
                             f"to (not including) 1, e.g. 0.3 when CUPED removes 30% of the "
                             f"variance; it is {r_squared:g}")
        return r_squared

    @field_validator("alpha")
    @classmethod
    def _alpha_in_range(cls, alpha: float) -> float:
        if not MIN_ALPHA <= alpha < 0.5:
            raise ValueError(f"give a significance level from {MIN_ALPHA:g} up to (not "
                             f"including) 0.5; it is {alpha:g}")
        return alpha

    @field_validator("power")
    @classmethod
    def _power_in_range(cls, power: float) -> float:
        if not 0.5 < power <= MAX_POWER:
            raise ValueError(f"give a target power above 0.5 and at most {MAX_POWER:g}; it is "
                             f"{power:g}")
        return power

    @model_validator(mode="before")
    @classmethod
    def _normalise_split(cls, data: Any) -> Any:
        """A split typed as rounded percentages (33.33, 33.33, 33.33) is scaled to sum to 1."""
        if isinstance(data, dict) and data.get("weights"):
            try:
                weights = [float(w) for w in data["weights"]]
            except (TypeError, ValueError):
                return data
            total = sum(weights)
            if all(w > 0 for w in weights) and abs(total - 1) <= SPLIT_TOLERANCE:
                data = {**data, "weights": tuple(w / total for w in weights)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> PlanInputs:
        problems = []
        if self.kind == "binomial" and not 0 < self.baseline < 1:
            problems.append("baseline: a conversion rate must lie strictly between 0% and "
                            f"100% (it is {fmt.percent(self.baseline, 4, trim=True)})")
        if self.kind == "mean" and self.sd is None:
            problems.append("sd: a mean metric needs its standard deviation per unit")
        if self.kind == "binomial" and self.r_squared > 0:
            problems.append("r_squared: variance reduction (CUPED) applies to mean metrics; "
                            "plan a conversion rate with 0")
        if self.kind == "mean" and self.relative and self.baseline == 0:
            problems.append("baseline: a relative MDE needs a non-zero baseline mean")
        if len(self.weights) < 2 or any(w <= 0 for w in self.weights):
            problems.append("weights: give a positive traffic share for each of at least 2 "
                            "variants")
        elif not math.isclose(sum(self.weights), 1.0, abs_tol=1e-6):
            problems.append(f"weights: the shares must add up to 100% (they add up to "
                            f"{fmt.percent(sum(self.weights), 4, trim=True)})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def variants(self) -> int:
        return len(self.weights)

    @property
    def ratio(self) -> float:
        """n_treatment / n_control of the binding comparison (the smallest treatment share)."""
        return min(self.weights[1:]) / self.weights[0]

    @property
    def daily_enrolled(self) -> float | None:
        return None if self.daily_traffic is None else self.daily_traffic * self.exposure

    @property
    def mde_absolute(self) -> float | None:
        if self.mde is None:
            return None
        return self.mde * abs(self.baseline) if self.relative else self.mde


def weights_for_ratio(ratio: float, variants: int = 2) -> tuple[float, ...]:
    """The traffic split in which every treatment gets ``ratio`` times the control's units."""
    share = 1.0 / (1.0 + (variants - 1) * ratio)
    return (share, *[ratio * share] * (variants - 1))


def make_inputs(**values: object) -> PlanInputs:
    """Validate planner inputs; every problem is raised together as :class:`InvalidInput`."""
    try:
        return PlanInputs.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc)) from None


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for p in validation_problems(exc):
        # the cross-field check reports "input: a: ...; b: ..." — split it back up
        out.extend(p.removeprefix("input: ").split("; ") if p.startswith("input: ") else [p])
    return out


@dataclass(frozen=True)
class VariantPlan:
    name: str
    weight: float
    units: int


@dataclass(frozen=True)
class Plan:
    """A planner answer; ``n_per_variant`` is what is stored as the planned sample size."""

    mode: PlanMode
    inputs: PlanInputs
    n_control: int
    """Units the control arm needs (the binding comparison's control)."""
    variants: tuple[VariantPlan, ...]
    n_per_variant: int
    """Units of the smallest arm: every arm reaches its own need when this one does."""
    total: int
    days: int | None
    """None when the inputs give no daily traffic."""
    mde_absolute: float | None
    """None when no effect is detectable with this sample (inverse mode)."""
    mde_relative: float | None
    power: float
    summary: str

    @property
    def effect_text(self) -> str:
        """The detectable effect as the analyst expressed it: "5% relative", "0.5 pp", "none"."""
        if self.mde_absolute is None:
            return "none"
        if self.inputs.relative and self.mde_relative is not None:
            return f"{fmt.percent(self.mde_relative, sig=3)} relative"
        if self.inputs.kind == "binomial":
            return f"{self.mde_absolute * 100:.3g} pp"
        return f"{fmt.number(self.mde_absolute)}"


def _variant_names(k: int) -> list[str]:
    if k == 2:
        return ["control", "treatment"]
    return ["control", *[f"treatment_{i}" for i in range(1, k)]]


def name_arms(plan: Plan, names: Sequence[str]) -> Plan:
    """The plan with its arms named as an experiment names its variants (control first); the
    generic names stay when the numbers of arms differ."""
    if len(names) != len(plan.variants):
        return plan
    return replace(plan, variants=tuple(replace(arm, name=name)
                                        for arm, name in zip(plan.variants, names, strict=True)))


def control_units(inputs: PlanInputs, smallest_arm: float) -> float:
    """The control's units when the smallest arm has ``smallest_arm`` (a plan's
    ``n_per_variant``, what the page calls users per variant)."""
    return smallest_arm * inputs.weights[0] / min(inputs.weights)


def duration(
    n_per_variant: float, *, daily_traffic: float, exposure: float = 1.0,
    weights: Sequence[float] | None = None, variants: int = 2,
) -> int:
    """Days until every arm has ``n_per_variant`` units (at least 1): the arm with the smallest
    share binds (:func:`core.stats.duration_days`). A plan's ``n_per_variant`` is its smallest
    arm's units, so this is the plan's duration too. Bad inputs raise :class:`InvalidInput`."""
    try:
        days = duration_days(n_per_variant, daily_traffic, exposure=exposure,
                             variants=len(weights) if weights else variants, weights=weights)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return max(int(days), 1)


def _arms(
    inputs: PlanInputs, n_control: float
) -> tuple[tuple[VariantPlan, ...], int, int | None]:
    """Units per arm when the control has ``n_control``, the total, and the days to get there
    (None without daily traffic)."""
    w0 = inputs.weights[0]
    units = [math.ceil(round(n_control * w / w0, 6)) for w in inputs.weights]
    arms = tuple(
        VariantPlan(name, w, u)
        for name, w, u in zip(_variant_names(inputs.variants), inputs.weights, units, strict=True)
    )
    total = sum(units)
    if inputs.daily_traffic is None:
        return arms, total, None
    # every arm fills in proportion to its share: the smallest one's need binds
    smallest = n_control * min(inputs.weights) / w0
    days = duration(smallest, daily_traffic=inputs.daily_traffic, exposure=inputs.exposure,
                    weights=inputs.weights)
    return arms, total, days


def _common(inputs: PlanInputs, *, with_power: bool) -> dict[str, Any]:
    """The keyword arguments every core.stats planner function shares."""
    out: dict[str, Any] = {"alpha": inputs.alpha, "alternative": inputs.alternative,
                           "ratio": inputs.ratio, "variants": inputs.variants}
    if with_power:
        out["power"] = inputs.power
    return out


def _mde_given(inputs: PlanInputs) -> float:
    if inputs.mde is None:
        raise InvalidInput("mde: give the smallest effect to detect (a number > 0)")
    return inputs.mde


def _n_control(inputs: PlanInputs) -> int:
    common = _common(inputs, with_power=True)
    mde = _mde_given(inputs)
    try:
        with np.errstate(all="ignore"), _budget():
            if inputs.kind == "binomial":
                n = sample_size_proportion(inputs.baseline, mde, relative=inputs.relative,
                                           round_up=False, **common)
            else:
                n = sample_size_mean(inputs.sd, mde, baseline_mean=inputs.baseline,
                                     relative=inputs.relative, round_up=False,
                                     r_squared=inputs.r_squared, **common)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if not math.isfinite(n) or n > MAX_UNITS:
        raise InvalidInput(
            "mde: no finite sample detects an effect this small with this variance: choose a "
            "larger mde"
        )
    return math.ceil(round(n, 9))


def _power(inputs: PlanInputs, n_control: float, mde_absolute: float) -> float:
    common = _common(inputs, with_power=False)
    with _budget():
        if inputs.kind == "binomial":
            return float(power_proportion(inputs.baseline, mde_absolute, n_control,
                                          relative=False, **common))
        return float(power_mean(inputs.sd, mde_absolute, n_control, r_squared=inputs.r_squared,
                                **common))


def _mde(inputs: PlanInputs, n_control: float | np.ndarray) -> float | np.ndarray:
    """Absolute MDE (NaN where unreachable) for ``n_control`` control units."""
    common = _common(inputs, with_power=True)
    with _budget():
        if inputs.kind == "binomial":
            return mde_proportion(inputs.baseline, n_control, **common)
        return mde_mean(inputs.sd, n_control, r_squared=inputs.r_squared, **common)


def _budget() -> Any:
    """Each solve gets PLANNER_TIME_BUDGET_SECONDS; past it the plan is refused
    (:class:`core.stats.BudgetExceeded`, an InvalidInput for the callers) saying what to change."""
    return time_budget(get_settings().planner_time_budget_seconds)


def _relative(inputs: PlanInputs, absolute: float | None) -> float | None:
    if absolute is None or inputs.baseline == 0:
        return None
    return absolute / abs(inputs.baseline)


# --------------------------------------------------------------------------- the sentence


def _effect_phrase(inputs: PlanInputs, absolute: float | None, relative: float | None) -> str:
    if absolute is None:
        return "no effect at all"
    if inputs.relative and relative is not None:
        direction = "drop" if inputs.alternative == "less" else "lift"
        return f"a {fmt.percent(relative, sig=3)} relative {direction}"
    change = {"two-sided": "change", "greater": "increase", "less": "decrease"}[inputs.alternative]
    if inputs.kind == "binomial":
        return f"a {absolute * 100:.3g} percentage-point {change}"
    return f"{'an' if change == 'increase' else 'a'} {change} of {fmt.number(absolute)}"


def _traffic(inputs: PlanInputs) -> str:
    exposed = "" if inputs.exposure == 1 else f", {fmt.percent(inputs.exposure, 0)} of them exposed"
    return f"{fmt.count(inputs.daily_traffic)} users a day{exposed}"


def _tail(inputs: PlanInputs) -> str:
    sided = "two-sided" if inputs.alternative == "two-sided" else "one-sided"
    k = inputs.variants - 1
    arms = "" if k == 1 else f", {k} treatments each at alpha {inputs.alpha / k:.3g}"
    cuped = ("" if inputs.r_squared == 0 else
             f", CUPED removing {fmt.percent(inputs.r_squared, sig=3)} of the variance")
    return f"{sided}, alpha {inputs.alpha:g}{arms}{cuped}"


def _days(days: int) -> str:
    return fmt.plural(days, "day")


def summary_sentence(plan: Plan) -> str:
    """The plain-language answer, e.g. "With 4,200 users a day you can detect a 5% relative lift
    in 12 days (...)"; without daily traffic, the users alone."""
    i = plan.inputs
    effect = _effect_phrase(i, plan.mde_absolute, plan.mde_relative)
    sizes = f"{plan.n_per_variant:,} users per variant, {plan.total:,} in total"
    if plan.mode == "power":
        takes = "" if plan.days is None else f"; at {_traffic(i)} that takes {_days(plan.days)}"
        return (f"With {sizes}, you have a {fmt.percent(plan.power, 0)} chance (power) to "
                f"detect {effect} ({_tail(i)}){takes}.")
    if plan.days is None:
        if plan.mde_absolute is None:
            return (f"{sizes[0].upper()}{sizes[1:]} are too few to detect any effect at "
                    f"{fmt.percent(i.power, 0)} power: add users.")
        return (f"With {sizes}, you can detect {effect} ({fmt.percent(i.power, 0)} power, "
                f"{_tail(i)}).")
    if plan.mde_absolute is None:
        return (f"With {_traffic(i)}, {_days(plan.days)} ({sizes}) are too few to detect any "
                f"effect at {fmt.percent(i.power, 0)} power: run longer or expose more traffic.")
    return (f"With {_traffic(i)} you can detect {effect} in {_days(plan.days)} ({sizes}; "
            f"{fmt.percent(i.power, 0)} power, {_tail(i)}).")


# --------------------------------------------------------------------------- the modes


def _finish(plan: Plan) -> Plan:
    return replace(plan, summary=summary_sentence(plan))


def plan_sample_size(inputs: PlanInputs, *, max_days: int | None = MAX_DAYS) -> Plan:
    """Units per variant, total and days needed to detect ``inputs.mde`` at ``inputs.power``.

    A plan longer than ``max_days`` is refused (:class:`InvalidInput`); ``None`` returns it
    however long (the backlog reports such an idea as not testable).
    """
    n_control = _n_control(inputs)
    arms, total, days = _arms(inputs, n_control)
    if days is not None and max_days is not None and days > max_days:
        raise InvalidInput(
            f"This plan needs {days:,} days ({n_control:,} users per variant at "
            f"{fmt.count(inputs.daily_enrolled)} enrolled a day): choose a larger MDE or more "
            "traffic"
        )
    return _finish(Plan(
        mode="sample_size", inputs=inputs, n_control=n_control, variants=arms,
        n_per_variant=min(a.units for a in arms), total=total, days=days,
        mde_absolute=inputs.mde_absolute, mde_relative=_relative(inputs, inputs.mde_absolute),
        power=inputs.power, summary="",
    ))


def _detectable(inputs: PlanInputs, n_control: float, days: int | None) -> Plan:
    try:
        absolute = float(_mde(inputs, n_control))
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    mde_abs = None if math.isnan(absolute) else absolute
    arms, total, filled = _arms(inputs, n_control)
    return _finish(Plan(
        mode="duration", inputs=inputs, n_control=math.floor(n_control), variants=arms,
        n_per_variant=min(a.units for a in arms), total=total,
        days=filled if days is None else days, mde_absolute=mde_abs,
        mde_relative=_relative(inputs, mde_abs), power=inputs.power, summary="",
    ))


def plan_for_units(inputs: PlanInputs, *, n_control: float) -> Plan:
    """Inverse mode: the smallest effect detectable at ``inputs.power`` with ``n_control``
    control units (each treatment at its share). ``inputs.mde`` is ignored; the plan's
    ``mde_absolute`` is None when no effect is detectable with so few."""
    if not 2 <= n_control <= MAX_UNITS:
        raise InvalidInput(f"n: the control needs between 2 and {MAX_UNITS:,} users")
    return _detectable(inputs, n_control, None)


def plan_for_duration(inputs: PlanInputs, *, days: int) -> Plan:
    """Inverse mode: the smallest effect detectable at ``inputs.power`` in ``days`` days.

    ``inputs.mde`` is ignored. The control gets ``days * daily_traffic * exposure * w_control``.
    """
    if inputs.daily_enrolled is None:
        raise InvalidInput("daily_traffic: give the eligible users a day to plan for a duration")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days: give a duration between 1 and {MAX_DAYS:,} days")
    n_control = days * inputs.daily_enrolled * inputs.weights[0]
    if n_control < 2:
        raise InvalidInput(
            f"{_days(days)} at {fmt.count(inputs.daily_enrolled)} enrolled users a day give the "
            "control "
            f"fewer than 2 users: run longer or expose more traffic"
        )
    return _detectable(inputs, n_control, days)


def plan_for_sample(inputs: PlanInputs, *, n_per_variant: float) -> Plan:
    """Inverse mode: the power to detect ``inputs.mde`` with ``n_per_variant`` control units."""
    if n_per_variant < 2:
        raise InvalidInput("n_per_variant: a variant needs at least 2 users")
    mde_absolute = inputs.mde_absolute
    if mde_absolute is None:
        raise InvalidInput("mde: give the effect whose power to find (a number > 0)")
    try:
        power = _power(inputs, n_per_variant, mde_absolute)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    arms, total, days = _arms(inputs, n_per_variant)
    return _finish(Plan(
        mode="power", inputs=inputs, n_control=math.floor(n_per_variant), variants=arms,
        n_per_variant=min(a.units for a in arms), total=total, days=days,
        mde_absolute=mde_absolute, mde_relative=_relative(inputs, mde_absolute),
        power=power, summary="",
    ))


# --------------------------------------------------------------------------- curves


@dataclass(frozen=True)
class Curve:
    """x and y of one planner plot, with the point of the current plan marked."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    x_label: str
    y_label: str
    marker_x: float
    marker_y: float | None


def power_curve(plan: Plan) -> Curve:
    """Power against users per variant, for the plan's MDE, from the fewest that give every arm
    2 units to 2.5x the plan. Users per variant are the smallest arm's, as the plan's
    ``n_per_variant`` (the headline) counts them, so the plan's marker sits at its headline
    number at any split.

    In the duration mode the curve is drawn for the MDE found (absent when none is detectable).
    """
    i = plan.inputs
    smallest = min(i.weights) / i.weights[0]  # smallest arm's units per control unit
    if plan.mde_absolute is None:
        return Curve((), (), "Users per variant", "Power", float(plan.n_per_variant), None)
    low = float(math.ceil(round(max(2.0, 2.0 / i.ratio), 9)))  # 2 units in every arm
    top = max(2.5 * plan.n_control, 10.0 * low, 20.0)
    n = np.unique(np.round(np.linspace(low, top, CURVE_POINTS)))
    common = _common(i, with_power=False)
    if i.kind == "binomial":
        y = power_proportion(i.baseline, plan.mde_absolute, n, relative=False, **common)
    else:
        y = power_mean(i.sd, plan.mde_absolute, n, r_squared=i.r_squared, **common)
    return Curve(tuple(float(v) for v in n * smallest), tuple(float(v) for v in y),
                 "Users per variant", "Power", float(plan.n_per_variant), float(plan.power))


def mde_curve(plan: Plan) -> Curve:
    """Detectable effect (relative to the baseline when the MDE is relative, else absolute)
    against days of running, from 1 day to twice the plan's duration (at least two weeks).
    Days whose traffic gives an arm fewer than 2 users, or where no effect is detectable, are
    left out."""
    i = plan.inputs
    if plan.days is None or i.daily_enrolled is None:
        return Curve((), (), "Days", "Detectable effect", 0.0, None)
    days = np.arange(1, max(2 * plan.days, 14) + 1, dtype=float)
    n = days * i.daily_enrolled * i.weights[0]
    keep = (n >= 2) & (n * i.ratio >= 2)  # 2 units in every arm
    days, n = days[keep], n[keep]
    if days.size == 0:
        return Curve((), (), "Days", "Detectable effect", float(plan.days), None)
    absolute = np.asarray(_mde(i, n), dtype=float)
    ok = np.isfinite(absolute)
    y = absolute / abs(i.baseline) if i.relative and i.baseline != 0 else absolute
    label = "Detectable relative effect" if i.relative else "Detectable absolute effect"
    marker = plan.mde_relative if i.relative else plan.mde_absolute
    return Curve(tuple(float(v) for v in days[ok]), tuple(float(v) for v in y[ok]), "Days",
                 label, float(plan.days), marker)


# --------------------------------------------------------------------------- observed baselines


@dataclass(frozen=True)
class BaselineSource:
    """An experiment whose observed data can seed the planner, and its catalogue metrics."""

    experiment_id: int
    experiment_name: str
    status: str
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class ObservedBaseline:
    """A metric's control-arm baseline in an experiment, from its stored daily statistics."""

    experiment_id: int
    experiment_name: str
    metric: str
    kind: MetricKind
    n: int
    mean: float
    """The conversion rate (binomial) or the mean."""
    sd: float
    days: int
    daily_traffic: float
    """Average units enrolled a day over all variants (assignment counts, else metric n)."""
    description: str


def baseline_sources(session: Session) -> list[BaselineSource]:
    """Running and completed experiments with their metrics (primary first): the candidates for
    an observed baseline."""
    out = []
    for status in ("running", "completed"):
        for exp in all_experiments(session, status=status):  # type: ignore[arg-type]
            names = [m for m in (exp.primary_metric, *exp.guardrail_metrics,
                                 *exp.secondary_metrics) if m]
            metrics = tuple(dict.fromkeys(names))
            if metrics:
                out.append(BaselineSource(exp.id, exp.name, exp.status, metrics))
    return sorted(out, key=lambda s: s.experiment_name.lower())


def observed_baseline(session: Session, *, experiment_id: int, metric: str) -> ObservedBaseline:
    """The control arm's observed rate or mean and SD of ``metric`` in an experiment, and the
    experiment's average daily traffic. Raises NotFound when there is no data for it yet."""
    exp = load_experiment(session, experiment_id=experiment_id)
    catalogue_metric = repo.get_metric_by_name(session, name=metric)
    if catalogue_metric is None:
        raise NotFound(f"No metric named '{metric}' in the catalogue.")
    if not exp.variants:
        raise NotFound(f"'{exp.name}' has no variants, so no control arm to read.")
    control = exp.variants[0]
    rows = mrepo.daily_stats(session, experiment_id=experiment_id)
    mine = [r for r in rows if r.metric_id == catalogue_metric.id]
    arm = SufficientStats(0, 0.0, 0.0)
    for r in mine:
        if r.variant_id == control.id:
            arm = arm + r.stats.sufficient
    if arm.n < 2:
        raise NotFound(
            f"'{exp.name}' has no observed data for {metric} in its control arm yet: load its "
            "data on the Results page, or type the baseline in."
        )
    assigned = mrepo.assignments(session, experiment_id=experiment_id)
    if assigned:
        units = sum(a.units for a in assigned)
        days = len({a.day for a in assigned})
    else:
        per_day: dict[object, int] = {}
        for r in mine:
            per_day[r.day] = per_day.get(r.day, 0) + r.stats.n
        units, days = sum(per_day.values()), len(per_day)
    daily = units / days if days else 0.0
    kind: MetricKind = catalogue_metric.kind  # type: ignore[assignment]
    value = (fmt.percent(arm.mean, 2) if kind == "binomial"
             else f"mean {fmt.number(arm.mean)}, SD {fmt.number(arm.sd)}")
    return ObservedBaseline(
        experiment_id=exp.id, experiment_name=exp.name, metric=metric, kind=kind, n=arm.n,
        mean=arm.mean, sd=arm.sd, days=days, daily_traffic=daily,
        description=(f"{metric} in the control of '{exp.name}': {value} over {arm.n:,} users; "
                     f"{fmt.count(daily)} users a day over {fmt.plural(days, 'day')}."),
    )


# --------------------------------------------------------------------------- saving


def plannable_experiments(session: Session) -> list[ExperimentView]:
    """Proposed experiments: the ones a plan can be saved onto."""
    return all_experiments(session, status="proposed")


def split_text(weights: Sequence[float]) -> str:
    """A traffic split as people write it: (0.5, 0.25, 0.25) -> "50/25/25"."""
    return "/".join(f"{w * 100:.4g}" for w in weights)


def split_mismatch(plan: Plan, experiment: ExperimentView) -> str | None:
    """Why ``plan`` does not fit ``experiment``'s traffic split, in plain words; None when it
    does (each variant's share within :data:`SPLIT_TOLERANCE` of the plan's), when the
    experiment has no split yet, or when their numbers of variants differ (refused apart).

    A plan's sample size holds only at the split it was sized for: the words name both splits,
    the users per variant the experiment's split needs for the plan's effect and power, and the
    power the plan's users would give at the experiment's split (every arm at 100% of plan:
    the one with the smallest share at the planned size, the others in proportion)."""
    split = tuple(v.weight for v in experiment.variants)
    planned = plan.inputs.weights
    if len(split) != len(planned) or all(
            abs(a - b) <= SPLIT_TOLERANCE for a, b in zip(split, planned, strict=True)):
        return None
    words = (f"This plan is sized for a {split_text(planned)} split, but '{experiment.name}' "
             f"splits its traffic {split_text(split)}.")
    if plan.mde_absolute is not None:
        at_split = plan.inputs.model_dump() | {"weights": split, "mde": plan.mde_absolute,
                                               "relative": False}
        control = plan.n_per_variant * split[0] / min(split)
        reached = plan_for_sample(make_inputs(**at_split), n_per_variant=control).power
        power = f"{fmt.percent(reached, 0)}, not {fmt.percent(plan.power, 0)}"
        if 0.5 < plan.power <= MAX_POWER:
            needed = plan_sample_size(make_inputs(**at_split | {"power": plan.power}),
                                      max_days=None).n_per_variant
            words += (f" At {split_text(split)} it needs {needed:,} users per variant, not "
                      f"{plan.n_per_variant:,}: with {plan.n_per_variant:,} its power would be "
                      f"{power}.")
        else:
            words += (f" At {split_text(split)}, {plan.n_per_variant:,} users per variant give "
                      f"it a power of {power}.")
    return (words + f" Size the plan for a {split_text(split)} split, or set the experiment's "
            f"split to {split_text(planned)}.")


def save_plan(
    session: Session,
    *,
    experiment_id: int,
    plan: Plan,
    analysis_mode: AnalysisMode,
    expected_version: int,
    actor: Actor,
    set_split: bool = False,
    today: date | None = None,
) -> ExperimentView:
    """Write the plan (planned sample size per variant, relative MDE, alpha, power, analysis
    mode, and the test direction it was sized for) onto a proposed experiment via
    :func:`core.registry.update_experiment` (audited). The primary metric is then tested as
    sized: a one-sided plan needs fewer units, so the experiment's ``alternative`` is set to the
    plan's (the registry refuses a one-sided direction the primary metric calls worse).

    The plan's inputs are stored with it (``plan_inputs``: baseline, sd, effect, split,
    traffic, expected variance reduction; :func:`plan_draft` reads them back), and a plan with
    a duration sets the planned dates: from the experiment's planned start, else ``today``
    (default: the current UTC day), to the last of its ``days`` days.

    A plan sized for another traffic split than the experiment's is refused
    (:func:`split_mismatch` says why) unless ``set_split``: then the experiment's variants
    take the plan's shares, in the same audited update."""
    actor.require("editor", "save a plan onto an experiment")
    exp = get_experiment(session, experiment_id=experiment_id)
    if exp.status != "proposed":
        raise RuleViolation(
            f"'{exp.name}' is {exp.status}: a plan can only be saved onto a proposed experiment "
            "(a launched plan is frozen; edit it on the Registry page with a reason)."
        )
    if exp.variants and len(exp.variants) != plan.inputs.variants:
        raise InvalidInput(
            f"variants: the plan has {plan.inputs.variants} variants but '{exp.name}' has "
            f"{len(exp.variants)}: set the number of variants to {len(exp.variants)}"
        )
    if plan.mde_relative is None:
        raise InvalidInput("mde: this plan detects no effect; there is nothing to save")
    mismatch = split_mismatch(plan, exp)
    if mismatch is not None and not set_split:
        raise RuleViolation(mismatch)
    changes: dict[str, Any] = {
        "planned_sample_size": plan.n_per_variant,
        "mde": round(plan.mde_relative, 6),
        "alpha": plan.inputs.alpha,
        "power": round(plan.power, 4) if plan.mode == "power" else plan.inputs.power,
        "analysis_mode": analysis_mode,
        "alternative": plan.inputs.alternative,
        "plan_inputs": plan.inputs.model_dump(mode="json"),
    }
    if plan.days is not None:
        start = exp.planned_start or today or datetime.now(UTC).date()
        changes["planned_start"] = start
        changes["planned_end"] = start + timedelta(days=plan.days - 1)
    if mismatch is not None:
        changes["variants"] = [{"name": v.name, "weight": w}
                               for v, w in zip(exp.variants, plan.inputs.weights, strict=True)]
    return update_experiment(
        session, experiment_id=experiment_id, changes=changes,
        expected_version=expected_version, actor=actor,
    )


# --------------------------------------------------------------------------- prefilling


@dataclass(frozen=True)
class PlanDraft:
    """What the Planner opens with for an experiment: the inputs of its saved plan, else its
    primary metric's observed baseline with its own MDE, alpha, power, test and split; and in
    words where the numbers come from."""

    experiment_id: int
    experiment_name: str
    values: dict[str, Any]
    """:class:`PlanInputs` fields (a subset: whatever is known)."""
    variant_names: tuple[str, ...]
    source: str


def plan_draft(session: Session, *, experiment_id: int) -> PlanDraft:
    """The Planner's starting inputs for an experiment (raises NotFound without it).

    1. A saved plan's stored inputs (``plan_inputs``), as they were typed.
    2. Else the experiment's own settings (MDE, alpha, power, test direction, split) and its
       primary metric's baseline: its kind from the catalogue, its rate or mean and SD and the
       daily traffic from the control arm's observed data — of this experiment, else of the
       running or completed experiment that measured it most recently.
    """
    exp = get_experiment(session, experiment_id=experiment_id)
    names = tuple(v.name for v in exp.variants)
    if exp.plan_inputs:
        try:
            stored = make_inputs(**exp.plan_inputs)
        except (InvalidInput, TypeError):
            stored = None
        if stored is not None:
            return PlanDraft(exp.id, exp.name, stored.model_dump(), names,
                             "Its saved plan's inputs, as they were typed.")
    values: dict[str, Any] = {"alpha": exp.alpha, "power": exp.power,
                              "alternative": exp.alternative}
    if exp.mde is not None:
        values |= {"mde": exp.mde, "relative": True}
    if len(exp.variants) >= 2:
        values["weights"] = tuple(v.weight for v in exp.variants)
    metric = exp.primary_metric
    if metric is None:
        return PlanDraft(exp.id, exp.name, values, names,
                         f"'{exp.name}' has no primary metric yet: type the baseline in.")
    catalogue_metric = repo.get_metric_by_name(session, name=metric)
    if catalogue_metric is not None:
        values["kind"] = "binomial" if catalogue_metric.kind == "binomial" else "mean"
    candidates = [exp.id] + [
        e.id for status in ("running", "completed")
        for e in sorted(all_experiments(session, status=status),  # type: ignore[arg-type]
                        key=lambda e: e.actual_start or date.min, reverse=True)
        if e.id != exp.id and metric in (e.primary_metric, *e.guardrail_metrics,
                                         *e.secondary_metrics)]
    for candidate in candidates:
        try:
            seen = observed_baseline(session, experiment_id=candidate, metric=metric)
        except NotFound:
            continue
        values |= {"baseline": seen.mean, "daily_traffic": seen.daily_traffic or None}
        if values.get("kind") == "mean":
            values["sd"] = seen.sd
        return PlanDraft(exp.id, exp.name, values, names, f"Baseline: {seen.description}")
    return PlanDraft(exp.id, exp.name, values, names,
                     f"No experiment has observed {metric} yet: type its baseline in.")
