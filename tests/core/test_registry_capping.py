"""Capping in the analysis plan (SQLite and PostgreSQL): a rule per mean or ratio metric of the
experiment, checked with messages that say what to fix (nothing written on bad input),
editable while proposed, frozen at launch and refused afterwards, even with a reason."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.errors import InvalidInput, RuleViolation
from tests.conftest import EDITOR
from tests.core.test_registry import draft, launch, row_counts

P99 = {"kind": "percentile", "value": 0.99}


@pytest.fixture
def metrics(session: Session) -> list[str]:
    for data in ({"name": "conversion", "kind": "binomial"}, {"name": "revenue", "kind": "mean"},
                 {"name": "latency", "kind": "mean", "higher_is_better": False},
                 {"name": "revenue_per_session", "kind": "ratio", "numerator": "revenue",
                  "denominator": "sessions"},
                 {"name": "p90_latency", "kind": "quantile", "quantile_p": 0.9}):
        catalogue.create_metric(session, data=data, actor=EDITOR)
    return ["conversion", "revenue", "latency", "revenue_per_session"]


def capped(**capping: Any) -> dict[str, Any]:
    return draft(guardrail_metrics=[],
                 secondary_metrics=["revenue", "revenue_per_session", "p90_latency"],
                 capping=capping)


def test_registry_capping_is_stored_read_back_and_audited(
    session: Session, metrics: list[str]
) -> None:
    exp = registry.create_experiment(
        session, data=capped(revenue=P99, revenue_per_session={"kind": "fixed", "value": 500}),
        actor=EDITOR)
    session.expire_all()
    again = registry.get_experiment(session, experiment_id=exp.id)
    assert {k: v.model_dump() for k, v in again.capping.items()} == {
        "revenue": P99, "revenue_per_session": {"kind": "fixed", "value": 500.0}}
    assert again.capping["revenue"].rule.label == "p99"
    (created,) = registry.audit_history(session, experiment_id=exp.id)
    assert created.changes["capping"][1]["revenue"] == P99


def test_registry_capping_defaults_to_none(session: Session, metrics: list[str]) -> None:
    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    assert exp.capping == {}


@pytest.mark.parametrize(("capping", "message"), [
    ({"conversion": P99}, "capping: conversion is a proportion (binomial) metric"),
    ({"latency": P99}, "capping: latency is not a metric of this experiment"),
    ({"p90_latency": P99}, "capping: p90_latency is a quantile metric: only mean and ratio"),
    ({"revenue": {"kind": "percentile", "value": 0.5}}, "capping.revenue: a percentile cap is "
                                                        "a fraction strictly between 0.5 and 1"),
    ({"revenue": {"kind": "percentile", "value": 1.0}}, "strictly between 0.5 and 1"),
    ({"revenue": {"kind": "percentile", "value": 99}}, "e.g. 0.99 for the 99th percentile"),
    ({"revenue": {"kind": "fixed", "value": 0}}, "capping.revenue: a fixed cap must be a "
                                                 "finite number above 0"),
    ({"revenue": {"kind": "fixed", "value": -10}}, "above 0"),
    ({"revenue": {"kind": "fixed", "value": float("inf")}}, "capping.revenue.value"),
    ({"revenue": {"kind": "median", "value": 0.9}}, "capping.revenue.kind"),
    ({"revenue": {"kind": "fixed", "value": "100"}}, "capping.revenue.value"),
])
def test_registry_capping_refuses_bad_rules_and_writes_nothing(
    session: Session, metrics: list[str], capping: dict[str, Any], message: str
) -> None:
    before = row_counts(session)
    with pytest.raises(InvalidInput) as err:
        registry.create_experiment(session, data=capped(**capping), actor=EDITOR)
    assert any(message in p for p in err.value.problems), err.value.problems
    assert row_counts(session) == before


def test_registry_capping_is_editable_while_proposed(
    session: Session, metrics: list[str]
) -> None:
    exp = registry.create_experiment(session, data=capped(revenue=P99), actor=EDITOR)
    changed = registry.update_experiment(
        session, experiment_id=exp.id,
        changes={"capping": {"revenue": {"kind": "percentile", "value": 0.95}}},
        expected_version=exp.version, actor=EDITOR)
    assert changed.capping["revenue"].value == 0.95
    cleared = registry.update_experiment(session, experiment_id=exp.id, changes={"capping": {}},
                                         expected_version=changed.version, actor=EDITOR)
    assert cleared.capping == {}


def test_registry_capping_is_frozen_at_launch_and_refused_even_with_a_reason(
    session: Session, metrics: list[str]
) -> None:
    exp = launch(session, registry.create_experiment(session, data=capped(revenue=P99),
                                                     actor=EDITOR))
    assert exp.frozen_plan is not None and exp.frozen_plan["capping"] == {"revenue": P99}
    for change in ({"revenue": {"kind": "percentile", "value": 0.95}}, {},
                   {"revenue": P99, "revenue_per_session": P99}):
        with pytest.raises(RuleViolation, match="capping was frozen at launch and cannot "
                                                "change, even with a reason"):
            registry.update_experiment(session, experiment_id=exp.id,
                                       changes={"capping": change},
                                       expected_version=exp.version, actor=EDITOR,
                                       reason="the tail is heavier than we thought")
    after = registry.get_experiment(session, experiment_id=exp.id)
    assert after.version == exp.version and after.capping["revenue"].value == 0.99
    # Other plan fields still change with a reason.
    registry.update_experiment(session, experiment_id=exp.id, changes={"mde": 0.1},
                               expected_version=exp.version, actor=EDITOR, reason="budget")
