"""core.catalogue: list, create, and edit a metric's unit, direction and description (audited);
name and kind cannot change; viewers cannot write; bad input writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import catalogue
from core.auth import Actor
from core.errors import InvalidInput, NotFound, PermissionDenied
from db.models import AuditEntry

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
