"""Institutional memory on the demo portfolio: search, win rates and RICE calibration,
on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.orm import Session
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.proportion import test_proportions_2indep as sm_test_proportions_2indep

from core import registry
from core.analysis import results
from core.backlog import knowledge, rice
from core.demo import seed_demo
from core.errors import InvalidInput
from core.stats import bayesian_readout
from db import repositories as repo
from db.models import AuditEntry, MetricDailyStat, ResultSnapshot
from tests.conftest import EDITOR

TODAY = date(2026, 6, 15)
"""Demo dates are relative to the seeding day: One-page checkout then ends on 2026-03-15 (Q1),
Dark mode on 04-07, Annual plan on 04-29 and Trust badges on 05-07 (all Q2)."""


@pytest.fixture(scope="module")
def seeded(db_engine: Engine) -> Iterator[Connection]:
    """The demo portfolio seeded once per database, inside a transaction never committed."""
    connection = db_engine.connect()
    outer = connection.begin()
    with Session(bind=connection, join_transaction_mode="create_savepoint",
                 expire_on_commit=False) as session:
        seed_demo(session, today=TODAY)
    yield connection
    outer.rollback()
    connection.close()


@pytest.fixture
def demo(seeded: Connection) -> Iterator[Session]:
    """A session over the seeded demo whose writes are rolled back after the test."""
    savepoint = seeded.begin_nested()
    session = Session(bind=seeded, join_transaction_mode="create_savepoint",
                      expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        savepoint.rollback()


def _rates(rates: list[knowledge.WinRate]) -> dict[str, tuple[int, int]]:
    return {r.group: (r.completed, r.shipped) for r in rates}


def test_knowledge_base_lists_completed_experiments_newest_first(demo: Session) -> None:
    items = knowledge.completed_experiments(demo)
    assert [i.name for i in items] == [
        "Trust badges on cart", "Annual plan discount", "Dark mode default", "One-page checkout"
    ]
    one_page = items[-1]
    assert one_page.decision == "ship" and one_page.won
    assert one_page.learnings.startswith("Removing the address step")
    assert one_page.tags == ("checkout",)
    assert (one_page.ended, one_page.quarter) == (date(2026, 3, 15), "2026-Q1")


ONE_PAGE, TRUST, DARK, ANNUAL = ("One-page checkout", "Trust badges on cart",
                                 "Dark mode default", "Annual plan discount")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("mobile ABANDONMENT", [ONE_PAGE]),  # learnings + hypothesis
        ("checkout", [ONE_PAGE, TRUST]),  # in the name ranks above in the hypothesis
        ("what did we learn about checkout", [ONE_PAGE, TRUST]),  # stop words dropped
        ("dark mode", [DARK]),
        ("smaller discount", [ANNUAL]),  # learnings only
        ("abandoned", [ONE_PAGE]),  # stemmed: "abandonment"
        ("check", [ONE_PAGE, TRUST]),  # the start of a word
        ("revenue per user", [ANNUAL, DARK]),  # hypothesis + metric; "Users switched" below
        ("what did we learn", []),  # no significant word
        ("zebra", []),
    ],
)
def test_search_ranks_any_significant_word_in_name_hypothesis_learnings_or_metrics(
    demo: Session, query: str, expected: list[str]
) -> None:
    """PostgreSQL full-text search and SQLite FTS5 (the `demo` fixture runs on both)."""
    assert [i.name for i in knowledge.completed_experiments(demo, search=query)] == expected


def test_search_reads_metric_names_and_ors_the_words(demo: Session) -> None:
    def found(query: str) -> list[str]:
        return [i.name for i in knowledge.completed_experiments(demo, search=query)]

    assert sorted(found("refund")) == [ANNUAL, ONE_PAGE]  # only in the guardrail refund_rate
    assert found("session minutes")[0] == DARK  # its primary metric session_minutes
    either = found("checkout dark")
    assert either[0] == DARK  # "dark" in its name, hypothesis and learnings
    assert sorted(either) == sorted([ONE_PAGE, TRUST, DARK])
    assert found("checkout dark") == found("dark checkout")
    # the other filters still apply to what the search found
    assert [i.name for i in knowledge.completed_experiments(
        demo, search="checkout", owner="dev.patel")] == [TRUST]


def test_win_rates_by_owner_tag_and_quarter(demo: Session) -> None:
    assert _rates(knowledge.win_rates(demo, by="owner")) == {
        "dev.patel": (1, 1), "maria.lopez": (1, 1), "olivia.brown": (1, 0), "sam.chen": (1, 0)
    }
    assert _rates(knowledge.win_rates(demo, by="tag")) == {
        "checkout": (2, 2), "engagement": (1, 0), "pricing": (1, 0), "trust": (1, 1),
        "ui": (1, 0),
    }
    by_quarter = knowledge.win_rates(demo, by="quarter")
    assert _rates(by_quarter) == {"2026-Q1": (1, 1), "2026-Q2": (3, 1)}
    assert_allclose([r.rate for r in by_quarter], [1.0, 1 / 3], rtol=1e-12)
    with pytest.raises(InvalidInput, match="group by owner or tag or quarter"):
        knowledge.win_rates(demo, by="team")


def test_calibration_on_the_demo_portfolio(demo: Session) -> None:
    result = knowledge.calibration(demo, by="owner")
    # predicted (impact, confidence) of the four completed demo experiments
    assert {p.name: (p.impact, p.confidence, p.won) for p in result.points} == {
        "One-page checkout": (2.0, 80.0, True),
        "Dark mode default": (1.0, 80.0, False),
        "Annual plan discount": (2.0, 50.0, False),
        "Trust badges on cart": (0.5, 100.0, True),
    }
    overall = result.overall
    assert overall is not None and overall.experiments == 4
    # three ideas were rated >= 80 % confident; two of them shipped
    assert (overall.high_confidence, overall.high_confidence_won) == (3, 2)
    assert_allclose(overall.high_confidence_win_share, 2 / 3, rtol=1e-12)
    assert_allclose(overall.mean_confidence, (0.8 + 0.8 + 0.5 + 1.0) / 4, rtol=1e-12)
    assert_allclose(overall.win_rate, 0.5, rtol=1e-12)
    assert_allclose(overall.overconfidence, 0.775 - 0.5, rtol=1e-12)
    groups = {g.group: g for g in result.groups}
    assert (groups["sam.chen"].high_confidence, groups["sam.chen"].high_confidence_won) == (1, 0)
    assert groups["olivia.brown"].high_confidence == 0
    by_tag = {g.group: g for g in knowledge.calibration(demo, by="tag").groups}
    assert (by_tag["checkout"].high_confidence, by_tag["checkout"].high_confidence_won) == (2, 2)
    with pytest.raises(InvalidInput):
        knowledge.calibration(demo, by="quarter")


def _add_primary_data(session: Session, name: str, control: tuple[int, int],
                      treatment: tuple[int, int]) -> int:
    """Load (units, conversions) per arm over two days, unless the demo already loaded some."""
    view = registry.get_experiment_by_name(session, name=name)
    exp = repo.get_experiment(session, experiment_id=view.id)
    assert exp is not None and exp.primary_metric_id is not None
    loaded = session.scalar(select(func.count()).select_from(MetricDailyStat).where(
        MetricDailyStat.experiment_id == exp.id, MetricDailyStat.metric_id == exp.primary_metric_id
    ))
    if not loaded:
        for variant, (n, x) in zip(exp.variants, (control, treatment), strict=True):
            for day, share in ((0, n // 2), (1, n - n // 2)):
                conv = x // 2 if day == 0 else x - x // 2
                session.add(MetricDailyStat(
                    experiment_id=exp.id, variant_id=variant.id, metric_id=exp.primary_metric_id,
                    day=date(2026, 3, 1) + timedelta(days=day), n=share, sum=conv,
                    sum_squares=conv, source="test"))
        session.flush()
    return exp.id


def _arm_totals(session: Session, experiment_id: int) -> list[tuple[int, int]]:
    exp = repo.get_experiment(session, experiment_id=experiment_id)
    assert exp is not None
    out = []
    for variant in exp.variants:
        n, x = session.execute(select(func.sum(MetricDailyStat.n), func.sum(MetricDailyStat.sum))
                               .where(MetricDailyStat.variant_id == variant.id,
                                      MetricDailyStat.metric_id == exp.primary_metric_id)).one()
        out.append((int(n), int(round(x))))
    return out


def test_calibration_uses_realised_lift_and_significance(demo: Session) -> None:
    exp_id = _add_primary_data(demo, "One-page checkout", (8_500, 850), (8_500, 960))
    demo.execute(delete(ResultSnapshot).where(ResultSnapshot.experiment_id == exp_id))
    (n_c, x_c), (n_t, x_t) = _arm_totals(demo, exp_id)
    result = knowledge.primary_result(demo, experiment_id=exp_id)
    assert result is not None
    assert result.source.startswith("computed")  # no snapshot stored any more
    # reference: the results decide on the lift's own p-value, Fieller's ratio z-test, which at
    # ratio 1 is the difference's two-proportion Wald test: statsmodels' p
    p_ref = sm_test_proportions_2indep(x_t, n_t, x_c, n_c, method="wald").pvalue
    assert_allclose(result.p_value, p_ref, rtol=1e-9)
    assert_allclose(result.lift, (x_t / n_t) / (x_c / n_c) - 1, rtol=1e-12)
    assert p_ref < 0.05  # the demo's one-page checkout is a clear, fully powered win
    assert result.significant and result.decision_state == "significant"
    point = next(p for p in knowledge.calibration(demo).points if p.id == exp_id)
    assert_allclose(point.lift, result.lift, rtol=1e-12)
    assert point.significant_win is True
    item = next(i for i in knowledge.completed_experiments(demo) if i.id == exp_id)
    assert item.result == result
    group = next(g for g in knowledge.calibration(demo).groups if g.group == "maria.lopez")
    assert (group.with_result, group.significant_wins) == (1, 1)


def test_primary_result_prefers_the_latest_snapshot(demo: Session) -> None:
    exp_id = _add_primary_data(demo, "One-page checkout", (8_500, 850), (8_500, 960))
    computed = knowledge.primary_result(demo, experiment_id=exp_id)
    results.refresh_results(demo, experiment_id=exp_id, actor=EDITOR)
    stored = knowledge.primary_result(demo, experiment_id=exp_id)
    assert computed is not None and stored is not None
    assert stored.source.startswith("snapshot of")
    assert_allclose(stored.lift, computed.lift, rtol=1e-12)


def test_primary_result_is_none_without_data(demo: Session) -> None:
    idea = registry.get_experiment_by_name(demo, name="Social login")
    assert knowledge.primary_result(demo, experiment_id=idea.id) is None


def test_calibration_uses_the_prediction_recorded_at_promotion(demo: Session) -> None:
    idea = registry.get_experiment_by_name(demo, name="Social login")
    promoted = rice.promote_idea(demo, experiment_id=idea.id, expected_version=idea.version,
                                 actor=EDITOR)
    # after promotion someone rewrites the prediction; calibration keeps the original one
    edited = registry.update_experiment(demo, experiment_id=idea.id,
                                        changes={"impact": 0.25, "confidence": 10},
                                        expected_version=promoted.version, actor=EDITOR)
    running = registry.transition_experiment(demo, experiment_id=idea.id, to_status="running",
                                             expected_version=edited.version, actor=EDITOR)
    registry.transition_experiment(demo, experiment_id=idea.id, to_status="completed",
                                   decision="ship", expected_version=running.version,
                                   actor=EDITOR, on=TODAY)
    # the prediction is read from experiments.promoted_rice: the audit entry is history only
    demo.execute(delete(AuditEntry).where(AuditEntry.action == "promote"))
    point = next(p for p in knowledge.calibration(demo).points if p.name == "Social login")
    assert (point.impact, point.confidence, point.won) == (2.0, 80.0, True)
    overall = knowledge.calibration(demo).overall
    assert overall is not None and (overall.high_confidence, overall.high_confidence_won) == (4, 3)


# --------------------------------------------------------------------------- programme impact


def test_programme_impact_shrinks_the_demo_lifts_as_statsmodels_pools_them(demo: Session) -> None:
    """Reference: statsmodels' ``combine_effects`` (DerSimonian–Laird) on the lifts and SEs
    the knowledge base reads, in each metric's good direction, and the closed form
    w y + (1 - w) mu for each shrunk lift."""
    items = knowledge.completed_experiments(demo)
    impact = knowledge.programme_impact(demo, items=items)
    with_result = [i for i in items if i.result is not None and i.result.lift_se]
    assert len(with_result) == impact.population == 4 and impact.without_result == 0
    signs = np.array([1.0 if i.result.higher_is_better else -1.0  # type: ignore[union-attr]
                      for i in with_result])
    y = signs * np.array([i.result.lift for i in with_result])  # type: ignore[union-attr]
    se = np.array([i.result.lift_se for i in with_result])  # type: ignore[union-attr]
    ref = combine_effects(y, se**2, method_re="dl")
    s = impact.shrinkage
    assert s.applied and s.method == "dersimonian_laird"
    assert ref.tau2 > 0  # the demo's four experiments differ by more than their noise
    assert_allclose(s.tau2, ref.tau2, rtol=1e-10)
    assert_allclose(s.prior_mean, ref.mean_effect_re, rtol=1e-10)
    w = ref.tau2 / (ref.tau2 + se**2)
    expected = signs * (w * y + (1 - w) * ref.mean_effect_re)
    assert_allclose([impact.lift_of(i.id).shrunk_lift for i in with_result],  # type: ignore[union-attr]
                    expected, rtol=1e-10)
    # the two shipped winners (One-page checkout, Trust badges) lose part of their lift
    shipped = [i for i in with_result if i.won]
    assert {i.name for i in shipped} == {ONE_PAGE, TRUST}
    for item in shipped:
        x = impact.lift_of(item.id)
        assert x is not None and 0 < x.shrunk_lift < x.lift and 0 < x.weight < 1
    assert impact.shipped.count == 2
    assert_allclose(impact.shipped.raw_sum, sum(i.result.lift for i in shipped),  # type: ignore[union-attr]
                    rtol=1e-12)
    assert impact.shipped.shrunk_sum < 0.9 * impact.shipped.raw_sum  # a non-trivial shrinkage
    assert "DerSimonian–Laird" in impact.method and "empirical Bayes" in impact.method
    assert "over all 4 completed experiments" in impact.summary


def test_primary_result_lift_se_is_the_delta_method_se(demo: Session) -> None:
    """Reference: Var(lift) = Var(p_t)/p_c^2 + p_t^2 Var(p_c)/p_c^4 with Var(p) = p(1-p)/n
    (delta method, GrowthBook "Statistical Details"), from the arms' counts."""
    exp_id = _add_primary_data(demo, "One-page checkout", (8_500, 850), (8_500, 960))
    (n_c, x_c), (n_t, x_t) = _arm_totals(demo, exp_id)
    result = knowledge.primary_result(demo, experiment_id=exp_id)
    assert result is not None and result.lift_se is not None
    p_c, p_t = x_c / n_c, x_t / n_t
    expected = np.sqrt(p_t * (1 - p_t) / n_t / p_c**2 + p_t**2 * p_c * (1 - p_c) / n_c / p_c**4)
    assert_allclose(result.lift_se, expected, rtol=1e-9)


def test_lift_standard_error_undoes_a_gaussian_prior_and_falls_back_to_the_interval(
    demo: Session
) -> None:
    exp_id = registry.get_experiment_by_name(demo, name=ONE_PAGE).id
    snapshot = results.latest_snapshot(demo, experiment_id=exp_id)
    assert snapshot is not None
    row = snapshot.rows(role="primary")[0]
    assert row.lift is not None and row.bayesian is not None
    flat_se = knowledge.lift_standard_error(row, alpha=snapshot.alpha)
    assert flat_se == row.bayesian.posterior_sd
    # a plan with a Gaussian prior: the posterior SD is smaller; the SE is recovered exactly
    informed = replace(row, bayesian=bayesian_readout(row.lift, flat_se, prior_mean=0.0,
                                                      prior_sd=0.05))
    assert informed.bayesian is not None and informed.bayesian.posterior_sd < flat_se
    assert_allclose(knowledge.lift_standard_error(informed, alpha=0.05), flat_se, rtol=1e-12)
    # no readout (an old snapshot): half the two-sided interval's width over z_{0.975}; Fieller's
    # interval is slightly skewed, so it matches the delta-method SE to a few percent
    no_readout = replace(row, bayesian=None)
    assert_allclose(knowledge.lift_standard_error(no_readout, alpha=snapshot.alpha), flat_se,
                    rtol=0.05)
    assert knowledge.lift_standard_error(replace(no_readout, sequential=True), alpha=0.05) is None
    assert knowledge.lift_standard_error(
        replace(no_readout, alternative="greater", lift_ci_high=math.inf), alpha=0.05) is None


def test_knowledge_base_search_shrinks_over_the_whole_portfolio(demo: Session) -> None:
    whole = knowledge.knowledge_base(demo)
    found = knowledge.knowledge_base(demo, search="dark mode")
    assert [e.name for e in found.experiments] == [DARK]
    assert found.impact.population == 4 and len(found.everything) == 4
    dark = found.experiments[0].id
    assert found.impact.lift_of(dark) == whole.impact.lift_of(dark)
    csv = knowledge.knowledge_csv(found.experiments, found.impact)
    header, row = csv.lstrip("\ufeff").splitlines()[:2]
    assert header.split(",")[7:12] == ["lift", "lift_se", "lift_shrunk", "lift_shrunk_sd",
                                       "shrinkage_weight"]
    x = found.impact.lift_of(dark)
    assert x is not None
    assert row.split(",")[9] == f"{x.shrunk_lift:.6g}"


def test_calibration_uses_the_shrunk_lifts_beside_the_raw(demo: Session) -> None:
    items = knowledge.completed_experiments(demo)
    impact = knowledge.programme_impact(demo, items=items)
    cal = knowledge.calibration(demo, items=items)
    assert cal.impact == impact
    for point in cal.points:
        x = impact.lift_of(point.id)
        assert x is not None and point.shrunk_lift == x.shrunk_lift and point.lift == x.lift
    assert cal.overall is not None and cal.overall.mean_shrunk_lift is not None
    assert_allclose(cal.overall.mean_shrunk_lift, np.mean([x.shrunk_lift for x in impact.lifts]),
                    rtol=1e-12)
    assert cal.overall.mean_lift != cal.overall.mean_shrunk_lift


def test_programme_impact_with_two_experiments_shrinks_nothing_and_says_why(
    demo: Session
) -> None:
    items = knowledge.completed_experiments(demo)[:2]
    impact = knowledge.programme_impact(demo, items=items)
    assert not impact.shrinkage.applied
    assert "at least 3" in impact.summary and "raw lifts are shown" in impact.summary
    for x in impact.lifts:
        assert x.shrunk_lift == x.lift and x.weight == 1.0
    assert impact.shipped.shrunk_sum == impact.shipped.raw_sum
