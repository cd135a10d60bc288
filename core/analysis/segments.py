"""Segment drill-down: results per dimension value (country, platform, new vs returning, ...).

EXPLORATORY ONLY: a slice never makes a ship decision, and :mod:`core.analysis.verdict` never
reads slices. For each dimension an experiment's data carries (per-value daily sums and
assignment counts, stored at ingestion, see :mod:`db.metric_repository`):

* values are grouped into the ``top_n`` largest by units (default :data:`TOP_N` = 10) plus
  ``"(other)"`` pooling the rest (:func:`core.stats.top_n_groups`);
* per slice: the SRM check of its assignment counts against the planned split
  (:func:`core.stats.srm_test`, p < 0.001 flags); a flagged slice has its effects withheld;
* per slice x metric x treatment: the fixed-horizon, two-sided test of :mod:`core.stats` for the
  metric's kind (Wald z / small-count MOVER, Welch, delta-method ratio), whatever the experiment's
  mode: the slices are read once, as a description, never as a stopping rule (quantile
  metrics are left out: their quantiles are stored per arm, not per slice);
* a slice comparison whose metric has no variation (every unit alike in both arms, e.g. no
  conversion in a small country) is not tested ("cannot be tested: no variation",
  ``untestable``) and is no member of the correction;
* multiple-testing correction across every slice comparison of the dimension (all values,
  metrics and treatments: one family per dimension) with the experiment's correction (Holm
  by default); ``significant`` means the adjusted p-value of the DIFFERENCE is below alpha, and
  a slice shows the difference (with its interval) first, the lift beside it with its own
  p-value. Why the difference: a slice is tested two-sided without a margin, where the lift's
  p-value (Fieller's test at ratio 1, :mod:`core.stats`) is the difference's own, except in a
  slice whose control mean is within noise of 0, which has no bounded lift interval (its lift
  p-value is then at least alpha); the difference's p keeps every slice's evidence in the
  family. tests/core/analysis/test_segments.py shows the family-wise false-positive rate stays
  at alpha this way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from core.analysis import results as _results
from core.errors import NotFound
from core.stats import (
    EMPTY_STATS,
    OTHER,
    MetricStats,
    adjust_pvalues,
    srm_test,
    top_n_groups,
)
from core.types import MetricKind, Untestable

TOP_N = 10
"""Dimension values shown on their own; the rest are pooled as "(other)"."""
EXPLORATORY = (
    "Exploratory: results per segment are descriptive. They are corrected for the number of "
    "slices, but they were not the plan, so no ship decision is made from a slice."
)


@dataclass(frozen=True)
class SegmentComparison:
    """One slice (dimension value, or "(other)"), one metric, one treatment vs the control."""

    dimension: str
    value: str
    metric: str
    kind: MetricKind
    treatment: str
    control_n: int
    treatment_n: int
    control_mean: float | None
    treatment_mean: float | None
    diff: float | None
    diff_ci_low: float | None
    diff_ci_high: float | None
    p_value: float | None
    """p-value of the difference (the test its interval inverts); decided on, adjusted."""
    lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None
    lift_p_value: float | None
    adjusted_p_value: float | None
    """``p_value`` adjusted over every slice comparison of the dimension."""
    test: str
    significant: bool
    srm_p_value: float | None
    blocked: bool
    """The slice's SRM check failed: effects withheld (None)."""
    reason: str
    untestable: Untestable | None = None
    """"no_variation": every unit of the metric has the same value in this slice's arms, so it
    is not tested and not in the correction across slices."""


@dataclass(frozen=True)
class SegmentSlice:
    dimension: str
    value: str
    members: tuple[str, ...]
    """The dimension values in the slice (several for "(other)")."""
    units: int
    srm_p_value: float | None
    srm_flagged: bool


@dataclass(frozen=True)
class SegmentBreakdown:
    """Every slice of one dimension and their comparisons."""

    dimension: str
    top_n: int
    correction: str
    alpha: float
    slices: tuple[SegmentSlice, ...]
    comparisons: tuple[SegmentComparison, ...]
    exploratory: str = EXPLORATORY


def _value_units(setup: Any, stats: Sequence[Any], assigned: Sequence[Any]
                 ) -> dict[str, dict[int, int]]:
    """Units per dimension value and variant id: the assignment counts, or the largest n."""
    units: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    if assigned:
        for a in assigned:
            units[a.value][a.variant_id] += a.units
        return units
    per_metric: dict[tuple[str, int, int], int] = defaultdict(int)
    for r in stats:
        per_metric[(r.value, r.variant_id, r.metric_id)] += r.stats.n
    for (value, vid, _mid), n in per_metric.items():
        units[value][vid] = max(units[value][vid], n)
    return units


def breakdown(
    setup: Any,
    dimension: str,
    stats: Sequence[Any],
    assigned: Sequence[Any],
    *,
    top_n: int = TOP_N,
) -> SegmentBreakdown:
    """The slices of one dimension from its per-value rows (module docstring). Pure: ``stats``
    and ``assigned`` are rows like ``SliceStatRow`` (a value, ids and a :class:`MetricStats`) /
    ``SliceAssignmentRow``."""
    units = _value_units(setup, stats, assigned)
    groups = top_n_groups({v: float(sum(u.values())) for v, u in units.items()}, top_n)
    weights = [w for _id, _n, w in setup.variants]
    total_w = sum(weights)
    slices: list[SegmentSlice] = []
    by_group: dict[str, list[str]] = defaultdict(list)
    for value, group in groups.items():
        by_group[group].append(value)
    order = sorted(by_group, key=lambda g: (g == OTHER, -sum(
        sum(units[v].values()) for v in by_group[g]), g))
    srm_of: dict[str, tuple[float | None, bool]] = {}
    for group in order:
        counts = [sum(units[v].get(vid, 0) for v in by_group[group])
                  for vid, _n, _w in setup.variants]
        p, flagged = None, False
        if len(counts) >= 2 and sum(counts) > 0:
            r = srm_test(counts, [w / total_w for w in weights],
                         threshold=_results.SRM_THRESHOLD)
            p, flagged = float(r.p_value), bool(r.flagged)
        srm_of[group] = (p, flagged)
        slices.append(SegmentSlice(dimension, group, tuple(sorted(by_group[group])),
                                   sum(counts), p, flagged))

    arms: dict[tuple[str, int, int], MetricStats] = {}
    for r in stats:
        key = (groups[r.value], r.metric_id, r.variant_id)
        arms[key] = arms.get(key, EMPTY_STATS) + r.stats
    drafts: list[dict[str, Any]] = []
    if len(setup.variants) >= 2:
        control_id = setup.variants[0][0]
        for group in order:
            # a quantile metric's slices would need quantiles per slice, which are not stored
            for m in (m for m in setup.metrics if m.kind != "quantile"):
                for vid, name, _w in setup.variants[1:]:
                    c = arms.get((group, m.id, control_id), EMPTY_STATS)
                    t = arms.get((group, m.id, vid), EMPTY_STATS)
                    tested, why = _results.compare_arms(
                        m.kind, c, t, alpha=setup.alpha, alternative="two-sided",
                        sequential=False, tuning_n=None)
                    flat = _results.no_variation(m.kind, c, t) is not None
                    drafts.append({"group": group, "m": m, "treatment": name, "c": c, "t": t,
                                   "tested": tested, "why": why,
                                   "untestable": "no_variation" if flat else None})
    family = [d for d in drafts if d["tested"] is not None
              and d["tested"]["p_value"] is not None
              and not srm_of[d["group"]][1]]
    adjusted = adjust_pvalues([d["tested"]["p_value"] for d in family],
                              setup.correction)
    for d, p in zip(family, adjusted, strict=True):
        d["adjusted"] = float(p)

    comparisons = []
    for d in drafts:
        srm_p, flagged = srm_of[d["group"]]
        tested = d["tested"] or {}
        adj = d.get("adjusted")
        significant = adj is not None and adj < setup.alpha
        if flagged:
            reason = (f"Sample ratio mismatch in {dimension} = {d['group']} (p = {srm_p:.2g}): "
                      "this slice's assignment is broken, its effects are withheld.")
        elif not tested:
            reason = d["why"] or "Not enough data in this slice (at least 2 units per arm)."
        else:
            reason = ("Significant after correction across the slices (exploratory)."
                      if significant else "Not significant after correction across the slices.")
        blocked = flagged
        comparisons.append(SegmentComparison(
            dimension=dimension, value=d["group"], metric=d["m"].name, kind=d["m"].kind,
            treatment=d["treatment"], control_n=d["c"].n, treatment_n=d["t"].n,
            control_mean=tested.get("control_mean"), treatment_mean=tested.get("treatment_mean"),
            diff=None if blocked else tested.get("diff"),
            diff_ci_low=None if blocked else tested.get("diff_ci_low"),
            diff_ci_high=None if blocked else tested.get("diff_ci_high"),
            p_value=None if blocked else tested.get("p_value"),
            lift=None if blocked else tested.get("lift"),
            lift_ci_low=None if blocked else tested.get("lift_ci_low"),
            lift_ci_high=None if blocked else tested.get("lift_ci_high"),
            lift_p_value=None if blocked else tested.get("lift_p_value"),
            adjusted_p_value=None if blocked else adj, test=tested.get("test", ""),
            significant=significant and not blocked, srm_p_value=srm_p, blocked=blocked,
            reason=reason, untestable=d["untestable"],
        ))
    return SegmentBreakdown(dimension=dimension, top_n=top_n, correction=setup.correction,
                            alpha=setup.alpha, slices=tuple(slices),
                            comparisons=tuple(comparisons))


def segment_results(
    session: Session,
    *,
    experiment_id: int,
    dimension: str | None = None,
    as_of: date | None = None,
    top_n: int = TOP_N,
) -> list[SegmentBreakdown]:
    """Per dimension the experiment's data carries (or just ``dimension``): its slices and their
    comparisons, computed on demand from the stored per-value statistics (never stored, never
    in the verdict). Empty without dimension data; a ``dimension`` the data does not carry
    raises :class:`core.errors.NotFound` naming those it does."""
    from db import metric_repository as mrepo

    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise ValueError(f"top_n must be a whole number >= 1 (got {top_n!r})")
    setup = _results.experiment_setup(session, experiment_id)
    # Two queries whatever the number of dimensions: every slice's sums and units, added up over
    # the days in the database (the breakdown never reads the day).
    stats = mrepo.slice_stat_totals(session, experiment_id=experiment_id, through=as_of,
                                    dimension=dimension)
    if dimension is not None and not stats:
        carried = mrepo.dimensions(session, experiment_id=experiment_id)
        if dimension not in carried:
            known = ", ".join(carried) if carried else "none (load data with dimension columns)"
            raise NotFound(f"Experiment {experiment_id}'s data has no dimension {dimension!r}; "
                           f"its dimensions: {known}.")
    assigned = mrepo.slice_assignment_totals(session, experiment_id=experiment_id,
                                             through=as_of, dimension=dimension)
    stats_of: dict[str, list[Any]] = defaultdict(list)
    for row in stats:
        stats_of[row.dimension].append(row)
    assigned_of: dict[str, list[Any]] = defaultdict(list)
    for units in assigned:
        assigned_of[units.dimension].append(units)
    return [breakdown(setup, name, rows, assigned_of[name], top_n=top_n)
            for name, rows in stats_of.items()]
