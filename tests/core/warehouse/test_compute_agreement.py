"""The generated queries, run for real: the same seeded synthetic warehouse loaded into DuckDB,
PostgreSQL (marker ``postgres``) and Spark in local mode (marker ``spark``) gives the same
records to 1e-9 relative on each engine, and they equal the pandas reference
(tests/core/warehouse/reference.py), which was written apart from the engine.

A failure lists every differing record by (metric, variant, day, dimension, value) and field,
with the expected (reference) and the engine's value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from core.data.aggregates import aggregate_records
from core.data.reading import ExperimentContext, MetricInfo
from core.warehouse.compute import compute
from core.warehouse.definitions import (
    Connection,
    ExperimentSpec,
    Exposure,
    Limits,
)
from core.warehouse.synthetic import (
    SyntheticWarehouse,
    generate_warehouse,
    load_duckdb,
    load_postgres,
)
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.core.warehouse.conftest import (
    SPARK_KEY,
    analysis_day,
    computed,
    engine_for,
    midnight,
    postgres_connection_url,
)
from tests.core.warehouse.reference import (
    Reference,
    final_through,
    record_differences,
    reference,
)
from tests.core.warehouse.specs import ORDERS, SESSIONS, experiment_spec, frames

RUNS = [
    pytest.param("duckdb", "checkout_button", id="duckdb-checkout_button"),
    pytest.param("duckdb", "recs_carousel", id="duckdb-recs_carousel"),
    pytest.param("postgresql", "checkout_button", id="postgresql-checkout_button",
                 marks=pytest.mark.postgres),
    pytest.param("postgresql", "recs_carousel", id="postgresql-recs_carousel",
                 marks=pytest.mark.postgres),
    # Spark runs one experiment (its queries take seconds each on local[2]): three variants.
    pytest.param("spark", SPARK_KEY, id=f"spark-{SPARK_KEY}", marks=pytest.mark.spark),
]
"""(engine, experiment) pairs computed for real."""


@pytest.mark.parametrize(("engine_name", "key"), RUNS)
def test_compute_records_equal_the_pandas_reference(
    engine_name: str,
    key: str,
    warehouse: SyntheticWarehouse,
    expected_of: Callable[[str], Reference],
    request: pytest.FixtureRequest,
) -> None:
    name, _, _ = engine_for(request, engine_name)
    result = computed(request, warehouse, name, key)
    expected = expected_of(key)
    problems = record_differences(result.records, expected.records, rtol=1e-9)
    assert not problems, f"{name}, {key}: the records differ from the pandas reference:\n" + (
        "\n".join(problems))
    assert result.exposure == Exposure(
        units=expected.units,
        multi_variant_units=expected.multi_variant_units,
        units_by_variant=expected.units_by_variant,
        by_day=expected.by_day,
    ), name


@pytest.mark.postgres
@pytest.mark.spark
def test_compute_engines_agree_with_each_other(
    warehouse: SyntheticWarehouse, request: pytest.FixtureRequest
) -> None:
    key = SPARK_KEY
    got = {name: computed(request, warehouse, name, key)
           for name in ("duckdb", "postgresql", "spark")}
    for other in ("postgresql", "spark"):
        problems = record_differences(got[other].records, got["duckdb"].records, rtol=1e-9)
        assert not problems, f"{other} against duckdb ({key}):\n" + "\n".join(problems)
        assert got[other].exposure == got["duckdb"].exposure


def test_compute_reports_queries_windows_and_keys(
    warehouse: SyntheticWarehouse, duckdb_connection: Connection, request: pytest.FixtureRequest
) -> None:
    result = computed(request, warehouse, "duckdb", "checkout_button")
    spec = experiment_spec(warehouse, "checkout_button", duckdb_connection)
    today = analysis_day(warehouse)
    # Every query that ran names the experiment (its label) and says what came back. The
    # units are grouped once, into a temporary table the other queries read (no rows back).
    assert result.queries
    kept = [q for q in result.queries if "CREATE TEMP TABLE" in q.sql]
    # Each statement once: the checks, the units kept, units per day, one per fact source.
    purposes = [q.sql.splitlines()[0] for q in result.queries]
    assert len(purposes) == len(set(purposes)) == 3 + 2, purposes
    assert len(kept) == 1 and kept[0].source == spec.assignment.name
    assert kept[0].rows_returned == 0
    for query in result.queries:
        assert spec.label in query.sql, query.source
        assert (query.rows_returned > 0 or query in kept) and query.seconds >= 0
    name = kept[0].sql.split("CREATE TEMP TABLE ", 1)[1].split()[0]
    assert all(name in q.sql for q in result.queries if q.source in (ORDERS, SESSIONS))
    assert {q.source for q in result.queries} >= {ORDERS, SESSIONS}
    # A full refresh starts at the experiment's start; long after the analysis day every
    # exposure day is final, for the source with a metric without a window (orders) too.
    assert result.open_from == {ORDERS: spec.start, SESSIONS: spec.start}
    late = Limits().late_data_days
    for source in (ORDERS, SESSIONS):
        assert result.final_through[source] == final_through(
            spec, source, today=today, late_data_days=late) == spec.end
    assert set(result.definition_keys) == {ORDERS, SESSIONS}
    # Records: one per metric, variant, first-exposure day (and dimension value).
    days = {r["day"] for r in result.records}
    assert all(spec.start <= _as_date(d) <= spec.end for d in days)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def test_compute_definition_key_changes_with_what_the_numbers_depend_on(
    warehouse: SyntheticWarehouse, duckdb_connection: Connection
) -> None:
    spec = experiment_spec(warehouse, "checkout_button", duckdb_connection)
    today = analysis_day(warehouse)

    def keys(s: Any) -> dict[str, str]:
        return compute(s, today=today, now=midnight(today)).definition_keys

    base = keys(spec)
    assert keys(spec) == base  # stable
    longer = tuple(
        replace(m, window_days=14) if m.name == "sessions" else m for m in spec.metrics
    )
    changed = keys(replace(spec, metrics=longer))
    assert changed[SESSIONS] != base[SESSIONS] and changed[ORDERS] == base[ORDERS]
    assignment = replace(spec.assignment, sql=spec.assignment.sql + " WHERE 1 = 1")
    moved = keys(replace(spec, assignment=assignment))
    assert moved[SESSIONS] != base[SESSIONS] and moved[ORDERS] != base[ORDERS]


KIND = {"sum": "mean", "count": "mean", "any": "binomial", "mean": "ratio", "ratio": "ratio"}
"""The catalogue kind of each aggregation (the design's "Metric semantics")."""


def ingestion_context(spec: ExperimentSpec) -> ExperimentContext:
    """What ingestion knows of an experiment with ``spec``'s variants, days and metrics."""
    return ExperimentContext(
        id=1, name=spec.label, status="running", start=spec.start, end=spec.end,
        variants={v: i for i, v in enumerate(spec.variants, start=1)},
        metrics={
            m.name: MetricInfo(id=i, name=m.name, kind=KIND[m.aggregation], role="primary",
                               higher_is_better=True)
            for i, m in enumerate(spec.metrics, start=1)
        },
    )


@pytest.mark.parametrize(("engine_name", "key"), RUNS)
def test_compute_records_are_what_ingestion_takes(
    engine_name: str, key: str, warehouse: SyntheticWarehouse, request: pytest.FixtureRequest
) -> None:
    """The records go to core.data.ingestion.ingest_records(kind="warehouse") unchanged: its
    row checks (core.data.aggregates.aggregate_records) accept every one of them."""
    name, connection, prefix = engine_for(request, engine_name)
    result = computed(request, warehouse, name, key)
    spec = experiment_spec(warehouse, key, connection, prefix)
    aggregated = aggregate_records(ingestion_context(spec), result.records, label=name)
    assert aggregated.rows_read == len(result.records)
    assert set(aggregated.dimensions) == set(spec.assignment.dimensions)


@pytest.mark.postgres
def test_compute_timestamps_with_time_zone_count_on_the_utc_day() -> None:
    """Sources returning ``timestamptz`` on a server whose session time zone is New York: the
    records are the same (a unit's day is the UTC date of its first exposure)."""
    url = create_postgres_database("experimentos_warehouse_tz")
    if url is None:
        pytest.skip("no PostgreSQL server answers (required when CI=true)")
    try:
        small = generate_warehouse(units=800, days=10, seed=21)
        load_postgres(url, "wh", small.tables())
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA tz"))
            for table, columns in (
                ("exposures", "experiment_key, variant, platform, country"),
                ("orders", "revenue, items, discount"),
                ("sessions", "session_count, page_views"),
            ):
                conn.execute(text(
                    f"CREATE VIEW tz.{table} AS SELECT unit_id, timestamp AT TIME ZONE 'UTC' "
                    f"AS timestamp, {columns} FROM wh.{table}"))
            conn.execute(text(
                f'ALTER DATABASE "{engine.url.database}" SET timezone TO \'America/New_York\''))
        engine.dispose()
        connection = Connection("tz", postgres_connection_url(url))
        spec = experiment_spec(small, "checkout_button", connection, "tz.")
        today = analysis_day(small)
        result = compute(spec, today=today, now=midnight(today))
        expected = reference(spec, *frames(small.tables()))
        problems = record_differences(result.records, expected.records)
        assert not problems, "timestamptz in New York:\n" + "\n".join(problems)
    finally:
        drop_postgres_database(url)


def test_compute_integer_unit_ids_give_the_same_records(
    warehouse: SyntheticWarehouse, tmp_path: Path
) -> None:
    """unit_id as BIGINT in every source (the synthetic ids without their 'u')."""
    tables = {name: frame.assign(unit_id=frame["unit_id"].str[1:].astype("int64"))
              for name, frame in warehouse.tables().items()}
    path = tmp_path / "integer_ids.duckdb"
    load_duckdb(path, tables)
    spec = experiment_spec(warehouse, "recs_carousel", Connection("ints", f"duckdb:///{path}"))
    today = analysis_day(warehouse)
    result = compute(spec, today=today, now=midnight(today))
    problems = record_differences(result.records, reference(spec, *frames(tables)).records)
    assert not problems, "integer unit ids:\n" + "\n".join(problems)


def test_compute_exposure_counts_the_units_in_the_records(
    warehouse: SyntheticWarehouse, duckdb_connection: Connection
) -> None:
    """Analysed before the last exposures (end on day 5 of 10): units first exposed after the
    analysis day are in neither the records nor the exposure counts, and the units counted
    per variant are the units the records hold."""
    spec = replace(experiment_spec(warehouse, "checkout_button", duckdb_connection),
                   end=warehouse.start + timedelta(days=5))
    today = analysis_day(warehouse)
    result = compute(spec, today=today, now=midnight(today))
    expected = reference(spec, *frames(warehouse.tables()))
    problems = record_differences(result.records, expected.records)
    assert not problems, "end before the last exposures:\n" + "\n".join(problems)
    in_records: dict[str, int] = {}
    for r in result.records:
        if r["metric"] == "conversion" and not r.get("dimension"):
            in_records[str(r["variant"])] = in_records.get(str(r["variant"]), 0) + int(r["n"])
    assert result.exposure.units_by_variant == in_records == expected.units_by_variant
    assert result.exposure.units == sum(in_records.values())
