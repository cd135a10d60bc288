"""Results on SQLite and PostgreSQL: every number checked against scipy/statsmodels run on the
unit-level data, the decision states, snapshots and the cumulative series."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from sqlalchemy.orm import Session
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.proportion import test_proportions_2indep as sm_test_proportions_2indep

from core.analysis.results import (
    achieved_variance_reduction,
    compute_results,
    cumulative_series,
    latest_snapshot,
    latest_snapshot_json,
    refresh_results,
    snapshot_history,
)
from core.analysis.snapshot import EFFECT_FIELDS, RESULTS_VERSION, ResultsSnapshot
from core.analysis.verdict import experiment_verdict
from core.data.ingestion import ingest_file
from core.errors import InvalidInput, PermissionDenied
from core.types import DECISION_STATES
from db import metric_repository as mrepo
from tests.conftest import EDITOR, VIEWER
from tests.core.data.test_ingestion import (
    END,
    START,
    make_experiment,
    make_units,
    write_parquet,
)
from tests.core.stats import reference_fieller as fieller
from tests.core.stats.results import mover_e


def load(session: Session, tmp_path: Path, exp: int, cols: dict, name: str = "u") -> None:
    ingest_file(session, path=write_parquet(tmp_path / f"{name}.parquet", cols),
                experiment_id=exp, actor=EDITOR)


def arms(cols: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    v = cols["variant"]
    return cols[metric][v == "control"].astype(float), cols[metric][v == "treatment"].astype(float)


def proportion_p(t: np.ndarray, c: np.ndarray, alternative: str = "two-sided") -> float:
    """Reference p-value of core.stats.proportion_ztest: statsmodels' Wald test
    (test_proportions_2indep(method="wald")), or, when an arm has fewer than 5 observed or
    expected conversions or non-conversions (core.stats.EXACT_BELOW), the MOVER-E p-value
    written out with scipy's exact limits (tests/core/stats/results/mover_e.py)."""
    x_t, n_t, x_c, n_c = int(t.sum()), t.size, int(c.sum()), c.size
    pooled = (x_t + x_c) / (n_t + n_c)
    if min(x_t, n_t - x_t, x_c, n_c - x_c, n_t * pooled, n_t * (1 - pooled), n_c * pooled,
           n_c * (1 - pooled)) < 5:
        return mover_e.p_value(x_c, n_c, x_t, n_t, alternative=alternative, quantity="diff",
                               null=0.0)
    sm_alt = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}[alternative]
    return float(sm_test_proportions_2indep(x_t, n_t, x_c, n_c, method="wald",
                                            alternative=sm_alt).pvalue)


def row(snapshot: ResultsSnapshot, metric: str, treatment: str = "treatment"):  # type: ignore[no-untyped-def]
    return next(c for c in snapshot.comparisons if c.metric == metric and c.treatment == treatment)


def test_results_match_scipy_and_statsmodels(session: Session, tmp_path: Path) -> None:
    exp = make_experiment(session, guardrails=("refunds", "load_ms"), planned=300)
    cols = make_units(400, lift={"treatment": 0.4})
    load(session, tmp_path, exp, cols)
    snap = compute_results(session, experiment_id=exp)

    # binomial: statsmodels two-proportion Wald test and the Wald CI of the difference
    c, t = arms(cols, "conv")
    conv = row(snap, "conv")
    p = proportion_p(t, c)
    low, high = confint_proportions_2indep(t.sum(), t.size, c.sum(), c.size, method="wald")
    assert conv.test == "wald_z" and not conv.cuped
    assert_allclose(conv.p_value, p, rtol=1e-10)
    assert_allclose([conv.diff_ci_low, conv.diff_ci_high], [low, high], rtol=1e-10)
    assert_allclose(conv.lift, t.mean() / c.mean() - 1, rtol=1e-12)

    # mean with a pre-period covariate: CUPED, checked as scipy Welch on adjusted unit values
    y_c, y_t = arms(cols, "revenue")
    x_c, x_t = arms(cols, "revenue_pre")
    sxy = ((x_c - x_c.mean()) * (y_c - y_c.mean())).sum() + (
        (x_t - x_t.mean()) * (y_t - y_t.mean())).sum()
    sxx = ((x_c - x_c.mean()) ** 2).sum() + ((x_t - x_t.mean()) ** 2).sum()
    theta, x_bar = sxy / sxx, np.concatenate([x_c, x_t]).mean()
    adj_c, adj_t = y_c - theta * (x_c - x_bar), y_t - theta * (x_t - x_bar)
    ref = stats.ttest_ind(adj_t, adj_c, equal_var=False)
    rev = row(snap, "revenue")
    assert rev.cuped and rev.test == "welch_cuped" and rev.variance_reduction > 0.3
    assert_allclose(rev.p_value, ref.pvalue, rtol=1e-8)
    ci = ref.confidence_interval(0.95)
    assert_allclose([rev.diff_ci_low, rev.diff_ci_high], [ci.low, ci.high], rtol=1e-8)

    # guardrail where lower is better: one-sided Welch test for an increase
    l_c, l_t = arms(cols, "load_ms")
    load_row = row(snap, "load_ms")
    assert load_row.alternative == "greater" and load_row.test == "welch"
    ref_load = stats.ttest_ind(l_t, l_c, equal_var=False, alternative="greater")
    assert_allclose(load_row.p_value, ref_load.pvalue, rtol=1e-8)

    # The lift carries its own p-value and interval: Fieller's (Fieller 1954; the ratio test at
    # ratio 1 is the difference's Wald z, so statsmodels' p above), the interval by brentq
    # inversion of the ratio statistic (tests/core/stats/reference_fieller.py).
    var_c, var_t = c.mean() * (1 - c.mean()) / c.size, t.mean() * (1 - t.mean()) / t.size
    assert_allclose(conv.lift_p_value, p, rtol=1e-9)
    assert_allclose([conv.lift_ci_low, conv.lift_ci_high],
                    fieller.lift_interval(t.mean(), var_t, c.mean(), var_c, alpha=0.05,
                                          alternative="two-sided", df=math.inf), rtol=1e-9)
    assert conv.decision_on == "lift"

    # Holm over the primary + secondary family (on the p-value of the lift each decision is
    # on), and separately over the guardrails
    _r, holm, _s, _b = multipletests([conv.lift_p_value, rev.lift_p_value], method="holm")
    assert_allclose([conv.adjusted_p_value, rev.adjusted_p_value], holm, rtol=1e-12)
    # Guardrails: two families of one-sided lift tests, each Holm-adjusted: harm (the metric
    # worse: "greater" for these lower-is-better ones) and improvement ("less"). Without a margin
    # Fieller's lift test is the difference's own: statsmodels' Wald z for refunds (binary),
    # scipy's Welch t for load_ms. refunds fell significantly, so it is shown by its
    # improvement test (issue 22, item 6).
    r_c, r_t = arms(cols, "refunds")

    def one_sided(side: str) -> list[float]:
        wald = sm_test_proportions_2indep(int(r_t.sum()), r_t.size, int(r_c.sum()), r_c.size,
                                          method="wald",
                                          alternative="larger" if side == "greater" else "smaller")
        welch = stats.ttest_ind(l_t, l_c, equal_var=False, alternative=side)
        return [float(wald.pvalue), float(welch.pvalue)]

    harm = multipletests(one_sided("greater"), method="holm")[1]
    better = multipletests(one_sided("less"), method="holm")[1]
    refunds = row(snap, "refunds")
    assert_allclose(load_row.adjusted_p_value, harm[1], rtol=1e-9)
    # Fewer refunds here, not significantly by Fieller's test (the delta-method lift called it
    # significant: the skew of issue 22 item 2), so the row shows the harm test; a significant
    # fall reads green by its improvement test (test_results_guardrail_harm_is_one_sided_...).
    assert better[0] >= 0.05 and harm[0] >= 0.05, (better, harm)
    assert refunds.alternative == "greater" and refunds.decision_state == "not_significant"
    assert_allclose(refunds.lift_p_value, one_sided("greater")[0], rtol=1e-9)
    assert_allclose(refunds.adjusted_p_value, harm[0], rtol=1e-9)

    assert conv.decision_state == "significant" and "significantly better" in conv.reason
    assert snap.plan_met and snap.progress == pytest.approx(400 / 300)
    assert [v.units for v in snap.variants] == [400, 400]
    assert snap.data_through == max(cols["date"]) and snap.first_day == min(cols["date"])
    assert all(c.decision_state in DECISION_STATES for c in snap.comparisons)


def test_results_bh_correction_matches_statsmodels(session: Session, tmp_path: Path) -> None:
    exp = make_experiment(session, correction="bh", secondaries=("revenue", "load_ms"),
                          guardrails=(), planned=100)
    cols = make_units(300, lift={"treatment": 0.1})
    load(session, tmp_path, exp, cols)
    snap = compute_results(session, experiment_id=exp)
    ps = [c.lift_p_value for c in snap.comparisons]
    _r, bh, _s, _b = multipletests(ps, method="fdr_bh")
    assert_allclose([c.adjusted_p_value for c in snap.comparisons], bh, rtol=1e-12)
    assert "Benjamini-Hochberg" in snap.comparisons[0].reason


def test_results_fixed_horizon_below_plan_is_too_early_never_significant(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session, planned=5000)
    load(session, tmp_path, exp, make_units(400, lift={"treatment": 0.8}))
    snap = compute_results(session, experiment_id=exp)
    conv = row(snap, "conv")
    assert conv.p_value < 1e-6  # the interim data look decisive ...
    assert conv.decision_state == "too_early"  # ... but the plan is not met
    assert "8% of the planned sample (400 of 5,000 units per variant)" in conv.reason
    assert not snap.plan_met and snap.progress == pytest.approx(0.08)
    assert {c.decision_state for c in snap.comparisons} == {"too_early"}


def test_results_srm_overrides_significance(session: Session, tmp_path: Path) -> None:
    exp = make_experiment(session, planned=100)
    cols = make_units(500, lift={"treatment": 0.8})
    keep = np.ones(cols["variant"].size, dtype=bool)
    keep[:100] = False  # drop 100 control units: 400 vs 500 on a 50/50 plan
    load(session, tmp_path, exp, {k: v[keep] for k, v in cols.items()})
    snap = compute_results(session, experiment_id=exp)
    assert snap.srm is not None and snap.srm.flagged
    assert snap.srm.observed == (400, 500) and snap.srm.expected == (450.0, 450.0)
    chi2 = stats.chisquare([400, 500], [450, 450])
    assert_allclose(snap.srm.p_value, chi2.pvalue, rtol=1e-10)
    assert {c.decision_state for c in snap.comparisons} == {"srm_untrustworthy"}
    assert "Sample ratio mismatch" in row(snap, "conv").reason
    # SRM blocks every lift: effects withheld (None) with the reason, arm sizes and means kept.
    c, t = arms({k: v[keep] for k, v in cols.items()}, "conv")
    for comp in snap.comparisons:
        assert comp.blocked and comp.blocked_reason == comp.reason
        assert all(getattr(comp, f) is None for f in EFFECT_FIELDS)
    conv = row(snap, "conv")
    assert (conv.control_n, conv.treatment_n) == (c.size, t.size)
    assert_allclose([conv.control_mean, conv.treatment_mean], [c.mean(), t.mean()], rtol=1e-12)
    assert snap.verdict is not None and snap.verdict.blocked_by_srm
    assert snap.verdict.recommendation == "investigate"
    # ... and the cumulative series likewise, on every day.
    series = cumulative_series(session, experiment_id=exp)
    assert series and all(p.blocked and p.lift is None and p.diff_ci_low is None
                          and p.blocked_reason == conv.reason for p in series)
    # The JSON the API serves carries the same flags.
    served = json.loads(snap.to_json())
    assert all(c["blocked"] and c["lift"] is None for c in served["comparisons"])


@pytest.mark.parametrize(("refund_rate", "state", "alternative"), [
    (0.25, "guardrail_breach", "greater"), (0.0, "significant", "less")])
def test_results_guardrail_harm_is_one_sided_in_the_worse_direction(
    session: Session, tmp_path: Path, refund_rate: float, state: str, alternative: str
) -> None:
    """refunds: lower is better. More refunds breach; fewer refunds are never a breach, and
    none at all is a significant improvement, shown by the test in the good direction."""
    exp = make_experiment(session, planned=100)
    cols = make_units(500)
    rng = np.random.default_rng(7)
    treated = cols["variant"] == "treatment"
    cols["refunds"][treated] = (rng.random(treated.sum()) < refund_rate).astype(np.int64)
    load(session, tmp_path, exp, cols)
    refunds = row(compute_results(session, experiment_id=exp), "refunds")
    assert refunds.alternative == alternative
    assert refunds.decision_state == state
    c, t = arms(cols, "refunds")
    # No refund in the treatment takes the small-count path (MOVER: its p-value is a root
    # found to ~1e-9 relative, hence the looser tolerance there); proportion_p covers both.
    rtol = 1e-6 if refunds.test == "mover_cp" else 1e-9
    assert_allclose(refunds.p_value, proportion_p(t, c, alternative), rtol=rtol)


def test_results_guardrail_breach_before_plan_uses_the_always_valid_test(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session, planned=5000)
    cols = make_units(500)
    treated = cols["variant"] == "treatment"
    cols["refunds"][treated] = (np.random.default_rng(3).random(treated.sum()) < 0.3).astype(
        np.int64)
    load(session, tmp_path, exp, cols)
    snap = compute_results(session, experiment_id=exp)
    refunds = row(snap, "refunds")
    assert refunds.sequential and refunds.decision_state == "guardrail_breach"
    assert "always-valid" in refunds.reason
    assert row(snap, "conv").decision_state == "too_early"


def _always_valid_p(z: float, n_total: float, tuning_total: float, alpha: float) -> float:
    """Two-sided always-valid p-value of the normal-mixture confidence sequence, written out
    from Howard et al. (2021) eq. 14 / GrowthBook's docs, independently of core.stats."""
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_total
    nr2 = n_total * rho2
    return min(1.0, math.sqrt(nr2 + 1) * math.exp(-z * z * nr2 / (2 * (nr2 + 1))))


def test_results_sequential_may_be_significant_before_plan(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session, planned=5000, mode="sequential")
    cols = make_units(600, lift={"treatment": 0.8})
    load(session, tmp_path, exp, cols)
    conv = row(compute_results(session, experiment_id=exp), "conv")
    c, t = arms(cols, "conv")
    se = math.sqrt(c.mean() * (1 - c.mean()) / c.size + t.mean() * (1 - t.mean()) / t.size)
    expected = _always_valid_p((t.mean() - c.mean()) / se, c.size + t.size, 2 * 5000, 0.05)
    assert conv.sequential
    assert_allclose(conv.p_value, expected, rtol=1e-10)
    assert conv.decision_state == "significant"
    assert "always-valid p" in conv.reason


def test_results_without_data_are_too_early(session: Session) -> None:
    exp = make_experiment(session)
    snap = compute_results(session, experiment_id=exp)
    assert snap.srm is None and snap.data_through is None
    assert {c.decision_state for c in snap.comparisons} == {"too_early"}
    assert row(snap, "conv").reason == "No data for conv yet."


def test_results_achieved_variance_reduction_is_cupeds_on_the_unit_data(
    session: Session, tmp_path: Path
) -> None:
    """The R² a plan can take from past results: 1 - Var(adjusted diff) / Var(raw diff) of the
    stored CUPED comparison, recomputed here from the unit values with numpy (pooled theta,
    Welch variances; Deng et al. 2013); None without stored results or for a rate."""
    exp = make_experiment(session, planned=300)
    cols = make_units(400, lift={"treatment": 0.4})
    load(session, tmp_path, exp, cols)
    assert achieved_variance_reduction(session, experiment_id=exp, metric="revenue") is None
    refresh_results(session, experiment_id=exp, actor=EDITOR)
    got = achieved_variance_reduction(session, experiment_id=exp, metric="revenue")
    y_c, y_t = arms(cols, "revenue")
    x_c, x_t = arms(cols, "revenue_pre")
    sxy = ((x_c - x_c.mean()) * (y_c - y_c.mean())).sum() + (
        (x_t - x_t.mean()) * (y_t - y_t.mean())).sum()
    sxx = ((x_c - x_c.mean()) ** 2).sum() + ((x_t - x_t.mean()) ** 2).sum()
    theta = sxy / sxx
    adj_c, adj_t = y_c - theta * x_c, y_t - theta * x_t

    def var_diff(c: np.ndarray, t: np.ndarray) -> float:
        return float(c.var(ddof=1) / c.size + t.var(ddof=1) / t.size)

    expected = 1 - var_diff(adj_c, adj_t) / var_diff(y_c, y_t)
    assert got is not None and 0.3 < got.r_squared < 1
    assert_allclose(got.r_squared, expected, rtol=1e-9)
    assert got.metric == "revenue" and "CUPED removed" in got.description
    assert achieved_variance_reduction(session, experiment_id=exp, metric="conv") is None


def test_results_refresh_stores_once_per_fingerprint_and_keeps_history(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session, planned=100)
    cols = make_units(200)
    load(session, tmp_path, exp, cols)
    first = refresh_results(session, experiment_id=exp, actor=EDITOR)
    load(session, tmp_path, exp, cols, name="again")  # the same data loaded again
    second = refresh_results(session, experiment_id=exp, actor=EDITOR)
    assert second.snapshot_id == first.snapshot_id
    assert second.fingerprint == first.fingerprint
    assert len(mrepo.snapshots(session, experiment_id=exp)) == 1

    more = make_units(50, seed=9)
    more["unit_id"] = np.array([f"late{i}" for i in range(100)], dtype=object)
    more["date"] = np.array([START] * 100, dtype=object)
    load(session, tmp_path, exp, {**more}, name="more")
    third = refresh_results(session, experiment_id=exp, actor=EDITOR)
    assert third.snapshot_id != first.snapshot_id and third.fingerprint != first.fingerprint
    history = snapshot_history(session, experiment_id=exp)
    assert [h.snapshot_id for h in history] == [third.snapshot_id, first.snapshot_id]
    latest = latest_snapshot(session, experiment_id=exp)
    assert latest == third
    assert latest is not None and latest.computed_by == EDITOR.name


def test_results_snapshot_round_trips_through_json(session: Session, tmp_path: Path) -> None:
    exp = make_experiment(session, planned=100)
    load(session, tmp_path, exp, make_units(150))
    snap = compute_results(session, experiment_id=exp)
    text = snap.to_json()
    assert ResultsSnapshot.from_dict(json.loads(text)) == snap


def test_results_as_of_uses_only_days_up_to_it(session: Session, tmp_path: Path) -> None:
    exp = make_experiment(session, planned=100)
    cols = make_units(300)
    load(session, tmp_path, exp, cols)
    cut = date(2026, 3, 6)
    snap = compute_results(session, experiment_id=exp, as_of=cut)
    early = np.array(cols["date"]) <= cut
    assert snap.data_through == cut
    assert row(snap, "conv").control_n == int((early & (cols["variant"] == "control")).sum())
    assert snap.fingerprint != compute_results(session, experiment_id=exp).fingerprint


@pytest.mark.parametrize("as_of", [date(1970, 1, 1), date(76, 1, 1), date(3010, 1, 1),
                                   START - timedelta(days=1), "tomorrow"])
def test_results_refresh_refuses_as_of_outside_the_run_and_stores_nothing(
    session: Session, tmp_path: Path, as_of: date | str
) -> None:
    exp = make_experiment(session, planned=100)
    load(session, tmp_path, exp, make_units(100))
    today = datetime.now(UTC).date()
    day = today + timedelta(days=1) if as_of == "tomorrow" else as_of
    assert isinstance(day, date)
    with pytest.raises(InvalidInput, match=f"as_of: give a day from {START} .* to {today} "
                                            f"\\(today, UTC\\).*got {day}"):
        refresh_results(session, experiment_id=exp, actor=EDITOR, as_of=day)
    assert mrepo.snapshots(session, experiment_id=exp) == []


def test_results_refresh_accepts_as_of_from_the_start_to_today(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session, planned=100)
    load(session, tmp_path, exp, make_units(100))
    today = datetime.now(UTC).date()
    first = refresh_results(session, experiment_id=exp, actor=EDITOR, as_of=START)
    last = refresh_results(session, experiment_id=exp, actor=EDITOR, as_of=today)
    assert first.as_of == START and first.data_through == START
    assert last.as_of == today and last.data_through == END
    assert len(mrepo.snapshots(session, experiment_id=exp)) == 2


def test_results_refresh_with_as_of_needs_a_launched_experiment(session: Session) -> None:
    from core import registry

    view = registry.create_experiment(session, data={"name": "Idea", "owner": "o"},
                                      actor=EDITOR)
    with pytest.raises(InvalidInput, match="as_of: 'Idea' has not launched"):
        refresh_results(session, experiment_id=view.id, actor=EDITOR, as_of=date(2026, 3, 2))
    assert mrepo.snapshots(session, experiment_id=view.id) == []
    assert refresh_results(session, experiment_id=view.id, actor=EDITOR).as_of is None


def test_results_refresh_needs_the_editor_role(session: Session) -> None:
    exp = make_experiment(session)
    with pytest.raises(PermissionDenied):
        refresh_results(session, experiment_id=exp, actor=VIEWER)


@pytest.mark.parametrize("mode", ["fixed", "sequential"])
def test_cumulative_series_ends_at_the_snapshot_numbers(
    session: Session, tmp_path: Path, mode: str
) -> None:
    exp = make_experiment(session, planned=200, mode=mode)
    cols = make_units(300, lift={"treatment": 0.2})
    load(session, tmp_path, exp, cols)
    series = [p for p in cumulative_series(session, experiment_id=exp, metric="conv")]
    days = sorted(set(cols["date"]))
    assert [p.day for p in series] == days
    assert all(a.control_n <= b.control_n for a, b in zip(series, series[1:], strict=False))
    last = series[-1]
    conv = row(compute_results(session, experiment_id=exp), "conv")
    assert (last.diff, last.diff_ci_low, last.diff_ci_high) == (
        conv.diff, conv.diff_ci_low, conv.diff_ci_high)
    assert last.sequential is (mode == "sequential")
    fixed_width = 2 * stats.norm.isf(0.025) * math.sqrt(
        sum(x.mean() * (1 - x.mean()) / x.size for x in arms(cols, "conv")))
    width = last.diff_ci_high - last.diff_ci_low
    if mode == "fixed":
        assert_allclose(width, fixed_width, rtol=1e-10)
    else:
        assert width > fixed_width  # the always-valid band is wider than the fixed one


def test_results_snapshot_stores_and_serves_the_experiment_verdict(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session, planned=100)
    load(session, tmp_path, exp, make_units(300, lift={"treatment": 0.8}))
    stored = refresh_results(session, experiment_id=exp, actor=EDITOR)
    assert stored.verdict is not None and stored.verdict == experiment_verdict(stored)
    assert stored.verdict.recommendation == "ship"
    payload = mrepo.latest_snapshot(session, experiment_id=exp).payload  # type: ignore[union-attr]
    assert payload["version"] == RESULTS_VERSION
    assert payload["verdict"]["recommendation"] == "ship"
    served = json.loads(latest_snapshot_json(session, experiment_id=exp) or "")
    assert served["verdict"] == json.loads(stored.to_json())["verdict"]


def test_results_snapshot_from_an_older_version_gets_its_verdict(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session, planned=100)
    load(session, tmp_path, exp, make_units(300, lift={"treatment": 0.8}))
    snap = compute_results(session, experiment_id=exp)
    old = snap.to_dict()
    del old["verdict"]
    old["version"] = 1
    mrepo.add_snapshot(session, experiment_id=exp, computed_by="old", computed_at=snap.computed_at,
                       as_of=None, data_through=snap.data_through, fingerprint="old",
                       payload=old)
    loaded = latest_snapshot(session, experiment_id=exp)
    assert loaded is not None and loaded.verdict == snap.verdict
    served = json.loads(latest_snapshot_json(session, experiment_id=exp) or "")
    assert served["verdict"]["recommendation"] == "ship"


def test_results_snapshot_stored_before_srm_blocking_is_withheld_on_read(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session, planned=100)
    cols = make_units(500, lift={"treatment": 0.8})
    keep = np.ones(cols["variant"].size, dtype=bool)
    keep[:100] = False
    load(session, tmp_path, exp, {k: v[keep] for k, v in cols.items()})
    snap = compute_results(session, experiment_id=exp)
    old = snap.to_dict()
    old["version"], old["verdict"] = 1, None
    for c in old["comparisons"]:  # as version 1 stored it: numbers shown, no flag
        del c["blocked"], c["blocked_reason"]
        c["lift"], c["p_value"] = 0.5, 1e-9
    mrepo.add_snapshot(session, experiment_id=exp, computed_by="old", computed_at=snap.computed_at,
                       as_of=None, data_through=snap.data_through, fingerprint="old",
                       payload=old)
    loaded = latest_snapshot(session, experiment_id=exp)
    assert loaded is not None
    assert all(c.blocked and c.lift is None and c.p_value is None for c in loaded.comparisons)
    served = json.loads(latest_snapshot_json(session, experiment_id=exp) or "")
    assert all(c["blocked"] and c["lift"] is None for c in served["comparisons"])
    assert served["verdict"]["blocked_by_srm"] is True
