"""The shape of a results snapshot: the value types :mod:`core.analysis.results` computes and
stores, :mod:`core.analysis.verdict` decides on, and pages, reports and the API read.

:meth:`ResultsSnapshot.from_dict` reads a payload as stored; bringing a payload stored by an
older version up to date (withholding effects under SRM, adding the verdict) is
:func:`core.analysis.results.snapshot_from_payload`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import date, datetime
from typing import Any, Literal

from pydantic import TypeAdapter

from core.stats import BayesianReadout
from core.types import (
    Alternative,
    DecisionState,
    MetricKind,
    Recommendation,
    Untestable,
    VerdictBasis,
)

RESULTS_VERSION = 6
"""Bump when the computation changes, so the fingerprint of unchanged data changes too."""


# --------------------------------------------------------------------------- snapshot shape


@dataclass(frozen=True)
class SrmCheck:
    """SRM check of assignment counts against the planned split.

    ``statistic`` and ``p_value`` are the chi-square test of the totals; ``flagged`` is the
    decision: the sequential test's p-value < ``threshold`` when ``decided_by`` is
    "sequential" (snapshots computed since RESULTS_VERSION 6), the chi-square's before."""

    variants: tuple[str, ...]
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    weights: tuple[float, ...]
    statistic: float
    p_value: float
    flagged: bool
    threshold: float
    decided_by: Literal["chi_square", "sequential"] = "chi_square"
    """Which test ``flagged`` comes from."""
    sequential_p_value: float | None = None
    """Anytime-valid p-value (1 / running max of the Dirichlet-multinomial Bayes factor over
    the daily checks, Lindon & Malek 2022); valid however often it is looked at."""
    log_bayes_factor: float | None = None
    """Log Bayes factor of a mismatch at the last check."""
    checks: int | None = None
    """Days (running totals) the sequential test read."""
    chi_square_flagged: bool | None = None
    """Chi-square p < threshold: what a single fixed-horizon check says (not the decision)."""


@dataclass(frozen=True)
class VariantUnits:
    name: str
    weight: float
    is_control: bool
    units: int
    planned: int | None
    progress: float | None
    """units / planned (may exceed 1); None without a plan."""


@dataclass(frozen=True)
class MetricComparison:
    """One metric, one treatment against the control."""

    metric: str
    kind: MetricKind
    role: str
    higher_is_better: bool
    control: str
    treatment: str
    control_n: int
    treatment_n: int
    control_mean: float | None
    treatment_mean: float | None
    diff: float | None
    diff_ci_low: float | None
    diff_ci_high: float | None
    lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None
    p_value: float | None
    """p-value of the difference: the test its interval ``diff_ci_*`` inverts."""
    adjusted_p_value: float | None
    """Multiplicity-adjusted p-value of the quantity the decision is on (``decision_on``)."""
    alternative: Alternative
    test: str
    """The method (:data:`core.types.TestMethod`): "welch", "welch_cuped", "wald_z",
    "mover_cp" (small or lopsided counts; "fisher_exact" in snapshots before version 5) or
    "delta_ratio" or "quantile_woodruff" (a quantile metric: ``control_mean`` and
    ``treatment_mean`` are then the arms' quantiles); "" when not tested."""
    sequential: bool
    cuped: bool
    variance_reduction: float | None
    decision_state: DecisionState
    reason: str
    lift_p_value: float | None = None
    """p-value of the relative lift: the test its interval ``lift_ci_*`` inverts."""
    decision_on: Literal["lift", "diff"] = "lift"
    """The quantity shown first and decided on: the lift, or the difference without a lift."""
    margin: float | None = None
    """Guardrails: the plan's relative non-inferiority margin (None: harm test only)."""
    noninferiority_p_value: float | None = None
    """Guardrails with a margin: p of H0 "worse by at least the margin" (one-sided)."""
    bayesian: BayesianReadout | None = None
    """Posterior of the relative lift (the plan's prior, flat by default), beside the
    frequentist result."""
    adjustment: str | None = None
    """The variance reduction of an adjusted test, e.g. "CUPED: −38% variance" (None: none)."""
    blocked: bool = False
    """Effects withheld (the SRM check failed): every field of EFFECT_FIELDS is None."""
    blocked_reason: str | None = None
    untestable: Untestable | None = None
    """Why no test exists (``decision_state`` "not_testable"): "no_variation" when every unit
    has the same value in both arms. Its effects, p-values and Bayesian readout are then None,
    and it is left out of the multiple-testing correction."""
    capping: str | None = None
    """The plan's capping of the metric's per-unit values and the cap the data was loaded with,
    e.g. "capped at p99 (value 123.4)" (core.stats.capping); None = not capped."""


EFFECT_FIELDS = (
    "diff", "diff_ci_low", "diff_ci_high", "lift", "lift_ci_low", "lift_ci_high", "p_value",
    "lift_p_value", "adjusted_p_value", "noninferiority_p_value", "bayesian",
)
"""What a failed SRM check withholds from every comparison and series point (set to None); the
arms' sizes and means stay, to help find the cause."""


@dataclass(frozen=True)
class ExperimentVerdict:
    """The experiment-level recommendation, shown first wherever the experiment is shown."""

    recommendation: Recommendation
    basis: VerdictBasis
    """Which rule decided (e.g. ``win_with_guardrail_breach``), for wording and colour."""
    label: str
    """The recommendation for people: "Ship", "Don't ship", "Keep running", "Investigate"."""
    reason: str
    """Why, in plain words, starting with the label (e.g. "Don't ship: guardrail ...")."""
    blocked_by_srm: bool
    treatment: str | None = None
    """The treatment the recommendation is about (to ship, or the one that did harm)."""
    primary_metric: str | None = None
    guardrail_breaches: tuple[str, ...] = ()
    """Each breached guardrail as "metric (treatment)"."""
    needs_attention: bool = False
    """Someone should act now: investigate, or a ship / don't-ship decision is due."""


@dataclass(frozen=True)
class ResultsSnapshot:
    """Results of one experiment at one moment; JSON-serialisable with :meth:`to_dict`."""

    experiment_id: int
    experiment_name: str
    analysis_mode: str
    correction: str
    alpha: float
    planned_sample_size: int | None
    computed_at: datetime
    as_of: date | None
    first_day: date | None
    data_through: date | None
    """Data freshness: the last day with data (up to ``as_of``)."""
    fingerprint: str
    srm: SrmCheck | None
    variants: tuple[VariantUnits, ...]
    progress: float | None
    """Smallest variant's units / planned units per variant."""
    plan_met: bool
    comparisons: tuple[MetricComparison, ...]
    verdict: ExperimentVerdict | None = None
    """The experiment-level recommendation (:func:`core.analysis.verdict.experiment_verdict`);
    always set on computed and stored snapshots."""
    snapshot_id: int | None = None
    computed_by: str | None = None
    version: int = RESULTS_VERSION

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("computed_at", "as_of", "first_day", "data_through"):
            value = out[key]
            out[key] = None if value is None else value.isoformat()
        return out

    def to_json(self) -> str:
        return SNAPSHOT_JSON.dump_json(self).decode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultsSnapshot:
        d = dict(data)
        d["computed_at"] = datetime.fromisoformat(d["computed_at"])
        for key in ("as_of", "first_day", "data_through"):
            d[key] = None if d.get(key) is None else date.fromisoformat(d[key])
        srm = d.get("srm")
        if srm is not None:
            srm = {k: tuple(v) if isinstance(v, list) else v for k, v in srm.items()}
            d["srm"] = SrmCheck(**srm)  # type: ignore[arg-type]
        d["variants"] = tuple(VariantUnits(**v) for v in d["variants"])
        d["comparisons"] = tuple(
            MetricComparison(**{**c, "bayesian": None if c.get("bayesian") is None
                                else BayesianReadout(**c["bayesian"])})
            for c in d["comparisons"])
        verdict = d.get("verdict")
        if verdict is not None:
            d["verdict"] = ExperimentVerdict(**{
                **verdict, "guardrail_breaches": tuple(verdict.get("guardrail_breaches", ())),
            })
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def rows(self, *, metric: str | None = None, role: str | None = None) -> list[
        MetricComparison
    ]:
        return [
            c for c in self.comparisons
            if (metric is None or c.metric == metric) and (role is None or c.role == role)
        ]


SNAPSHOT_JSON: TypeAdapter[ResultsSnapshot] = TypeAdapter(ResultsSnapshot)
"""The snapshot's JSON, stored and served as it is (UTC timestamps ending in ``Z``, non-finite
numbers as null)."""


@dataclass(frozen=True)
class SeriesPoint:
    """Cumulative effect of one treatment on one metric, using data up to ``day``."""

    day: date
    metric: str
    treatment: str
    control_n: int
    treatment_n: int
    diff: float | None
    diff_ci_low: float | None
    diff_ci_high: float | None
    lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None
    p_value: float | None
    sequential: bool
    lift_p_value: float | None = None
    blocked: bool = False
    """Effects withheld because the experiment's SRM check fails (as of the series' end)."""
    blocked_reason: str | None = None


def withhold(item: Any, reason: str) -> Any:
    """A comparison or series point with its effects withheld (None) and the reason."""
    present = {f.name for f in fields(item)}
    return replace(item, blocked=True, blocked_reason=reason,
                   **{k: None for k in EFFECT_FIELDS if k in present})
