"""Migration 0015_warehouse_covariates on SQLite and PostgreSQL: an assignment source stored
before it reads with no covariates; the down-migration removes the column and the
up-migration adds it again."""

from __future__ import annotations

from sqlalchemy import inspect, text

from core.warehouse import catalog
from db.migrate import downgrade, upgrade
from db.session import make_engine, session_factory


def test_migration_0015_old_assignment_sources_have_no_covariates_and_it_goes_again(
    own_database: str,
) -> None:
    upgrade(own_database, "0014_warehouse_quantiles")
    engine = make_engine(own_database)
    json = "CAST(:dims AS json)" if "postgres" in own_database else ":dims"
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO warehouse_connections (name, url, allow_app_database, created_by, "
            "updated_by) VALUES ('shop', 'duckdb:///shop.duckdb', false, 'o', 'o')"))
        conn.execute(text(
            "INSERT INTO assignment_sources (name, connection_id, sql, dimensions, created_by, "
            f"updated_by) SELECT 'exposures', id, 'SELECT 1', {json}, 'o', 'o' "
            "FROM warehouse_connections"), {"dims": '["platform"]'})
    engine.dispose()
    upgrade(own_database)
    engine = make_engine(own_database)
    try:
        with session_factory(engine)() as session:
            view = catalog.get_assignment_source(session, name="exposures")
            assert (view.dimensions, view.covariates) == (("platform",), ())
    finally:
        engine.dispose()
    downgrade(own_database, "0014_warehouse_quantiles")
    engine = make_engine(own_database)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("assignment_sources")}
        assert "covariates" not in columns and "dimensions" in columns
    finally:
        engine.dispose()
    upgrade(own_database)
