"""A metric with no variation is not a test (issue 22, item 5): it reads "cannot be tested: no
variation", shows no effect or p-value, and stays out of the multiple-testing correction, so
the other metrics' adjusted p-values are those of the tested metrics alone (reference:
statsmodels ``multipletests(method="holm")``). On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session
from statsmodels.stats.multitest import multipletests

from core import catalogue
from core.analysis.results import compute_results, cumulative_series, no_variation
from core.analysis.snapshot import MetricComparison
from core.stats import MetricStats
from tests.conftest import EDITOR
from tests.core.analysis.test_results_inference import binomial, normal, put
from tests.core.data.test_ingestion import make_experiment

TESTED = {  # four metrics with a real difference of various strength, in the family
    "conv": [binomial(10000, 1000), binomial(10000, 1100)],
    "revenue": [normal(2000, 10.0, 4.0), normal(2000, 10.4, 4.0)],
    "load_ms": [normal(2000, 100.0, 30.0), normal(2000, 98.0, 30.0)],
    "refunds": [binomial(10000, 300), binomial(10000, 330)],
}
FLAT = {  # two metrics without variation: no conversion anywhere, and a constant
    "never_converts": [binomial(10000, 0), binomial(10000, 0)],
    "constant": [normal(2000, 5.0, 0.0), normal(2000, 5.0, 0.0)],
}


def _metrics(session: Session) -> None:
    known = {m.name for m in catalogue.list_metrics(session)}
    for name, kind in (("never_converts", "binomial"), ("constant", "mean")):
        if name not in known:
            catalogue.create_metric(session, data={"name": name, "kind": kind,
                                                   "higher_is_better": True}, actor=EDITOR)


def _rows(session: Session, data: dict[str, list], name: str) -> dict[str, MetricComparison]:
    _metrics(session)
    primary, *secondaries = data
    exp = make_experiment(session, name=name, primary=primary, guardrails=(),
                          secondaries=tuple(secondaries), planned=100)
    for metric, arms in data.items():
        put(session, exp, metric, arms, assign=metric == primary)
    return {r.metric: r for r in compute_results(session, experiment_id=exp).comparisons}


def test_results_metrics_without_variation_stay_out_of_the_holm_family(session: Session) -> None:
    alone = _rows(session, TESTED, "Four metrics")
    both = _rows(session, {**TESTED, **FLAT}, "Four metrics and two flat ones")
    raw = [alone[m].lift_p_value for m in TESTED]
    reference = multipletests(raw, method="holm")[1]  # statsmodels, m = 4
    assert_allclose([alone[m].adjusted_p_value for m in TESTED], reference, rtol=1e-12)
    # the two flat metrics change nothing: the same family of 4, not 6
    assert_allclose([both[m].adjusted_p_value for m in TESTED], reference, rtol=1e-12)
    assert [both[m].decision_state for m in TESTED] == [alone[m].decision_state for m in TESTED]
    for metric, (words, value) in {"never_converts": ("no unit converted in either arm", 0.0),
                                   "constant": ("every unit has the value 5 in both arms",
                                                5.0)}.items():
        row = both[metric]
        assert row.decision_state == "not_testable" and row.untestable == "no_variation"
        assert row.reason.startswith(f"{metric} cannot be tested: no variation: {words}")
        assert "left out of the Holm correction" in row.reason
        assert (row.control_mean, row.treatment_mean) == (value, value)
        assert row.p_value is row.lift_p_value is row.adjusted_p_value is None
        assert row.lift is row.lift_ci_low is row.lift_ci_high is row.diff_ci_low is None
        assert row.bayesian is None and row.test == ""


def test_results_flat_guardrail_is_not_testable_and_leaves_the_other_alone(
    session: Session,
) -> None:
    """A guardrail with no variation (no refund anywhere) is no member of the guardrail family:
    the other guardrail's adjusted p is its own one-sided p (a family of 1)."""
    _metrics(session)
    exp = make_experiment(session, name="Guardrails", primary="conv",
                          guardrails=("never_converts", "load_ms"), secondaries=(), planned=100)
    put(session, exp, "conv", TESTED["conv"])
    put(session, exp, "never_converts", FLAT["never_converts"], assign=False)
    put(session, exp, "load_ms", [normal(2000, 100.0, 30.0), normal(2000, 101.5, 30.0)],
        assign=False)
    rows = {r.metric: r for r in compute_results(session, experiment_id=exp).comparisons}
    flat, other = rows["never_converts"], rows["load_ms"]
    assert flat.decision_state == "not_testable"
    assert flat.noninferiority_p_value is None and flat.adjusted_p_value is None
    assert_allclose(other.adjusted_p_value, other.lift_p_value, rtol=1e-12)


def test_results_primary_without_variation_asks_to_investigate(session: Session) -> None:
    _metrics(session)
    exp = make_experiment(session, name="Broken logging", primary="never_converts",
                          guardrails=(), secondaries=(), planned=100)
    put(session, exp, "never_converts", FLAT["never_converts"])
    snapshot = compute_results(session, experiment_id=exp)
    assert snapshot.verdict is not None
    assert snapshot.verdict.recommendation == "investigate"
    assert snapshot.verdict.basis == "primary_untestable"
    assert "cannot be tested: no variation" in snapshot.verdict.reason
    assert cumulative_series(session, experiment_id=exp) == []  # no band to draw either


@pytest.mark.parametrize(("kind", "control", "treatment", "flat"), [
    ("binomial", MetricStats(50, 0, 0), MetricStats(60, 0, 0), True),
    ("binomial", MetricStats(50, 50, 50), MetricStats(60, 60, 60), True),
    # all-0 against all-1 is a difference the small-count test can judge: tested
    ("binomial", MetricStats(50, 0, 0), MetricStats(60, 60, 60), False),
    ("binomial", MetricStats(50, 1, 1), MetricStats(60, 0, 0), False),
    # a constant 0.1 stored as sums carries rounding (0.1 is not exact in binary)
    ("mean", MetricStats(30, 30 * 0.1, 30 * 0.1 * 0.1), MetricStats(40, 40 * 0.1, 40 * 0.01),
     True),
    ("mean", MetricStats(30, 60.0, 120.0), MetricStats(40, 120.0, 360.0), True),
    ("mean", MetricStats(30, 60.0, 120.0 + 1e-6), MetricStats(40, 80.0, 160.0), False),
    # revenue 0 in every unit, sessions varying: the ratio is 0 everywhere
    ("ratio", MetricStats(30, 0.0, 0.0, sum_den=90.0, sum_den_squares=300.0, sum_num_den=0.0),
     MetricStats(40, 0.0, 0.0, sum_den=120.0, sum_den_squares=400.0, sum_num_den=0.0), True),
    ("ratio", MetricStats(30, 10.0, 8.0, sum_den=90.0, sum_den_squares=300.0, sum_num_den=35.0),
     MetricStats(40, 0.0, 0.0, sum_den=120.0, sum_den_squares=400.0, sum_num_den=0.0), False),
])
def test_no_variation_is_every_unit_alike(kind: str, control: MetricStats,
                                          treatment: MetricStats, flat: bool) -> None:
    assert (no_variation(kind, control, treatment) is not None) == flat
