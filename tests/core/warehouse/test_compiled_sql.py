"""Golden SQL for the engines the suite cannot run: ``compiled_sql(spec, dialect)`` for a fixed
experiment is compared exactly with ``golden/<dialect>/<source>.sql`` (BigQuery, Snowflake,
Databricks, Trino) and each query parses with SQLGlot in that dialect.

When a change to the query builder (or an Ibis/SQLGlot upgrade) changes the SQL on purpose,
regenerate the files and review their diff before committing::

    EXPERIMENTOS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/core/warehouse/test_compiled_sql.py

(the tests then rewrite the files, drop stale ones, and pass).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
import sqlglot

from core.warehouse.compute import compiled_sql
from core.warehouse.definitions import (
    AssignmentSource,
    Connection,
    ExperimentSpec,
    FactSource,
    WarehouseMetric,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("EXPERIMENTOS_UPDATE_GOLDEN") == "1"
DIALECTS = ("bigquery", "snowflake", "databricks", "trino")

_CON = Connection("warehouse", "duckdb:///golden.duckdb")
SPEC = ExperimentSpec(
    experiment_key="checkout_button",
    variants=("control", "treatment", "treatment_b"),
    start=date(2026, 3, 2),
    end=date(2026, 3, 15),
    assignment=AssignmentSource(
        "exposures", _CON,
        "SELECT user_id AS unit_id, exposed_at AS timestamp, experiment AS experiment_key, "
        "arm AS variant, platform FROM analytics.assignments",
        dimensions=("platform",),
    ),
    facts=(
        FactSource("orders", _CON,
                   "SELECT user_id AS unit_id, ordered_at AS timestamp, revenue, items "
                   "FROM analytics.orders WHERE status = 'paid'",
                   columns=("revenue", "items")),
        FactSource("sessions", _CON,
                   "SELECT user_id AS unit_id, started_at AS timestamp, 1 AS session_count, "
                   "page_views FROM analytics.sessions",
                   columns=("session_count", "page_views")),
    ),
    metrics=(
        WarehouseMetric("conversion", "orders", "any", window_days=7),
        WarehouseMetric("revenue", "orders", "sum", column="revenue", window_days=7,
                        cuped_days=14),
        WarehouseMetric("order_value", "orders", "mean", column="revenue", window_days=7),
        WarehouseMetric("items", "orders", "count", column="items"),
        WarehouseMetric("views_per_session", "sessions", "ratio", column="page_views",
                        denominator="session_count", window_days=3),
    ),
    label="Checkout button colour",
)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compiled_sql_matches_the_golden_files(dialect: str) -> None:
    got = compiled_sql(SPEC, dialect)
    folder = GOLDEN / dialect
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.sql"):
            if stale.stem not in got:
                stale.unlink()
        for name, sql in got.items():
            (folder / f"{name}.sql").write_text(sql)
    files = {p.stem: p.read_text() for p in sorted(folder.glob("*.sql"))}
    assert set(got) == {f.name for f in SPEC.facts}
    assert set(files) == set(got), "regenerate: EXPERIMENTOS_UPDATE_GOLDEN=1 (module docstring)"
    for name, sql in got.items():
        assert sql == files[name], (
            f"{dialect}/{name}.sql differs from the compiled SQL; if the change is meant, "
            "regenerate with EXPERIMENTOS_UPDATE_GOLDEN=1 and review the diff"
        )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compiled_sql_parses_in_its_dialect_and_wraps_the_sources(dialect: str) -> None:
    for name, sql in compiled_sql(SPEC, dialect).items():
        parsed = sqlglot.parse_one(sql, read=dialect)
        assert parsed is not None, f"{dialect}/{name}"
        # The user's SQL is wrapped, not rewritten away: its tables are read.
        tables = {t.sql(dialect=dialect) for t in parsed.find_all(sqlglot.exp.Table)}
        assert "analytics.assignments" in tables, (dialect, name, tables)
        assert f"analytics.{name}" in tables, (dialect, name, tables)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compiled_sql_names_the_experiment_in_a_comment(dialect: str) -> None:
    """The query label: the SQL shown and kept as golden is the SQL that would run, and what
    runs carries a comment naming the experiment (the issue's cost and safety controls)."""
    for name, sql in compiled_sql(SPEC, dialect).items():
        assert SPEC.label in sql, f"{dialect}/{name} does not name the experiment"
