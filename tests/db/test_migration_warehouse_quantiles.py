"""Migration 0014_warehouse_quantiles on SQLite and PostgreSQL: a fact source's sum or count
metric may be a quantile metric once it ran (not before), no other aggregation may; the
down-migration removes the warehouse quantile metrics and the rule, the up-migration allows them
again."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db.migrate import downgrade, upgrade
from db.session import make_engine

INSERT = ("INSERT INTO metrics (name, kind, fact_source_id, aggregation, value_column, "
          "quantile_p, unit, higher_is_better, description) VALUES (:name, :kind, 1, :agg, "
          ":column, :p, '', false, '')")
P90_SUM = {"name": "load_p90", "kind": "quantile", "agg": "sum", "column": "load_ms", "p": 0.9}


def _names(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(text("SELECT name FROM metrics")))
    finally:
        engine.dispose()


def test_migration_0014_allows_warehouse_quantile_metrics_and_goes_again(
    own_database: str,
) -> None:
    upgrade(own_database, "0013_capping")
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO warehouse_connections (id, name, url, allow_app_database, created_by, "
            "updated_by) VALUES (1, 'wh', 'duckdb:///w.duckdb', false, 'a', 'a')"))
        conn.execute(text(
            "INSERT INTO fact_sources (id, name, connection_id, sql, columns, created_by, "
            "updated_by) VALUES (1, 'loads', 1, 'SELECT 1', '[\"load_ms\"]', 'a', 'a')"))
        conn.execute(text(INSERT), {**P90_SUM, "name": "load_sum", "kind": "mean", "p": None})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(INSERT), P90_SUM)
    engine.dispose()

    upgrade(own_database)
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text(INSERT), P90_SUM)
        conn.execute(text(INSERT), {**P90_SUM, "name": "views_p50", "agg": "count",
                                    "column": None, "p": 0.5})
    for bad in ({"agg": "any", "column": None}, {"agg": "mean"}, {"p": None},
                {"kind": "mean"}):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(INSERT), {**P90_SUM, "name": "bad", **bad})
    engine.dispose()
    assert _names(own_database) == ["load_p90", "load_sum", "views_p50"]

    downgrade(own_database, "0013_capping")
    assert _names(own_database) == ["load_sum"]
    upgrade(own_database)
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text(INSERT), P90_SUM)
    engine.dispose()
