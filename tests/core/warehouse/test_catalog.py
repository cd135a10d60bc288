"""The warehouse definitions in the app database: who may change them, what is refused (every
problem at once, nothing written), what is audited, and an experiment's attachment as part of
its frozen plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import registry
from core.config import get_settings
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RuleViolation
from core.warehouse import catalog
from db import repositories as repo
from db.models import AuditEntry
from tests.conftest import ADMIN, EDITOR, VIEWER
from tests.core.warehouse import duckdb_warehouse as wh

ASSIGNMENT = {"name": "exposures", "connection": "shop", "sql": wh.ASSIGNMENT_SQL,
              "dimensions": ["platform"]}
ORDERS = {"name": "orders", "connection": "shop", "sql": wh.ORDERS_SQL,
          "columns": ["revenue", "items"]}


def _audit_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _problems(excinfo: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return excinfo.value.problems


@pytest.fixture
def shop(session: Session, tmp_path: Path) -> str:
    """A connection named shop (to a DuckDB file that need not exist yet)."""
    return catalog.create_connection(
        session, data={"name": "shop", "url": f"duckdb:///{tmp_path / 'shop.duckdb'}"},
        actor=ADMIN).name


# --------------------------------------------------------------------------- connections


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://analyst:s3cret@db.internal/analytics", "holds a password"),
        ("postgresql://analyst:s3/cr@t@db.internal/analytics", "holds a password"),
        ("snowflake://me@account/db?password=hunter2", "parameter password holds a credential"),
        ("databricks://host?access_token=dapi123&http_path=/sql", "access_token"),
        ("oracle://user@host/db", "is not a warehouse ExperimentOS connects to"),
        ("postgresql://analyst:${PASSWORD@db/analytics", "write each credential as ${NAME}"),
        ("postgresql://analyst:${1PW}@db/analytics", "write each credential as ${NAME}"),
        ("duckdb:///my warehouse.duckdb", "remove the spaces"),
    ],
)
def test_catalog_connection_urls_hold_no_credentials_and_name_a_known_engine(
    session: Session, url: str, words: str
) -> None:
    before = _audit_count(session)
    with pytest.raises(InvalidInput) as excinfo:
        catalog.create_connection(session, data={"name": "wh", "url": url}, actor=ADMIN)
    assert any(words in p for p in _problems(excinfo)), _problems(excinfo)
    if "password" in words or "credential" in words or "access_token" in words:
        assert "${NAME}" in str(excinfo.value) and "never stored" in str(excinfo.value)
    assert catalog.list_connections(session) == [] and _audit_count(session) == before


def test_catalog_connection_credentials_as_placeholders_are_stored_as_written(
    session: Session,
) -> None:
    url = "postgresql+psycopg2://analyst:${WAREHOUSE_PASSWORD}@db.internal:5432/analytics"
    view = catalog.create_connection(session, data={"name": "analytics", "url": url},
                                     actor=ADMIN)
    assert view.url == url and view.sources == () and not view.allow_app_database
    assert catalog.get_connection(session, name="analytics") == view
    token = "databricks://host?access_token=${DATABRICKS_TOKEN}&http_path=/sql/1"
    assert catalog.create_connection(session, data={"name": "lake", "url": token},
                                     actor=ADMIN).url == token
    entry = repo.audit_entries(session, entity_type="warehouse_connection",
                               entity_id=view.id)[0]
    assert (entry.action, entry.actor, entry.changes["url"]) == ("create", ADMIN.name,
                                                                 [None, url])


def test_catalog_connection_to_the_app_database_needs_an_admins_consent(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = get_settings().database_url
    if app.startswith("sqlite"):
        url = "duckdb:///" + app.split("///", 1)[1]
    else:
        url = app.replace("+psycopg2", "")
    with pytest.raises(InvalidInput, match="app's own database"):
        catalog.create_connection(session, data={"name": "own", "url": url}, actor=ADMIN)
    view = catalog.create_connection(
        session, data={"name": "own", "url": url, "allow_app_database": True}, actor=ADMIN)
    assert view.allow_app_database
    with pytest.raises(InvalidInput, match="app's own database"):
        catalog.update_connection(session, name="own", changes={"allow_app_database": False},
                                  actor=ADMIN)


def test_catalog_connections_are_for_admins_names_unique_edits_audited(
    session: Session, shop: str, tmp_path: Path
) -> None:
    with pytest.raises(PermissionDenied):
        catalog.create_connection(session, data={"name": "x", "url": "duckdb://"},
                                  actor=EDITOR)
    with pytest.raises(Conflict, match="already a connection named 'shop'"):
        catalog.create_connection(session, data={"name": "shop", "url": "duckdb://"},
                                  actor=ADMIN)
    with pytest.raises(InvalidInput, match="name"):
        catalog.create_connection(session, data={"name": "Shop DB", "url": "duckdb://"},
                                  actor=ADMIN)
    new_url = f"duckdb:///{tmp_path / 'other.duckdb'}"
    before = _audit_count(session)
    view = catalog.update_connection(session, name=shop, changes={"url": new_url},
                                     actor=ADMIN)
    assert view.url == new_url and view.updated_by == ADMIN.name
    catalog.update_connection(session, name=shop, changes={"url": new_url}, actor=ADMIN)
    assert _audit_count(session) == before + 1  # the no-op wrote nothing
    with pytest.raises(PermissionDenied):
        catalog.update_connection(session, name=shop, changes={"url": "duckdb://"},
                                  actor=EDITOR)
    with pytest.raises(NotFound):
        catalog.get_connection(session, name="nope")


def test_catalog_a_connection_in_use_stays(session: Session, shop: str) -> None:
    catalog.create_fact_source(session, data=ORDERS, actor=EDITOR)
    assert catalog.get_connection(session, name=shop).sources == ("orders",)
    with pytest.raises(RuleViolation, match="orders"):
        catalog.delete_connection(session, name=shop, actor=ADMIN)
    catalog.delete_fact_source(session, name="orders", actor=EDITOR)
    catalog.delete_connection(session, name=shop, actor=ADMIN)
    assert catalog.list_connections(session) == []
    actions = [e.action for e in repo.audit_entries(session, entity_type="warehouse_connection")]
    assert actions == ["create", "delete"]


def test_catalog_check_connection_answers_in_plain_words(session: Session,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    wh.write_warehouse(path, *wh.tables())
    catalog.create_connection(session, data={"name": "shop", "url": f"duckdb:///{path}"},
                              actor=ADMIN)
    assert "Connected" in catalog.check_connection(session, name="shop", actor=EDITOR)
    with pytest.raises(PermissionDenied):
        catalog.check_connection(session, name="shop", actor=VIEWER)


def test_catalog_preview_source_shows_the_first_rows_and_their_types(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "shop.duckdb"
    wh.write_warehouse(path, *wh.tables())
    catalog.create_connection(session, data={"name": "shop", "url": f"duckdb:///{path}"},
                              actor=ADMIN)
    catalog.create_assignment_source(session, data=ASSIGNMENT, actor=EDITOR)
    catalog.create_fact_source(session, data=ORDERS, actor=EDITOR)
    preview = catalog.preview_source(session, name="exposures", actor=EDITOR)
    assert (preview.kind, len(preview.rows)) == ("assignment", catalog.PREVIEW_ROWS)
    assert list(preview.columns) == ["unit_id", "timestamp", "experiment_key", "variant",
                                     "platform"]
    assert preview.columns["timestamp"].startswith("timestamp")
    assert set(preview.rows[0]) == set(preview.columns)
    assert "ExperimentOS preview" in preview.sql and "LIMIT 20" in preview.sql
    orders = catalog.preview_source(session, name="orders", actor=EDITOR, rows=3)
    assert orders.kind == "fact" and len(orders.rows) == 3
    assert isinstance(orders.rows[0]["revenue"], float)
    catalog.update_fact_source(session, name="orders", changes={
        "sql": "SELECT * FROM no_such_table"}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="fact source 'orders' failed in connection 'shop'"):
        catalog.preview_source(session, name="orders", actor=EDITOR)
    with pytest.raises(PermissionDenied):
        catalog.preview_source(session, name="exposures", actor=VIEWER)
    with pytest.raises(NotFound):
        catalog.preview_source(session, name="nope", actor=EDITOR)


def test_catalog_preview_source_checks_the_columns_as_a_refresh_would(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "shop.duckdb"
    wh.write_warehouse(path, *wh.tables())
    catalog.create_connection(session, data={"name": "shop", "url": f"duckdb:///{path}"},
                              actor=ADMIN)
    catalog.create_assignment_source(session, data=ASSIGNMENT, actor=EDITOR)
    catalog.create_fact_source(session, data=ORDERS, actor=EDITOR)
    assert catalog.preview_source(session, name="exposures", actor=EDITOR).problems == ()
    assert catalog.preview_source(session, name="orders", actor=EDITOR).problems == ()
    catalog.update_fact_source(session, name="orders", changes={
        "sql": "SELECT unit_id, ts AS timestamp, CAST(revenue AS VARCHAR) AS revenue FROM orders"},
        actor=EDITOR)
    problems = catalog.preview_source(session, name="orders", actor=EDITOR).problems
    assert len(problems) == 2, problems
    assert "fact source 'orders': column items is missing" in problems[0]
    assert problems[1].startswith("fact source 'orders': column revenue is string, not a number")


# --------------------------------------------------------------------------- sources


def test_catalog_sources_are_one_select_with_snake_case_columns(session: Session,
                                                                shop: str) -> None:
    """Every problem of a bad definition is listed at once, and nothing is written."""
    before = _audit_count(session)
    with pytest.raises(InvalidInput) as excinfo:
        catalog.create_assignment_source(session, data={
            "name": "exposures", "connection": "nowhere",
            "sql": "DELETE FROM exposures", "dimensions": ["Platform", "variant", "os", "os"],
        }, actor=EDITOR)
    problems = _problems(excinfo)
    assert len(problems) == 5, problems
    assert any(p.startswith("sql: give one SELECT statement (it starts with 'DELETE')")
               for p in problems)
    assert any("no warehouse connection named 'nowhere'" in p for p in problems)
    assert any("lower_snake_case" in p and "'Platform'" in p for p in problems)
    assert any("variant is always returned" in p for p in problems)  # and os twice:
    assert "os declared more than once" in str(excinfo.value)
    with pytest.raises(InvalidInput, match="contains ';'"):
        catalog.create_fact_source(session, data={
            **ORDERS, "sql": "SELECT 1; DROP TABLE orders"}, actor=EDITOR)
    with pytest.raises(InvalidInput, match="unit_id, timestamp"):
        catalog.create_fact_source(session, data={**ORDERS, "columns": ["unit_id", "revenue"]},
                                   actor=EDITOR)
    with pytest.raises(InvalidInput, match="columns"):
        catalog.create_fact_source(session, data={**ORDERS, "columns": []}, actor=EDITOR)
    assert catalog.list_assignment_sources(session) == []
    assert catalog.list_fact_sources(session) == [] and _audit_count(session) == before


def test_catalog_sources_names_are_unique_across_both_kinds(session: Session,
                                                            shop: str) -> None:
    catalog.create_assignment_source(session, data=ASSIGNMENT, actor=EDITOR)
    with pytest.raises(Conflict, match="already an assignment source named 'exposures'"):
        catalog.create_fact_source(session, data={**ORDERS, "name": "exposures"},
                                   actor=EDITOR)
    catalog.create_fact_source(session, data=ORDERS, actor=EDITOR)
    with pytest.raises(Conflict, match="already a fact source named 'orders'"):
        catalog.create_assignment_source(session, data={**ASSIGNMENT, "name": "orders"},
                                         actor=EDITOR)
    with pytest.raises(PermissionDenied):
        catalog.create_fact_source(session, data={**ORDERS, "name": "x"}, actor=VIEWER)


def test_catalog_source_edits_are_audited_and_keep_used_columns(session: Session,
                                                                shop: str) -> None:
    from core import catalogue

    created = catalog.create_fact_source(session, data={**ORDERS, "sql": wh.ORDERS_SQL + ";"},
                                         actor=EDITOR)
    assert created.sql == wh.ORDERS_SQL and created.connection == shop  # stored without ;
    catalogue.create_metric(session, data={"name": "spend", "fact_source": "orders",
                                           "aggregation": "sum", "value_column": "revenue"},
                            actor=EDITOR)
    assert catalog.get_fact_source(session, name="orders").metrics == ("spend",)
    with pytest.raises(InvalidInput, match="revenue is used by the metric"):
        catalog.update_fact_source(session, name="orders", changes={"columns": ["items"]},
                                   actor=EDITOR)
    view = catalog.update_fact_source(session, name="orders", changes={
        "columns": ["revenue", "items", "discount"], "sql": wh.ORDERS_SQL + ", discount"},
        actor=EDITOR)
    assert view.columns == ("revenue", "items", "discount")
    entry = repo.audit_entries(session, entity_type="fact_source", entity_id=view.id)[-1]
    assert entry.action == "update" and set(entry.changes) == {"sql", "columns"}
    with pytest.raises(RuleViolation, match="spend"):
        catalog.delete_fact_source(session, name="orders", actor=EDITOR)
    with pytest.raises(InvalidInput, match="no warehouse connection named 'gone'"):
        catalog.update_fact_source(session, name="orders", changes={"connection": "gone"},
                                   actor=EDITOR)
    assignment = catalog.create_assignment_source(session, data=ASSIGNMENT, actor=EDITOR)
    assert assignment.dimensions == ("platform",) and assignment.experiments == ()
    moved = catalog.update_assignment_source(session, name="exposures",
                                             changes={"dimensions": []}, actor=EDITOR)
    assert moved.dimensions == ()
    catalog.delete_assignment_source(session, name="exposures", actor=EDITOR)
    with pytest.raises(NotFound):
        catalog.get_assignment_source(session, name="exposures")


# --------------------------------------------------------------------------- experiments


def _experiment(session: Session, **extra: Any) -> registry.ExperimentView:
    from core import catalogue

    catalogue.create_metric(session, data={"name": "buyers", "fact_source": "orders",
                                           "aggregation": "any", "window_days": 7},
                            actor=EDITOR)
    return registry.create_experiment(session, data={
        "name": "Checkout", "owner": "o", "hypothesis": "It helps.",
        "primary_metric": "buyers", "planned_sample_size": 100,
        "variants": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        **extra}, actor=EDITOR)


def test_catalog_attach_experiment_is_a_registry_change_frozen_at_launch(
    session: Session, shop: str
) -> None:
    catalog.create_assignment_source(session, data=ASSIGNMENT, actor=EDITOR)
    catalog.create_fact_source(session, data=ORDERS, actor=EDITOR)
    view = _experiment(session)
    assert (view.assignment_source, view.experiment_key) == (None, None)
    attached = catalog.attach_experiment(session, experiment_id=view.id,
                                         assignment_source="exposures",
                                         experiment_key="checkout-v2",
                                         expected_version=view.version, actor=EDITOR)
    assert (attached.assignment_source, attached.experiment_key) == ("exposures",
                                                                     "checkout-v2")
    assert catalog.get_assignment_source(session, name="exposures").experiments == (
        "Checkout",)
    entry = repo.audit_entries(session, entity_type="experiment", entity_id=view.id)[-1]
    assert entry.action == "update" and entry.changes == {
        "assignment_source": [None, "exposures"], "experiment_key": [None, "checkout-v2"]}
    with pytest.raises(RuleViolation, match="feeds the experiment"):
        catalog.delete_assignment_source(session, name="exposures", actor=EDITOR)

    launched = registry.transition_experiment(session, experiment_id=view.id,
                                              to_status="running",
                                              expected_version=attached.version, actor=EDITOR)
    assert launched.frozen_plan is not None
    assert launched.frozen_plan["assignment_source"] == "exposures"
    assert launched.frozen_plan["experiment_key"] == "checkout-v2"
    with pytest.raises(RuleViolation, match="plan deviation and needs a reason"):
        catalog.attach_experiment(session, experiment_id=view.id,
                                  assignment_source="exposures", experiment_key="checkout-v3",
                                  expected_version=launched.version, actor=EDITOR)
    moved = catalog.attach_experiment(session, experiment_id=view.id,
                                      assignment_source="exposures",
                                      experiment_key="checkout-v3",
                                      expected_version=launched.version, actor=EDITOR,
                                      reason="the app renamed the flag")
    assert moved.experiment_key == "checkout-v3"
    deviation = registry.plan_deviations(session, experiment_id=view.id)[-1]
    assert deviation.changes == {"experiment_key": ["checkout-v2", "checkout-v3"]}


def test_catalog_attach_experiment_needs_a_known_source_and_a_key(session: Session,
                                                                  shop: str) -> None:
    catalog.create_fact_source(session, data=ORDERS, actor=EDITOR)
    view = _experiment(session)
    with pytest.raises(InvalidInput) as excinfo:
        catalog.attach_experiment(session, experiment_id=view.id, assignment_source="nope",
                                  experiment_key=None, expected_version=view.version,
                                  actor=EDITOR)
    problems = _problems(excinfo)
    assert any("give both, or neither" in p for p in problems)
    assert any("no assignment source named 'nope'" in p for p in problems)
    with pytest.raises(InvalidInput, match="experiment_key"):
        registry.create_experiment(session, data={
            "name": "Other", "owner": "o", "experiment_key": "   "}, actor=EDITOR)
    with pytest.raises(PermissionDenied):
        catalog.attach_experiment(session, experiment_id=view.id, assignment_source=None,
                                  experiment_key=None, expected_version=view.version,
                                  actor=VIEWER)
