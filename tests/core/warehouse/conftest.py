"""The synthetic warehouse, loaded once per test session into each engine: a DuckDB file, a
schema ``wh`` in a throwaway PostgreSQL database, and temporary views in the one shared
SparkSession (``local[2]``, UI off, 4 shuffle partitions, UTC), stopped at the end.

Without a PostgreSQL server or a Java runtime the tests of that engine are skipped, except with
CI=true, where that is a failure (``scripts/ensure-java.sh`` and ``scripts/ensure-postgres.sh``
provide both).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from core.warehouse.definitions import Connection
from core.warehouse.synthetic import (
    SyntheticWarehouse,
    generate_warehouse,
    load_duckdb,
    load_postgres,
    load_spark,
)
from tests.conftest import IN_CI, create_postgres_database, drop_postgres_database

SPARK_MASTER = "local[2]"
PG_SCHEMA = "wh"


@pytest.fixture(scope="session")
def warehouse() -> SyntheticWarehouse:
    """The one seeded synthetic warehouse every engine gets."""
    return generate_warehouse(units=3000, days=10, seed=21)


@pytest.fixture(scope="session")
def duckdb_connection(
    warehouse: SyntheticWarehouse, tmp_path_factory: pytest.TempPathFactory
) -> Connection:
    path: Path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    load_duckdb(path, warehouse.tables())
    return Connection("test duckdb", f"duckdb:///{path}")


def postgres_connection_url(admin_url: str) -> str:
    """The plain ``postgresql://`` form of a test database URL (the form a user types)."""
    return make_url(admin_url).set(drivername="postgresql").render_as_string(
        hide_password=False
    )


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database (its SQLAlchemy URL), dropped at the end."""
    url = create_postgres_database("experimentos_warehouse")
    if url is None:
        pytest.skip("no PostgreSQL server answers (required when CI=true)")
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(scope="session")
def postgres_connection(warehouse: SyntheticWarehouse, postgres_database: str) -> Connection:
    load_postgres(postgres_database, PG_SCHEMA, warehouse.tables())
    return Connection("test postgres", postgres_connection_url(postgres_database))


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").exists():
        return str(Path(home, "bin", "java"))
    return shutil.which("java")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The one SparkSession of the test session (the engine's own when it offers one)."""
    if _java() is None:
        if IN_CI:
            raise RuntimeError("Spark needs Java in CI: run scripts/ensure-java.sh first")
        pytest.skip("no Java runtime for Spark (scripts/ensure-java.sh installs one)")
    pytest.importorskip("pyspark")
    try:
        from core.warehouse.engines import spark_session  # type: ignore[attr-defined]
    except ImportError:
        spark_session = None
    if spark_session is not None:
        session = spark_session(SPARK_MASTER)
    else:
        from pyspark.sql import SparkSession

        session = (
            SparkSession.builder.master(SPARK_MASTER)
            .appName("experimentos-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def spark_connection(warehouse: SyntheticWarehouse, spark: Any) -> Connection:
    load_spark(spark, warehouse.tables())
    return Connection("test spark", f"spark://{SPARK_MASTER}")


def engine_for(request: pytest.FixtureRequest, name: str) -> tuple[str, Connection, str]:
    """(engine name, connection, table prefix) of ``name`` (duckdb, postgresql or spark):
    the same synthetic warehouse loaded into each."""
    if name == "duckdb":
        return name, request.getfixturevalue("duckdb_connection"), ""
    if name == "postgresql":
        return name, request.getfixturevalue("postgres_connection"), f"{PG_SCHEMA}."
    if name == "spark":
        return name, request.getfixturevalue("spark_connection"), ""
    raise ValueError(f"no engine {name}")
