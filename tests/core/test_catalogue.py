"""core.catalogue: list, create, and edit a metric's unit, direction and description (audited);
name and kind cannot change, a ratio metric's columns only until data is stored for it;
viewers cannot write; bad input writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import catalogue
from core.auth import Actor
from core.data.ingestion import ingest_file
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from db.models import AuditEntry
from tests.core.data.test_ingestion import write_parquet
from tests.core.data.test_ingestion_ratio import ratio_experiment, ratio_units

EDITOR = Actor(name="erin", role="editor")
VIEWER = Actor(name="vic", role="viewer")


def _audits(session: Session, metric_id: int) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(
        AuditEntry.entity_type == "metric", AuditEntry.entity_id == metric_id)
        .order_by(AuditEntry.id)))


def test_catalogue_update_metric_changes_and_audits(session: Session) -> None:
    created = catalogue.create_metric(
        session, data={"name": "basket_value", "kind": "mean", "unit": "EUR"}, actor=EDITOR)
    updated = catalogue.update_metric(
        session, name="basket_value", actor=EDITOR,
        changes={"unit": "USD", "higher_is_better": True, "description": "Order value"})
    assert (updated.name, updated.kind, updated.unit, updated.description) == (
        "basket_value", "mean", "USD", "Order value")
    assert catalogue.get_metric(session, name="basket_value").unit == "USD"
    last = _audits(session, created.id)[-1]
    assert last.action == "update" and last.actor == "erin"
    assert last.changes == {"unit": ["EUR", "USD"], "description": ["", "Order value"]}


def test_catalogue_update_metric_without_a_change_writes_nothing(session: Session) -> None:
    created = catalogue.create_metric(session, data={"name": "clicks", "kind": "mean"},
                                      actor=EDITOR)
    catalogue.update_metric(session, name="clicks", changes={"unit": ""}, actor=EDITOR)
    assert [a.action for a in _audits(session, created.id)] == ["create"]


def test_catalogue_update_metric_refuses_name_kind_bad_input_and_viewers(
    session: Session,
) -> None:
    catalogue.create_metric(session, data={"name": "visits", "kind": "mean"}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="kind"):
        catalogue.update_metric(session, name="visits", changes={"kind": "binomial"},
                                actor=EDITOR)
    with pytest.raises(InvalidInput, match="unit"):
        catalogue.update_metric(session, name="visits", changes={"unit": "x" * 33}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="higher_is_better"):
        catalogue.update_metric(session, name="visits", changes={"higher_is_better": 1},
                                actor=EDITOR)
    with pytest.raises(NotFound):
        catalogue.update_metric(session, name="ghost", changes={"unit": "s"}, actor=EDITOR)
    with pytest.raises(PermissionDenied):
        catalogue.update_metric(session, name="visits", changes={"unit": "s"}, actor=VIEWER)
    assert catalogue.get_metric(session, name="visits").unit == ""


def test_catalogue_create_ratio_metric_keeps_its_columns_and_refuses_bad_ones(
    session: Session,
) -> None:
    made = catalogue.create_metric(session, data={
        "name": "clicks_per_view", "kind": "ratio", "numerator": "clicks",
        "denominator": "page_views"}, actor=EDITOR)
    assert (made.kind, made.numerator, made.denominator) == ("ratio", "clicks", "page_views")
    cases = [
        ({"kind": "ratio"}, "a ratio metric needs a numerator and a denominator column (e.g. "
         "revenue and sessions for revenue per session)"),
        ({"kind": "ratio", "numerator": "Revenue", "denominator": "sessions"},
         "numerator: write the column's name in lower_snake_case, e.g. revenue"),
        ({"kind": "ratio", "numerator": "sessions", "denominator": "sessions"},
         "numerator and denominator must be different columns"),
        ({"kind": "mean", "numerator": "revenue"},
         "only ratio metrics take a numerator and a denominator (this one is mean)"),
    ]
    for extra, problem in cases:
        with pytest.raises(InvalidInput) as caught:
            catalogue.create_metric(session, data={"name": "rps", **extra}, actor=EDITOR)
        assert caught.value.problems == [problem]
    assert [m.name for m in catalogue.list_metrics(session)] == ["clicks_per_view"]


def test_catalogue_update_ratio_columns_until_data_is_stored(
    session: Session, tmp_path: Path
) -> None:
    exp = ratio_experiment(session)  # revenue_per_session = revenue / sessions, no data yet
    moved = catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                                    changes={"numerator": "net_revenue"})
    assert (moved.numerator, moved.denominator) == ("net_revenue", "sessions")
    assert _audits(session, moved.id)[-1].changes == {"numerator": ["revenue", "net_revenue"]}
    with pytest.raises(InvalidInput, match="must be different columns"):
        catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                                changes={"numerator": "sessions"})
    with pytest.raises(InvalidInput, match="denominator: write the column's name"):
        catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                                changes={"denominator": ""})
    with pytest.raises(InvalidInput, match=r"only ratio metrics take .* \(this one is binomial\)"):
        catalogue.update_metric(session, name="conv", actor=EDITOR,
                                changes={"numerator": "x"})
    catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                            changes={"numerator": "revenue"})
    cols = ratio_units(200)
    ingest_file(session, path=write_parquet(tmp_path / "r.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    with pytest.raises(Conflict, match="already has data computed from revenue / sessions"):
        catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                                changes={"denominator": "visits"})
    # Its other fields still change; unchanged columns are no change.
    kept = catalogue.update_metric(session, name="revenue_per_session", actor=EDITOR,
                                   changes={"unit": "EUR", "numerator": "revenue"})
    assert (kept.unit, kept.numerator, kept.denominator) == ("EUR", "revenue", "sessions")
