"""core.warehouse.sources: who uses each source, and using warehouse metrics in an experiment (one
audited registry change; refused in words, nothing written, for a metric not computed in the
warehouse, no metric, or an experiment fed from no assignment source; after launch the
assignment needs a reason, a new secondary metric does not)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.errors import InvalidInput, PermissionDenied, RuleViolation
from core.warehouse import catalog, sources
from db import repositories as repo
from db.models import AuditEntry
from tests.conftest import ADMIN, EDITOR, VIEWER

AB = [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}]


@pytest.fixture
def shop(session: Session, tmp_path: Path) -> Session:
    """A connection, an assignment source, two fact sources and three metrics (one a file
    metric); the warehouse file itself is never opened here."""
    catalog.create_connection(session, actor=ADMIN, data={
        "name": "shop", "url": f"duckdb:///{tmp_path / 'shop.duckdb'}"})
    catalog.create_assignment_source(session, actor=EDITOR, data={
        "name": "exposures", "connection": "shop",
        "sql": "SELECT unit_id, timestamp, experiment_key, variant FROM exposures"})
    for name, columns in (("orders", ["revenue"]), ("sessions", ["session_count"])):
        catalog.create_fact_source(session, actor=EDITOR, data={
            "name": name, "connection": "shop", "sql": f"SELECT * FROM {name}",
            "columns": columns})
    for data in ({"name": "buyers", "fact_source": "orders", "aggregation": "any"},
                 {"name": "revenue_7d", "fact_source": "orders", "aggregation": "sum",
                  "value_column": "revenue", "window_days": 7},
                 {"name": "visits", "fact_source": "sessions", "aggregation": "sum",
                  "value_column": "session_count"},
                 {"name": "file_metric", "kind": "mean"}):
        catalogue.create_metric(session, data=data, actor=EDITOR)
    return session


def _experiment(session: Session, name: str = "Checkout", **extra: object
                ) -> registry.ExperimentView:
    return registry.create_experiment(session, actor=EDITOR, data={
        "name": name, "owner": "o", "hypothesis": "It helps.", "primary_metric": "buyers",
        "planned_sample_size": 100, "variants": AB, **extra})


def _audit(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def test_sources_usage_names_the_metrics_and_experiments_of_each_source(shop: Session) -> None:
    _experiment(shop, assignment_source="exposures", experiment_key="checkout")
    _experiment(shop, "Other", secondary_metrics=["visits"])
    found = sources.usage(shop)
    assert found["exposures"] == sources.SourceUsage("exposures", "assignment", (),
                                                     ("Checkout",))
    assert found["orders"] == sources.SourceUsage("orders", "fact", ("buyers", "revenue_7d"),
                                                  ("Checkout", "Other"))
    assert found["sessions"] == sources.SourceUsage("sessions", "fact", ("visits",),
                                                    ("Other",))


def test_sources_use_in_experiment_adds_metrics_and_attaches_in_one_change(
        shop: Session) -> None:
    view = _experiment(shop)
    before = _audit(shop)
    used = sources.use_in_experiment(
        shop, experiment_id=view.id, metrics=["revenue_7d", "buyers", "revenue_7d"],
        assignment_source="exposures", experiment_key="checkout",
        expected_version=view.version, actor=EDITOR)
    # the primary stays where it is; a metric named twice is added once
    assert used.secondary_metrics == ["revenue_7d"] and used.primary_metric == "buyers"
    assert (used.assignment_source, used.experiment_key) == ("exposures", "checkout")
    assert _audit(shop) == before + 1 and used.version == view.version + 1
    entry = repo.audit_entries(shop, entity_type="experiment", entity_id=view.id)[-1]
    assert entry.action == "update" and set(entry.changes) == {
        "secondary_metrics", "assignment_source", "experiment_key"}

    # after launch: a new secondary metric needs no reason, a new assignment does
    launched = registry.transition_experiment(shop, experiment_id=view.id, to_status="running",
                                              expected_version=used.version, actor=EDITOR)
    more = sources.use_in_experiment(shop, experiment_id=view.id, metrics=["visits"],
                                     expected_version=launched.version, actor=EDITOR)
    assert more.secondary_metrics == ["revenue_7d", "visits"]
    with pytest.raises(RuleViolation, match="plan deviation and needs a reason"):
        sources.use_in_experiment(shop, experiment_id=view.id, metrics=[],
                                  assignment_source="exposures", experiment_key="checkout-2",
                                  expected_version=more.version, actor=EDITOR)
    moved = sources.use_in_experiment(shop, experiment_id=view.id, metrics=[],
                                      assignment_source="exposures",
                                      experiment_key="checkout-2",
                                      expected_version=more.version, actor=EDITOR,
                                      reason="the flag was renamed")
    assert moved.experiment_key == "checkout-2"


def test_sources_use_in_experiment_refuses_bad_input_and_writes_nothing(shop: Session) -> None:
    view = _experiment(shop)
    before = _audit(shop)
    with pytest.raises(InvalidInput) as excinfo:
        sources.use_in_experiment(shop, experiment_id=view.id,
                                  metrics=["file_metric", "nope"],
                                  assignment_source="exposures", experiment_key=None,
                                  expected_version=view.version, actor=EDITOR)
    problems = excinfo.value.problems
    assert any("file_metric is not computed from a fact source" in p for p in problems)
    assert any("no metric named 'nope'" in p for p in problems)
    assert any(p.startswith("experiment_key: give the assignment source and the experiment's "
                            "key") for p in problems)
    with pytest.raises(InvalidInput, match="reads no exposures from a warehouse yet"):
        sources.use_in_experiment(shop, experiment_id=view.id, metrics=["revenue_7d"],
                                  expected_version=view.version, actor=EDITOR)
    with pytest.raises(InvalidInput, match="choose at least one warehouse metric"):
        sources.use_in_experiment(shop, experiment_id=view.id, metrics=[],
                                  expected_version=view.version, actor=EDITOR)
    with pytest.raises(PermissionDenied):
        sources.use_in_experiment(shop, experiment_id=view.id, metrics=["revenue_7d"],
                                  assignment_source="exposures", experiment_key="k",
                                  expected_version=view.version, actor=VIEWER)
    assert _audit(shop) == before
    assert registry.get_experiment(shop, experiment_id=view.id).version == view.version
