"""Migration 0016_ratio_cuped on SQLite and PostgreSQL: a fact source's mean or ratio metric
may take cuped_days once it ran (not before); a non-positive cuped_days stays refused; the
down-migration clears a mean's or ratio's cuped_days and brings the old rule back."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db.migrate import downgrade, upgrade
from db.session import make_engine

INSERT = ("INSERT INTO metrics (name, kind, fact_source_id, aggregation, value_column, "
          "denominator_column, cuped_days, unit, higher_is_better, description) VALUES "
          "(:name, 'ratio', 1, 'ratio', 'page_views', 'sessions', :cuped, '', false, '')")


def _cuped(url: str) -> list[tuple[str, int | None]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return sorted((r[0], r[1]) for r in conn.execute(
                text("SELECT name, cuped_days FROM metrics")))
    finally:
        engine.dispose()


def test_migration_0016_allows_ratio_cuped_and_goes_again(own_database: str) -> None:
    upgrade(own_database, "0015_warehouse_covariates")
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO warehouse_connections (id, name, url, allow_app_database, created_by, "
            "updated_by) VALUES (1, 'wh', 'duckdb:///w.duckdb', false, 'a', 'a')"))
        conn.execute(text(
            "INSERT INTO fact_sources (id, name, connection_id, sql, columns, created_by, "
            "updated_by) VALUES (1, 's', 1, 'SELECT 1', '[\"page_views\", \"sessions\"]', "
            "'a', 'a')"))
        conn.execute(text(INSERT), {"name": "vps", "cuped": None})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(INSERT), {"name": "vps_cuped", "cuped": 14})
    engine.dispose()

    upgrade(own_database)
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text(INSERT), {"name": "vps_cuped", "cuped": 14})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(INSERT), {"name": "bad", "cuped": 0})
    engine.dispose()
    assert _cuped(own_database) == [("vps", None), ("vps_cuped", 14)]

    downgrade(own_database, "0015_warehouse_covariates")
    assert _cuped(own_database) == [("vps", None), ("vps_cuped", None)]
    upgrade(own_database)
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text("UPDATE metrics SET cuped_days = 7 WHERE name = 'vps'"))
    engine.dispose()
    assert _cuped(own_database) == [("vps", 7), ("vps_cuped", None)]
