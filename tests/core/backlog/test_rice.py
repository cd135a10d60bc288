"""The backlog service: RICE scoring and validation, ranking, edits, promotion, archive,
reach prefill and the testability flag, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest
from numpy.testing import assert_allclose
from scipy.stats import norm
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.backlog import rice
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RuleViolation
from db import repositories as repo
from db.models import AssignmentDailyCount, AuditEntry, MetricDailyStat
from tests.conftest import EDITOR, VIEWER

AB = [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}]


# --------------------------------------------------------------------------- pure scoring


def test_score_is_reach_times_impact_times_confidence_over_effort() -> None:
    # Intercom's worked form: 70,000 users/quarter x 2 (high) x 80 % / 3 person-weeks.
    expected = 70_000 * 2 * 0.80 / 3
    assert_allclose(rice.score(70_000, 2, 80, 3), expected, rtol=1e-12)
    assert_allclose(rice.score(0, 3, 100, 1), 0.0)
    assert_allclose(rice.score(1_000, 0.25, 50, 0.5), 1_000 * 0.25 * 0.5 / 0.5, rtol=1e-12)


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"reach": -1}, "reach: cannot be negative"),
        ({"impact": 4}, "impact: 4 is not on the RICE scale"),
        ({"impact": 0}, "impact: 0 is not on the RICE scale"),
        ({"confidence": 101}, "confidence: 101 is outside 0–100"),
        ({"confidence": -5}, "confidence: -5 is outside 0–100"),
        ({"effort": 0}, "effort: must be more than 0"),
        ({"effort": -2}, "effort: must be more than 0"),
        ({"reach": float("nan")}, "reach: give units affected"),
        ({"effort": "lots"}, "effort: 'lots' is not a number"),
        ({"confidence": True}, "confidence: True is not a number"),
    ],
)
def test_rice_problems_name_the_field_and_the_fix(inputs: dict, fragment: str) -> None:
    problems = rice.rice_problems(**inputs)
    assert len(problems) == 1
    assert fragment in problems[0]


def test_rice_problems_accepts_every_scale_value_and_bounds() -> None:
    for impact in (3, 2, 1, 0.5, 0.25):
        assert rice.rice_problems(reach=0, impact=impact, confidence=0, effort=0.1) == []
    assert rice.rice_problems(confidence=100) == []


def test_score_lists_every_problem_at_once() -> None:
    with pytest.raises(InvalidInput) as err:
        rice.score(-1, 5, 150, 0)
    assert [p.split(":")[0] for p in err.value.problems] == [
        "reach", "impact", "confidence", "effort"
    ]


# --------------------------------------------------------------------------- service helpers


@pytest.fixture
def metrics(session: Session) -> None:
    for name, kind in (("signup_rate", "binomial"), ("revenue_per_user", "mean")):
        catalogue.create_metric(session, data={"name": name, "kind": kind}, actor=EDITOR)


def _idea(session: Session, name: str, reach: float, impact: float, confidence: float,
          effort: float, **extra: object) -> registry.ExperimentView:
    data = {"name": name, "owner": extra.pop("owner", "pat.pm"), "reach": reach,
            "impact": impact, "confidence": confidence, "effort": effort, **extra}
    return registry.create_experiment(session, data=data, actor=EDITOR)


def _audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def _names(ideas: list[rice.Idea]) -> list[str]:
    return [i.experiment.name for i in ideas]


# --------------------------------------------------------------------------- ranking and edits


def test_rank_ideas_orders_by_score_and_leaves_others_out(session: Session) -> None:
    low = _idea(session, "Low", 1_000, 1, 50, 2)  # 250
    high = _idea(session, "High", 10_000, 2, 80, 4)  # 4000
    mid = _idea(session, "Mid", 5_000, 0.5, 100, 1)  # 2500
    registry.create_experiment(session, data={"name": "Unscored", "owner": "x"}, actor=EDITOR)
    archived = _idea(session, "Archived", 99_999, 3, 100, 1)
    rice.archive_idea(session, experiment_id=archived.id, expected_version=archived.version,
                      actor=EDITOR)
    ranked = rice.rank_ideas(session)
    assert _names(ranked) == ["High", "Mid", "Low", "Unscored"]
    assert [i.rank for i in ranked] == [1, 2, 3, 4]
    assert_allclose([i.score for i in ranked[:3]], [4000, 2500, 250], rtol=1e-12)
    assert ranked[-1].score is None
    assert {high.id, mid.id, low.id} <= {i.id for i in ranked}


def test_rank_ideas_filters_keep_global_ranks(session: Session) -> None:
    _idea(session, "A", 10_000, 2, 80, 4, owner="ann", tags=["growth"], target_segment="Mobile")
    _idea(session, "B", 5_000, 1, 80, 4, owner="bob", tags=["Growth", "ui"],
          target_segment="web users")
    _idea(session, "C", 1_000, 1, 80, 4, owner="ann", tags=["ui"], target_segment="Web  Users")
    assert [(i.rank, i.experiment.name) for i in rice.rank_ideas(session, owner="ANN")] == [
        (1, "A"), (3, "C")
    ]
    assert _names(rice.rank_ideas(session, tag="growth")) == ["A", "B"]
    assert _names(rice.rank_ideas(session, segment="web users")) == ["B", "C"]
    owners, tags, segments = rice.filter_choices(session)
    assert owners == ["ann", "bob"]
    assert set(tags) == {"growth", "Growth", "ui"}
    assert "Mobile" in segments


def test_edit_rice_recomputes_score_reranks_and_is_audited(session: Session) -> None:
    first = _idea(session, "First", 10_000, 1, 50, 1)  # 5000
    second = _idea(session, "Second", 8_000, 1, 50, 1)  # 4000
    assert _names(rice.rank_ideas(session)) == ["First", "Second"]
    edited = rice.edit_rice(session, experiment_id=second.id,
                            changes={"impact": 3, "confidence": 100},
                            expected_version=second.version, actor=EDITOR)
    assert_allclose(edited.rice_score, 8_000 * 3 * 1.0 / 1, rtol=1e-12)
    assert edited.version == second.version + 1
    assert _names(rice.rank_ideas(session)) == ["Second", "First"]
    last = registry.audit_history(session, experiment_id=second.id)[-1]
    assert last.action == "update" and last.actor == EDITOR.name
    assert last.changes["impact"] == [1.0, 3.0]
    assert last.changes["confidence"] == [50.0, 100.0]
    assert first.rice_score == 5000


def test_edit_rice_bad_input_writes_nothing(session: Session) -> None:
    idea = _idea(session, "Careful", 1_000, 1, 50, 1)
    before = _audit_count(session)
    for changes, fragment in (
        ({"impact": 4}, "impact"),
        ({"effort": 0}, "effort"),
        ({"confidence": 120, "reach": -3}, "confidence"),
        ({"reach": None}, "cannot be cleared"),
        ({"name": "Renamed"}, "only reach, impact, confidence and effort"),
        ({}, "nothing to change"),
    ):
        with pytest.raises(InvalidInput, match=fragment):
            rice.edit_rice(session, experiment_id=idea.id, changes=changes,
                           expected_version=idea.version, actor=EDITOR)
    after = registry.get_experiment(session, experiment_id=idea.id)
    assert (after.impact, after.effort, after.rice_score, after.version) == (
        1.0, 1.0, idea.rice_score, idea.version
    )
    assert _audit_count(session) == before


def test_edit_many_validates_everything_before_writing(session: Session) -> None:
    a = _idea(session, "Batch A", 1_000, 1, 50, 1)
    b = _idea(session, "Batch B", 1_000, 1, 50, 1)
    before = _audit_count(session)
    with pytest.raises(InvalidInput) as err:
        rice.edit_many(session, actor=EDITOR, edits=[
            rice.RiceEdit(a.id, a.version, {"reach": 2_000}),
            rice.RiceEdit(b.id, b.version, {"impact": 7}),
        ])
    assert err.value.problems[0].startswith("Batch B: impact")
    assert registry.get_experiment(session, experiment_id=a.id).reach == 1_000
    assert _audit_count(session) == before
    with pytest.raises(InvalidInput, match="changed by someone else"):
        rice.edit_many(session, actor=EDITOR, edits=[
            rice.RiceEdit(a.id, a.version + 5, {"reach": 2_000})])
    done = rice.edit_many(session, actor=EDITOR, edits=[
        rice.RiceEdit(a.id, a.version, {"reach": 2_000}),
        rice.RiceEdit(b.id, b.version, {"impact": 2}),
    ])
    assert [v.rice_score for v in done] == [1_000.0, 1_000.0]
    assert _audit_count(session) == before + 2


def test_viewer_is_refused_every_write(session: Session) -> None:
    idea = _idea(session, "Read only", 1_000, 1, 50, 1, hypothesis="h")
    before = _audit_count(session)
    calls = [
        lambda: rice.edit_rice(session, experiment_id=idea.id, changes={"reach": 5},
                               expected_version=idea.version, actor=VIEWER),
        lambda: rice.edit_many(session, actor=VIEWER, edits=[]),
        lambda: rice.promote_idea(session, experiment_id=idea.id,
                                  expected_version=idea.version, actor=VIEWER),
        lambda: rice.archive_idea(session, experiment_id=idea.id,
                                  expected_version=idea.version, actor=VIEWER),
        lambda: rice.restore_idea(session, experiment_id=idea.id,
                                  expected_version=idea.version, actor=VIEWER),
        lambda: rice.apply_observed_reach(session, experiment_id=idea.id,
                                          expected_version=idea.version, actor=VIEWER),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied, match="viewer role"):
            call()
    assert registry.get_experiment(session, experiment_id=idea.id).version == idea.version
    assert _audit_count(session) == before


def test_stale_version_is_a_conflict(session: Session) -> None:
    idea = _idea(session, "Stale", 1_000, 1, 50, 1, hypothesis="h")
    for call in (
        lambda: rice.edit_rice(session, experiment_id=idea.id, changes={"reach": 5},
                               expected_version=idea.version - 1, actor=EDITOR),
        lambda: rice.archive_idea(session, experiment_id=idea.id,
                                  expected_version=idea.version + 1, actor=EDITOR),
    ):
        with pytest.raises(Conflict):
            call()


# --------------------------------------------------------------------------- promote, archive


def test_promote_leaves_backlog_and_is_audited_with_the_prediction(
    session: Session, metrics: None
) -> None:
    idea = _idea(session, "Promote me", 20_000, 2, 80, 2, hypothesis="It helps.",
                 primary_metric="signup_rate")
    promoted = rice.promote_idea(session, experiment_id=idea.id,
                                 expected_version=idea.version, actor=EDITOR)
    assert promoted.status == "proposed"
    assert promoted.version == idea.version + 1
    assert "Promote me" not in _names(rice.rank_ideas(session))
    assert [v.name for v in rice.promoted_experiments(session)] == ["Promote me"]
    entry = registry.audit_history(session, experiment_id=idea.id)[-1]
    assert entry.action == "promote" and entry.actor == EDITOR.name
    assert entry.changes["stage"] == ["backlog idea", "proposed experiment"]
    assert entry.changes["rice_at_promotion"][1] == {
        "reach": 20_000.0, "impact": 2.0, "confidence": 80.0, "effort": 2.0,
        "rice_score": 16_000.0,
    }
    with pytest.raises(RuleViolation, match="already promoted"):
        rice.promote_idea(session, experiment_id=idea.id,
                          expected_version=promoted.version, actor=EDITOR)
    with pytest.raises(RuleViolation, match="already promoted"):
        rice.edit_rice(session, experiment_id=idea.id, changes={"reach": 1},
                       expected_version=promoted.version, actor=EDITOR)


def test_promotion_state_comes_from_promoted_at_not_the_audit_log(
    session: Session, metrics: None
) -> None:
    """Deleting the real `promote` entry and forging one for another idea changes nothing:
    the backlog reads experiments.promoted_at, the knowledge base promoted_rice."""
    from db import state_repository
    from db.models import Experiment

    kept = _idea(session, "Promoted for good", 20_000, 2, 80, 2, hypothesis="It helps.",
                 primary_metric="signup_rate")
    forged = _idea(session, "Still an idea", 1_000, 1, 50, 1, hypothesis="h",
                   primary_metric="signup_rate")
    promoted = rice.promote_idea(session, experiment_id=kept.id,
                                 expected_version=kept.version, actor=EDITOR)
    row = session.get(Experiment, kept.id)
    assert row is not None and row.promoted_at is not None
    assert row.promoted_rice == {"reach": 20_000.0, "impact": 2.0, "confidence": 80.0,
                                 "effort": 2.0, "rice_score": 16_000.0}

    session.execute(delete(AuditEntry).where(AuditEntry.action == "promote"))
    repo.add_audit(session, actor="someone", entity_type="experiment", entity_id=forged.id,
                   action="promote", changes={"rice_at_promotion": [None, {"impact": 3.0}]})
    session.commit()

    assert "Promoted for good" not in _names(rice.rank_ideas(session))
    assert "Still an idea" in _names(rice.rank_ideas(session))
    assert [v.name for v in rice.promoted_experiments(session)] == ["Promoted for good"]
    assert state_repository.rice_at_promotion(session) == {kept.id: row.promoted_rice}
    with pytest.raises(RuleViolation, match="already promoted"):
        rice.promote_idea(session, experiment_id=kept.id,
                          expected_version=promoted.version, actor=EDITOR)
    rice.promote_idea(session, experiment_id=forged.id, expected_version=forged.version,
                      actor=EDITOR)
    assert "Still an idea" not in _names(rice.rank_ideas(session))


def test_promote_needs_hypothesis_and_primary_metric_and_writes_nothing(
    session: Session,
) -> None:
    idea = _idea(session, "Vague", 1_000, 1, 50, 1)
    before = _audit_count(session)
    with pytest.raises(RuleViolation, match="needs a hypothesis and a primary metric"):
        rice.promote_idea(session, experiment_id=idea.id, expected_version=idea.version,
                          actor=EDITOR)
    assert _audit_count(session) == before
    assert "Vague" in _names(rice.rank_ideas(session))


def test_only_proposed_ideas_are_promoted_or_archived(session: Session, metrics: None) -> None:
    exp = registry.create_experiment(session, actor=EDITOR, data={
        "name": "Live", "owner": "o", "hypothesis": "h", "primary_metric": "signup_rate",
        "variants": AB, "planned_sample_size": 100})
    live = registry.transition_experiment(session, experiment_id=exp.id, to_status="running",
                                          expected_version=exp.version, actor=EDITOR)
    with pytest.raises(RuleViolation, match="running, not a backlog idea"):
        rice.promote_idea(session, experiment_id=live.id, expected_version=live.version,
                          actor=EDITOR)
    with pytest.raises(RuleViolation, match="running, not a backlog idea"):
        rice.archive_idea(session, experiment_id=live.id, expected_version=live.version,
                          actor=EDITOR)


def test_archive_and_restore_are_audited(session: Session) -> None:
    idea = _idea(session, "Shelve", 1_000, 1, 50, 1)
    archived = rice.archive_idea(session, experiment_id=idea.id,
                                 expected_version=idea.version, actor=EDITOR,
                                 reason="  not this year ")
    assert archived.archived_at is not None
    assert "Shelve" not in _names(rice.rank_ideas(session))
    assert [v.name for v in rice.archived_ideas(session)] == ["Shelve"]
    entry = registry.audit_history(session, experiment_id=idea.id)[-1]
    assert (entry.action, entry.reason) == ("archive", "not this year")
    assert entry.changes["archived_at"][0] is None
    with pytest.raises(RuleViolation, match="archived"):
        rice.archive_idea(session, experiment_id=idea.id,
                          expected_version=archived.version, actor=EDITOR)
    restored = rice.restore_idea(session, experiment_id=idea.id,
                                 expected_version=archived.version, actor=EDITOR)
    assert restored.archived_at is None
    assert registry.audit_history(session, experiment_id=idea.id)[-1].action == "restore"
    assert "Shelve" in _names(rice.rank_ideas(session))


def test_not_an_idea_says_where_an_idea_went(session: Session, metrics: None) -> None:
    """Issue 23: a page that cannot show an idea says why (archived, promoted, launched)."""
    shelved = _idea(session, "Shelved", 1_000, 1, 50, 1)
    moved = _idea(session, "Moved on", 1_000, 1, 50, 1, hypothesis="It helps.",
                  primary_metric="signup_rate")
    kept = _idea(session, "Still here", 1_000, 1, 50, 1)
    rice.archive_idea(session, experiment_id=shelved.id, expected_version=shelved.version,
                      actor=EDITOR)
    rice.promote_idea(session, experiment_id=moved.id, expected_version=moved.version,
                      actor=EDITOR)
    archived = rice.not_an_idea(session, experiment_id=shelved.id)
    assert archived is not None and archived.why == "archived"
    assert archived.message.startswith("'Shelved' is archived: restore it")
    promoted = rice.not_an_idea(session, experiment_id=moved.id)
    assert promoted is not None and promoted.why == "promoted"
    assert "'Moved on' was promoted" in promoted.message and "Planner" in promoted.message
    assert rice.not_an_idea(session, experiment_id=kept.id) is None
    with pytest.raises(NotFound):
        rice.not_an_idea(session, experiment_id=kept.id + 1000)


# --------------------------------------------------------------------------- observations


def _observed_segment(session: Session, segment: str, *, days: int, units_per_arm: int,
                      conversions_per_day: int) -> None:
    """A launched experiment on `segment` with daily assignments and control conversions."""
    exp = registry.create_experiment(session, actor=EDITOR, data={
        "name": f"Past test on {segment}", "owner": "o", "hypothesis": "h",
        "target_segment": segment, "primary_metric": "signup_rate", "variants": AB,
        "planned_sample_size": 1000})
    registry.transition_experiment(session, experiment_id=exp.id, to_status="running",
                                   expected_version=exp.version, actor=EDITOR)
    orm = repo.get_experiment(session, experiment_id=exp.id)
    assert orm is not None and orm.primary_metric_id is not None
    start = date(2026, 1, 1)
    for offset in range(days):
        day = start + timedelta(days=offset)
        for variant in orm.variants:
            session.add(AssignmentDailyCount(experiment_id=exp.id, variant_id=variant.id,
                                             day=day, units=units_per_arm))
        control = orm.variants[0]
        session.add(MetricDailyStat(
            experiment_id=exp.id, variant_id=control.id, metric_id=orm.primary_metric_id,
            day=day, n=units_per_arm, sum=conversions_per_day,
            sum_squares=conversions_per_day, source="test"))
    session.flush()


def _fleiss_n(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Closed-form two-proportion sample size per arm (Fleiss, Levin & Paik 2003, eq. 4.14)."""
    pbar = (p1 + p2) / 2
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    top = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return (top / abs(p2 - p1)) ** 2


def test_testability_flag_uses_the_planner_on_observed_baseline_and_traffic(
    session: Session, metrics: None
) -> None:
    # 10 days x 500 units per arm = 1,000 units a day; control converts 25/500 = 5 %.
    _observed_segment(session, "New visitors", days=10, units_per_arm=500,
                      conversions_per_day=25)
    _idea(session, "Tiny lift", 1, 1, 50, 1, primary_metric="signup_rate", mde=0.05,
          target_segment="new visitors", variants=AB)
    _idea(session, "Big lift", 1, 1, 50, 1, primary_metric="signup_rate", mde=0.5,
          target_segment="New Visitors")
    _idea(session, "No MDE", 1, 1, 50, 1, primary_metric="signup_rate",
          target_segment="New visitors")
    _idea(session, "Unseen", 1, 1, 50, 1, primary_metric="signup_rate", mde=0.1,
          target_segment="Nobody yet")
    by_name = {i.experiment.name: i for i in rice.rank_ideas(session, testable_weeks=8)}

    tiny = by_name["Tiny lift"].testability
    expected_n = _fleiss_n(0.05, 0.05 * 1.05)  # about 122,000 per arm
    assert_allclose(tiny.n_per_variant, expected_n, rtol=2e-3)
    assert_allclose(tiny.baseline, 0.05, rtol=1e-12)
    assert_allclose(tiny.daily_units, 1_000, rtol=1e-12)
    # each arm gets half of the 1,000 daily units
    assert tiny.days_needed == math.ceil(tiny.n_per_variant / 500)
    assert tiny.limit_days == 56
    assert tiny.testable is False
    assert tiny.message.startswith("Not testable as specified")
    assert f"{tiny.n_per_variant:,} units per variant" in tiny.message
    assert f"{tiny.days_needed:,} days" in tiny.message and "limit of 8 weeks" in tiny.message

    big = by_name["Big lift"].testability
    assert_allclose(big.n_per_variant, _fleiss_n(0.05, 0.075), rtol=5e-3)
    assert big.testable is True and big.message.startswith("Testable")
    assert big.days_needed == math.ceil(big.n_per_variant / 500) <= 56

    assert by_name["No MDE"].testability.testable is None
    assert "needs an MDE" in by_name["No MDE"].testability.message
    assert by_name["Unseen"].testability.testable is None
    assert "no observed traffic for the segment 'Nobody yet'" in (
        by_name["Unseen"].testability.message)
    assert_allclose(by_name["Tiny lift"].observed_reach, 1_000 * rice.QUARTER_DAYS)


def test_testability_of_a_mean_metric_matches_statsmodels(session: Session, metrics: None) -> None:
    from statsmodels.stats.power import TTestIndPower

    exp = registry.create_experiment(session, actor=EDITOR, data={
        "name": "Revenue past", "owner": "o", "hypothesis": "h", "target_segment": "Buyers",
        "primary_metric": "revenue_per_user", "variants": AB, "planned_sample_size": 10})
    registry.transition_experiment(session, experiment_id=exp.id, to_status="running",
                                   expected_version=exp.version, actor=EDITOR)
    orm = repo.get_experiment(session, experiment_id=exp.id)
    assert orm is not None and orm.primary_metric_id is not None
    # control: n = 4 per day, values 8, 10, 12, 10 -> mean 10, sd sqrt(8/3) on each of 5 days
    for offset in range(5):
        day = date(2026, 2, 1) + timedelta(days=offset)
        session.add(MetricDailyStat(
            experiment_id=exp.id, variant_id=orm.variants[0].id, metric_id=orm.primary_metric_id,
            day=day, n=4, sum=40.0, sum_squares=64 + 100 + 144 + 100, source="test"))
        for variant in orm.variants:
            session.add(AssignmentDailyCount(experiment_id=exp.id, variant_id=variant.id,
                                             day=day, units=100))
    session.flush()
    _idea(session, "Upsell", 1, 1, 50, 1, primary_metric="revenue_per_user", mde=0.1,
          target_segment="Buyers")
    result = rice.rank_ideas(session, testable_weeks=1)[0].testability
    values = [8, 10, 12, 10] * 5
    mean = sum(values) / 20
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 19)
    expected = TTestIndPower().solve_power(effect_size=0.1 * mean / sd, alpha=0.05, power=0.8,
                                           ratio=1.0, alternative="two-sided")
    assert result.n_per_variant == math.ceil(expected)
    assert result.days_needed == math.ceil(result.n_per_variant / 100)
    assert result.testable is (result.days_needed <= 7)


def test_apply_observed_reach_prefills_from_segment_traffic(
    session: Session, metrics: None
) -> None:
    _observed_segment(session, "Shoppers", days=4, units_per_arm=250, conversions_per_day=10)
    idea = _idea(session, "Prefill", 1, 1, 50, 1, target_segment="shoppers")
    updated = rice.apply_observed_reach(session, experiment_id=idea.id,
                                        expected_version=idea.version, actor=EDITOR)
    assert updated.reach == 500 * rice.QUARTER_DAYS
    assert registry.audit_history(session, experiment_id=idea.id)[-1].changes["reach"] == [
        1.0, 500.0 * rice.QUARTER_DAYS
    ]
    lonely = _idea(session, "Nowhere", 1, 1, 50, 1, target_segment="Martians")
    with pytest.raises(RuleViolation, match="enter Reach by hand"):
        rice.apply_observed_reach(session, experiment_id=lonely.id,
                                  expected_version=lonely.version, actor=EDITOR)
