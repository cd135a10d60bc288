"""The analysis plan's test settings in the registry (SQLite and PostgreSQL): the primary's
one-sided alternative, guardrail non-inferiority margins and the Gaussian prior on the lift —
validated with messages that say what to fix, nothing written on bad input, frozen at launch,
changed afterwards only with a reason (audited as a plan deviation)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.errors import InvalidInput, RuleViolation
from db.models import Experiment, ExperimentMetric
from tests.conftest import EDITOR
from tests.core.test_registry import draft, launch, row_counts


@pytest.fixture
def metrics(session: Session) -> list[str]:
    for name, kind, hib in [("conversion", "binomial", True), ("revenue", "mean", True),
                            ("latency", "mean", False), ("refunds", "binomial", False)]:
        catalogue.create_metric(session, data={"name": name, "kind": kind,
                                               "higher_is_better": hib}, actor=EDITOR)
    return ["conversion", "revenue", "latency", "refunds"]


def plan(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "guardrail_metrics": ["latency", "refunds"], "alternative": "greater",
        "guardrail_margins": {"latency": 0.02}, "prior_lift_mean": 0.0, "prior_lift_sd": 0.05,
    }
    return draft(**{**settings, **overrides})


def test_registry_plan_stores_alternative_margins_and_prior(
    session: Session, metrics: list[str]
) -> None:
    exp = registry.create_experiment(session, data=plan(), actor=EDITOR)
    assert exp.alternative == "greater"
    assert exp.guardrail_margins == {"latency": 0.02}
    assert (exp.prior_lift_mean, exp.prior_lift_sd) == (0.0, 0.05)
    session.expire_all()
    again = registry.get_experiment(session, experiment_id=exp.id)
    assert again.guardrail_margins == {"latency": 0.02} and again.alternative == "greater"
    links = {link.metric.name: link.margin for link in session.scalars(
        select(ExperimentMetric).where(ExperimentMetric.experiment_id == exp.id))}
    assert links == {"latency": 0.02, "refunds": None, "revenue": None}
    (created,) = registry.audit_history(session, experiment_id=exp.id)
    assert created.changes["alternative"] == [None, "greater"]
    assert created.changes["guardrail_margins"] == [None, {"latency": 0.02}]


def test_registry_plan_defaults_are_two_sided_no_margin_flat_prior(
    session: Session, metrics: list[str]
) -> None:
    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    assert exp.alternative == "two-sided" and exp.guardrail_margins == {}
    assert exp.prior_lift_mean is None and exp.prior_lift_sd is None


@pytest.mark.parametrize(("overrides", "message"), [
    ({"guardrail_margins": {"latency": 0.0}}, "guardrail_margins.latency: Input should be "
                                               "greater than 0"),
    ({"guardrail_margins": {"latency": 1.0}}, "guardrail_margins.latency: Input should be less "
                                               "than 1"),
    ({"guardrail_margins": {"latency": "2%"}}, "guardrail_margins.latency"),
    ({"guardrail_margins": {"revenue": 0.01}}, "guardrail_margins: revenue is not a guardrail "
                                                "of this experiment"),
    ({"alternative": "up"}, "alternative: Input should be 'two-sided', 'greater' or 'less'"),
    ({"alternative": "less"}, "alternative: 'less' tests for treatment < control, but "
                              "conversion is higher-is-better"),
    ({"prior_lift_sd": None}, "prior_lift_sd: a Gaussian prior on the lift needs both"),
    ({"prior_lift_sd": 0.0}, "prior_lift_sd: Input should be greater than 0"),
    ({"prior_lift_mean": float("inf")}, "prior_lift_mean"),
])
def test_registry_plan_refuses_bad_settings_and_writes_nothing(
    session: Session, metrics: list[str], overrides: dict[str, Any], message: str
) -> None:
    before = row_counts(session)
    with pytest.raises(InvalidInput) as err:
        registry.create_experiment(session, data=plan(**overrides), actor=EDITOR)
    assert any(message in p for p in err.value.problems), err.value.problems
    assert row_counts(session) == before


def test_registry_plan_one_sided_less_fits_a_lower_is_better_primary(
    session: Session, metrics: list[str]
) -> None:
    exp = registry.create_experiment(
        session, data=draft(primary_metric="latency", guardrail_metrics=["refunds"],
                            alternative="less"), actor=EDITOR)
    assert exp.alternative == "less"
    with pytest.raises(InvalidInput, match="use 'less' or 'two-sided'"):
        registry.update_experiment(session, experiment_id=exp.id,
                                   changes={"alternative": "greater"},
                                   expected_version=exp.version, actor=EDITOR)


def test_registry_plan_is_frozen_at_launch_and_changes_need_a_reason(
    session: Session, metrics: list[str]
) -> None:
    exp = launch(session, registry.create_experiment(session, data=plan(), actor=EDITOR))
    assert exp.frozen_plan is not None
    assert exp.frozen_plan["alternative"] == "greater"
    assert exp.frozen_plan["guardrail_margins"] == {"latency": 0.02}
    assert (exp.frozen_plan["prior_lift_mean"], exp.frozen_plan["prior_lift_sd"]) == (0.0, 0.05)
    for change in ({"alternative": "two-sided"}, {"guardrail_margins": {"latency": 0.05}},
                   {"prior_lift_mean": None, "prior_lift_sd": None}):
        with pytest.raises(RuleViolation, match="plan deviation and needs a reason"):
            registry.update_experiment(session, experiment_id=exp.id, changes=change,
                                       expected_version=exp.version, actor=EDITOR)
    assert registry.get_experiment(session, experiment_id=exp.id).version == exp.version
    changed = registry.update_experiment(
        session, experiment_id=exp.id, changes={"guardrail_margins": {"latency": 0.05,
                                                                      "refunds": 0.1}},
        expected_version=exp.version, actor=EDITOR, reason="Finance accepts a wider margin")
    assert changed.guardrail_margins == {"latency": 0.05, "refunds": 0.1}
    assert changed.frozen_plan is not None
    assert changed.frozen_plan["guardrail_margins"] == {"latency": 0.02}  # as registered
    deviation = registry.plan_deviations(session, experiment_id=exp.id)[-1]
    assert deviation.action == "plan_deviation" and deviation.is_deviation
    assert deviation.changes == {"guardrail_margins": [{"latency": 0.02},
                                                       {"latency": 0.05, "refunds": 0.1}]}
    assert deviation.reason == "Finance accepts a wider margin"


def test_registry_plan_closed_experiment_refuses_plan_changes(
    session: Session, metrics: list[str]
) -> None:
    exp = launch(session, registry.create_experiment(session, data=plan(), actor=EDITOR))
    done = registry.transition_experiment(session, experiment_id=exp.id, to_status="completed",
                                          expected_version=exp.version, actor=EDITOR,
                                          decision="ship")
    with pytest.raises(RuleViolation, match="only owner, learnings"):
        registry.update_experiment(session, experiment_id=done.id,
                                   changes={"alternative": "two-sided"},
                                   expected_version=done.version, actor=EDITOR, reason="late")


def test_registry_plan_dropping_a_guardrail_with_a_margin_asks_to_drop_the_margin(
    session: Session, metrics: list[str]
) -> None:
    exp = registry.create_experiment(session, data=plan(), actor=EDITOR)
    with pytest.raises(InvalidInput, match="latency is not a guardrail"):
        registry.update_experiment(session, experiment_id=exp.id,
                                   changes={"guardrail_metrics": ["refunds"]},
                                   expected_version=exp.version, actor=EDITOR)
    both = registry.update_experiment(
        session, experiment_id=exp.id,
        changes={"guardrail_metrics": ["refunds"], "guardrail_margins": {}},
        expected_version=exp.version, actor=EDITOR)
    assert both.guardrail_metrics == ["refunds"] and both.guardrail_margins == {}


def test_registry_plan_database_refuses_out_of_range_values(
    session: Session, metrics: list[str]
) -> None:
    """The CHECK constraints of migration 0005 hold whatever writes to the tables."""
    exp = registry.create_experiment(session, data=plan(), actor=EDITOR)
    row = session.get(Experiment, exp.id)
    assert row is not None
    for column, value in (("alternative", "sideways"), ("prior_lift_sd", -1.0)):
        with session.begin_nested():
            setattr(row, column, value)
            with pytest.raises(IntegrityError):
                session.flush()
        session.expire(row)
    link = next(link for link in row.metric_links if link.metric.name == "revenue")
    with session.begin_nested():
        link.margin = 0.1  # a secondary metric has no margin
        with pytest.raises(IntegrityError):
            session.flush()
