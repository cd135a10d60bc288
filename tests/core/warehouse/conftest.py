"""The synthetic warehouse, loaded once per test session into each engine: a DuckDB file, a
schema ``wh`` in a throwaway PostgreSQL database, and temporary views in the one shared
SparkSession (the engine's ``spark_session()``: ``local[2]``, UI off, 4 shuffle partitions,
UTC), started in the background when the first warehouse test runs and stopped at the end.

Without a PostgreSQL server or a Java runtime the tests of that engine are skipped, except with
CI=true, where that is a failure (``scripts/ensure-java.sh`` and ``scripts/ensure-postgres.sh``
provide both).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from core.warehouse.compute import compute
from core.warehouse.definitions import Connection, Limits, WarehouseResult
from core.warehouse.synthetic import (
    SyntheticWarehouse,
    generate_warehouse,
    load_duckdb,
    load_postgres,
    load_spark,
)
from tests.conftest import IN_CI, create_postgres_database, drop_postgres_database
from tests.core.warehouse.reference import Reference, reference
from tests.core.warehouse.specs import experiment_spec, frames

SPARK_MASTER = "local[2]"
SPARK_KEY = "recs_carousel"
"""The one experiment computed on Spark (three variants): its queries take seconds each."""
PG_SCHEMA = "wh"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run this folder's Spark tests after its other tests, so that Spark starts (and computes
    its experiment) in the background meanwhile (:class:`SparkStart`)."""
    here = Path(__file__).parent
    places = [i for i, item in enumerate(items) if here in Path(item.path).parents]
    ours = [items[i] for i in places]
    spark_last = [it for it in ours if not it.get_closest_marker("spark")] + [
        it for it in ours if it.get_closest_marker("spark")]
    for i, item in zip(places, spark_last, strict=True):
        items[i] = item


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


def analysis_day(warehouse: SyntheticWarehouse) -> date:
    """A day when every fact of the synthetic warehouse (late ones included) has arrived."""
    return warehouse.last_day + timedelta(days=3)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


@pytest.fixture(scope="session")
def expected_of(warehouse: SyntheticWarehouse) -> Callable[[str], Reference]:
    """The pandas reference of a synthetic experiment (by key) over the whole warehouse, on
    its own days (computed once per key)."""
    cache: dict[str, Reference] = {}

    def of(key: str) -> Reference:
        if key not in cache:
            spec = experiment_spec(warehouse, key, Connection("reference", "duckdb:///"))
            cache[key] = reference(spec, *frames(warehouse.tables()))
        return cache[key]

    return of


def compute_for(warehouse: SyntheticWarehouse, engine: tuple[str, Connection, str],
                key: str) -> WarehouseResult:
    """compute() of the synthetic experiment ``key`` on ``engine``, on its analysis day."""
    _, connection, prefix = engine
    today = analysis_day(warehouse)
    spec = experiment_spec(warehouse, key, connection, prefix)
    return compute(spec, limits=Limits(), today=today, now=midnight(today))


class SparkStart(threading.Thread):
    """Starts the one SparkSession, loads the synthetic warehouse into it and computes the
    Spark experiment (:data:`SPARK_KEY`) in the background, while the DuckDB and PostgreSQL
    tests run: the JVM's start and its first query's warm-up take most of the Spark tests'
    time, and they use the second core. Errors are kept and raised where the tests ask."""

    def __init__(self, warehouse: SyntheticWarehouse) -> None:
        super().__init__(name="spark-start", daemon=True)
        self.warehouse = warehouse
        self.session: Any = None
        self.error: BaseException | None = None
        self.result: WarehouseResult | None = None
        self.compute_error: BaseException | None = None

    def run(self) -> None:
        try:
            self.session = new_spark_session()
            load_spark(self.session, self.warehouse.tables())
        except BaseException as exc:  # noqa: BLE001 - raised again by the spark fixture
            self.error = exc
            return
        try:
            engine = ("spark", Connection("test spark", f"spark://{SPARK_MASTER}"), "")
            self.result = compute_for(self.warehouse, engine, SPARK_KEY)
        except BaseException as exc:  # noqa: BLE001 - raised again by the test that asks
            self.compute_error = exc


def new_spark_session() -> Any:
    """The engine's shared SparkSession (one per master and process)."""
    from core.warehouse.engines import spark_session

    session = spark_session(SPARK_MASTER)
    session.sparkContext.setLogLevel("ERROR")
    return session


def _spark_unavailable() -> str | None:
    """Why Spark cannot run here (None: it can); in CI that is a failure."""
    reason = None
    if _java() is None:
        reason = "no Java runtime for Spark (scripts/ensure-java.sh installs one)"
    else:
        try:
            import pyspark  # noqa: F401
        except ImportError:
            reason = "pyspark is not installed"
    if reason and IN_CI:
        raise RuntimeError(f"Spark is required in CI: {reason}")
    return reason


@pytest.fixture(scope="session", autouse=True)
def spark_start(
    request: pytest.FixtureRequest, warehouse: SyntheticWarehouse
) -> Iterator[SparkStart | None]:
    """Starts Spark in the background as soon as the first warehouse test runs, when any
    selected test needs it; stops the session at the end."""
    wanted = any(item.get_closest_marker("spark") for item in request.session.items)
    if not wanted or _spark_unavailable():
        yield None
        return
    start = SparkStart(warehouse)
    start.start()
    try:
        yield start
    finally:
        start.join()
        if start.session is not None:
            start.session.stop()


@pytest.fixture(scope="session")
def spark(spark_start: SparkStart | None) -> Any:
    """The one SparkSession of the test session (the engine's own), the synthetic warehouse
    loaded into it as temporary views."""
    reason = _spark_unavailable()
    if reason:
        pytest.skip(reason)
    assert spark_start is not None
    spark_start.join()
    if spark_start.error is not None:
        raise spark_start.error
    return spark_start.session


@pytest.fixture(scope="session")
def spark_connection(spark: Any) -> Connection:
    return Connection("test spark", f"spark://{SPARK_MASTER}")


@pytest.fixture(scope="session")
def results(spark_start: SparkStart | None) -> dict[tuple[str, str], WarehouseResult]:
    """compute()'s results by (engine, experiment key), each computed once per session."""
    return {}


def computed(
    request: pytest.FixtureRequest, warehouse: SyntheticWarehouse, name: str, key: str
) -> WarehouseResult:
    """compute() of ``key`` on engine ``name``, once per test session (Spark's in the
    background, see :class:`SparkStart`)."""
    results: dict[tuple[str, str], WarehouseResult] = request.getfixturevalue("results")
    engine = engine_for(request, name)
    if (name, key) not in results:
        start: SparkStart | None = request.getfixturevalue("spark_start")
        if name == "spark" and key == SPARK_KEY and start is not None:
            start.join()
            if start.compute_error is not None:
                raise start.compute_error
            assert start.result is not None
            results[name, key] = start.result
        else:
            results[name, key] = compute_for(warehouse, engine, key)
    return results[name, key]


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
