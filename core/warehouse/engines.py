"""Connecting to a team's warehouse through Ibis, and running one compiled query there.

Ibis is the one library between ExperimentOS and the engines (docs/warehouse.md "Why Ibis"):
:mod:`core.warehouse.queries` builds expressions once, Ibis compiles them to each engine's
SQL. This module opens a backend per :class:`~core.warehouse.definitions.Connection` with the
safety settings each engine offers (read-only, a statement timeout, a label naming the
experiment) and runs the exact SQL text it is given, so that what the app shows is what ran.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from core.config import environment_value, get_settings
from core.errors import InvalidInput, WarehouseUnavailable
from core.warehouse.definitions import Connection, Limits

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENGINES: dict[str, str] = {
    "duckdb": "duckdb", "postgres": "postgres", "postgresql": "postgres", "spark": "pyspark",
    "pyspark": "pyspark", "bigquery": "bigquery", "snowflake": "snowflake", "trino": "trino",
    "databricks": "databricks", "mysql": "mysql", "mariadb": "mysql",
}
"""URL scheme → Ibis backend (the dialect its SQL is compiled to)."""
EXTRA_PACKAGE: dict[str, str] = {
    "bigquery": "ibis-framework[bigquery]", "snowflake": "ibis-framework[snowflake]",
    "trino": "ibis-framework[trino]", "databricks": "ibis-framework[databricks]",
    "mysql": "ibis-framework[mysql]",
}
"""What `pip install` adds for an engine the default install does not carry."""


def scheme(url: str) -> str:
    """The engine part of a URL's scheme (``postgresql+psycopg2`` → ``postgresql``)."""
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def dialect(url: str) -> str:
    """The Ibis backend (and SQL dialect) a connection URL names; InvalidInput if none."""
    name = ENGINES.get(scheme(url))
    if name is None:
        raise InvalidInput(
            f"url: '{scheme(url)}' is not a warehouse this version connects to; use one of "
            + ", ".join(sorted({f"{k}://" for k in ENGINES}))
        )
    return name


def resolve(url: str) -> str:
    """The URL with each ``${NAME}`` replaced by that environment variable (a credential named,
    never stored); InvalidInput naming any variable that is unset."""
    missing = [m for m in PLACEHOLDER.findall(url) if environment_value(m) is None]
    if missing:
        raise InvalidInput(
            "url: the environment variable(s) "
            + ", ".join(sorted(set(missing)))
            + " named in the connection are not set where ExperimentOS runs"
        )
    return PLACEHOLDER.sub(lambda m: environment_value(m.group(1)) or "", url)


def masked(url: str) -> str:
    """A URL safe to show: a literal password (which a stored URL never holds) hidden."""
    return re.sub(r"(//[^:/@]+:)([^@]+)(@)", lambda m: m.group(1) + (
        m.group(2) if PLACEHOLDER.fullmatch(m.group(2)) else "***") + m.group(3), url)


def duckdb_path(url: str) -> Path | None:
    """The file of a ``duckdb:///path`` URL; None for an in-memory ``duckdb://``."""
    path = url.split("://", 1)[1]
    if path in ("", "/", "/:memory:", ":memory:"):
        return None
    return Path(path[1:] if path.startswith("/") else path)


def spark_master(url: str) -> str:
    """``spark://local[2]`` → ``local[2]``; a standalone master ``spark://host:7077`` as is."""
    rest = url.split("://", 1)[1]
    return rest if rest.startswith("local") or not rest else url


@functools.lru_cache(maxsize=4)
def spark_session(master: str = "local[2]") -> Any:
    """One SparkSession per master for the process (starting one takes seconds): UI off, UTC,
    few shuffle partitions for a local run."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .appName("ExperimentOS")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.bindAddress", "127.0.0.1")
        # Advertise the loopback too: a host name resolving to an unreachable address loses
        # large task results (TaskResultLost) in local mode.
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )


def is_app_database(url: str) -> bool:
    """Whether a (resolved) URL points at the app's own database (DATABASE_URL): the same
    SQLite/DuckDB file, or the same PostgreSQL host, port and database. core.warehouse.catalog
    refuses to store such a connection, and :func:`connect` to open it, unless an admin
    allowed it."""
    app = get_settings().database_url
    kind = scheme(url)
    if kind == "duckdb":
        path = duckdb_path(url)
        return path is not None and scheme(app) in ("sqlite", "duckdb") and (
            Path(app.split("///", 1)[-1]).resolve() == path.resolve())
    if kind in ("postgres", "postgresql") and scheme(app) in ("postgres", "postgresql"):
        a, b = urlsplit(app), urlsplit(url)
        return ((a.hostname or "localhost"), a.port or 5432, a.path) == (
            (b.hostname or "localhost"), b.port or 5432, b.path)
    return False


def connect(connection: Connection, *, limits: Limits | None = None, label: str = "") -> Any:
    """An Ibis backend for the connection, read-only where the engine has it, with the
    statement timeout of ``limits``. Raises WarehouseUnavailable when it cannot be reached."""
    limits = limits or Limits()
    name = dialect(connection.url)
    url = resolve(connection.url)
    if not connection.allow_app_database and is_app_database(url):
        raise InvalidInput(
            f"connection '{connection.name}': it points at the app's own database; an admin "
            "must allow that explicitly (allow_app_database) for it to be a source"
        )
    import ibis

    try:
        if name == "duckdb":
            path = duckdb_path(url)
            if path is None:
                return ibis.duckdb.connect(memory_limit=limits.duckdb_memory_limit)
            if not path.exists():
                raise WarehouseUnavailable(
                    f"connection '{connection.name}': the DuckDB file {path} does not exist")
            return ibis.duckdb.connect(database=str(path), read_only=True,
                                       memory_limit=limits.duckdb_memory_limit)
        if name == "postgres":
            parts = urlsplit(url)
            timeout_ms = int(limits.statement_timeout_seconds * 1000)
            app_name = re.sub(r"[^\w .'-]", "", f"ExperimentOS {label}".strip())[:63]
            return ibis.postgres.connect(
                host=parts.hostname or "localhost",
                port=parts.port or 5432,
                user=unquote(parts.username or "") or None,
                password=unquote(parts.password or "") or None,
                database=parts.path.lstrip("/") or None,
                connect_timeout=10,
                application_name=app_name,
                options=f"-c statement_timeout={timeout_ms}",
            )
        if name == "pyspark":
            return ibis.pyspark.connect(spark_session(spark_master(url)))
        if name == "databricks":
            # databricks://token:${DATABRICKS_TOKEN}@<workspace host>/<SQL warehouse HTTP path>
            parts = urlsplit(url)
            return ibis.databricks.connect(server_hostname=parts.hostname,
                                           http_path=parts.path,
                                           access_token=unquote(parts.password or ""))
        return ibis.connect(url)
    except (InvalidInput, WarehouseUnavailable):
        raise
    except ModuleNotFoundError as exc:
        extra = EXTRA_PACKAGE.get(name, f"the {name} driver")
        raise WarehouseUnavailable(
            f"connection '{connection.name}': {name} needs `pip install '{extra}'` "
            f"({exc.name} is missing)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - every driver raises its own error types
        raise WarehouseUnavailable(
            f"connection '{connection.name}': could not connect to {masked(connection.url)}: "
            f"{first_line(exc)}"
        ) from None


def first_line(exc: BaseException) -> str:
    """The first line of an engine's error message, without Java stack traces."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def check_connection(connection: Connection, *, limits: Limits | None = None) -> str:
    """Connect and run ``SELECT 1``: a plain-words answer, or WarehouseUnavailable."""
    started = time.perf_counter()
    backend = connect(connection, limits=limits)
    try:
        frame = run_sql(backend, "SELECT 1 AS ok", timeout=30)
        if int(frame.iloc[0, 0]) != 1:
            raise WarehouseUnavailable(f"connection '{connection.name}': SELECT 1 did not answer 1")
    finally:
        disconnect(backend)
    took = (time.perf_counter() - started) * 1000
    return f"Connected to {backend.name} at {masked(connection.url)}; it answered in {took:.0f} ms."


def disconnect(backend: Any) -> None:
    """Close a backend (a shared Spark session stays up)."""
    if backend.name != "pyspark":
        with contextlib.suppress(Exception):  # closing a broken connection may fail too
            backend.disconnect()


@dataclass(frozen=True)
class Ran:
    frame: pd.DataFrame
    seconds: float
    rows_scanned: int | None


@contextmanager
def _deadline(backend: Any, seconds: float) -> Iterator[Callable[[], bool]]:
    """Interrupt the running query after ``seconds`` on engines without a statement timeout
    of their own (DuckDB, Spark). Yields whether it fired."""
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        try:
            if backend.name == "duckdb":
                backend.con.interrupt()
            elif backend.name == "pyspark":
                backend._session.sparkContext.cancelAllJobs()
        except Exception:  # noqa: BLE001 - best effort: the query may just have finished
            pass

    timer = threading.Timer(seconds, interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield fired.is_set
    finally:
        timer.cancel()


def run_sql(backend: Any, sql: str, *, timeout: float, label: str = "") -> pd.DataFrame:
    """Run one SELECT's exact text on the backend and return its rows as a DataFrame."""
    return run(backend, sql, timeout=timeout, label=label).frame


def run(backend: Any, sql: str, *, timeout: float, label: str = "") -> Ran:
    """Run ``sql`` as given (it already carries its label comment); time it; raise
    WarehouseUnavailable on a timeout, the engine's own error otherwise."""
    started = time.perf_counter()
    scanned: int | None = None
    with _deadline(backend, timeout) as timed_out:
        try:
            if backend.name == "duckdb":
                frame = backend.con.execute(sql).fetch_df()
            elif backend.name == "pyspark":
                spark = backend._session
                spark.sparkContext.setJobDescription(label[:200] or "ExperimentOS")
                frame = spark.sql(sql).toPandas()
            elif backend.name == "postgres":
                # The query itself runs read-only (Ibis needs a temporary view, outside
                # this transaction, to learn a source's columns).
                con = backend.con
                with con.transaction(), con.cursor() as cursor:
                    cursor.execute("SET TRANSACTION READ ONLY")
                    # Scans, hash joins and aggregates: a nested loop is never the right plan
                    # for these queries, and a table without statistics tempts the planner.
                    cursor.execute("SET LOCAL enable_nestloop = off")
                    cursor.execute(sql)
                    columns = [d[0] for d in cursor.description]
                    frame = pd.DataFrame.from_records(cursor.fetchall(), columns=columns)
            else:
                with backend.raw_sql(sql) as cursor:
                    columns = [d[0] for d in cursor.description]
                    frame = pd.DataFrame.from_records(cursor.fetchall(), columns=columns)
        except Exception as exc:
            if timed_out() or "statement timeout" in str(exc).lower():
                raise WarehouseUnavailable(
                    f"the warehouse query ran longer than {timeout:g} s (the statement timeout, "
                    "WAREHOUSE_STATEMENT_TIMEOUT_SECONDS) and was cancelled"
                ) from None
            raise
    return Ran(frame, time.perf_counter() - started, scanned)


KEEPS_TEMPORARY = frozenset({"duckdb", "postgres", "pyspark"})
"""Engines on which a refresh keeps its per-unit exposures as a temporary table of its own
session (:func:`keep_temporary`); on the others each query recomputes them."""


def keep_temporary(backend: Any, name: str, select_sql: str, *, timeout: float,
                   label: str = "") -> tuple[str, float]:
    """Keep the rows of ``select_sql`` as the temporary table ``name`` of the backend's own
    session (nothing outside it is written, and it goes with the session); the statements
    that ran (``;``-separated) and the seconds taken.

    DuckDB: ``CREATE TEMP TABLE`` (allowed on a read-only file). PostgreSQL: ``CREATE TEMP
    TABLE`` then ``ANALYZE`` (the planner sees its true size), outside the read-only
    transaction the queries run in, as Ibis's own temporary views are; the session's
    ``statement_timeout`` bounds it. Spark: ``CACHE TABLE … AS`` (eager, in the executors'
    memory, spilling to disk)."""
    comment, _, body = select_sql.partition("\n") if select_sql.startswith("/*") \
        else ("", "", select_sql)
    create = {"duckdb": "CREATE TEMP TABLE", "postgres": "CREATE TEMP TABLE",
              "pyspark": "CACHE TABLE"}.get(backend.name)
    if create is None:
        raise ValueError(f"{backend.name} keeps no temporary table here")
    statements = [f"{comment}\n{create} {name} AS\n{body}".lstrip("\n")]
    if backend.name == "postgres":
        statements.append(f"ANALYZE {name}")
    started = time.perf_counter()
    with _deadline(backend, timeout) as timed_out:
        try:
            if backend.name == "duckdb":
                backend.con.execute(statements[0])
            elif backend.name == "postgres":
                con = backend.con
                with con.transaction(), con.cursor() as cursor:
                    for statement in statements:
                        cursor.execute(statement)
            else:
                spark = backend._session
                spark.sparkContext.setJobDescription(label[:200] or "ExperimentOS")
                spark.sql(statements[0])
        except Exception as exc:
            if timed_out() or "statement timeout" in str(exc).lower():
                raise WarehouseUnavailable(
                    f"the warehouse query ran longer than {timeout:g} s (the statement timeout, "
                    "WAREHOUSE_STATEMENT_TIMEOUT_SECONDS) and was cancelled"
                ) from None
            raise
    return ";\n".join(statements), time.perf_counter() - started


def drop_temporary(backend: Any, name: str) -> None:
    """Drop a table :func:`keep_temporary` made (best effort: the session may be gone)."""
    with contextlib.suppress(Exception):
        if backend.name == "duckdb":
            backend.con.execute(f"DROP TABLE IF EXISTS {name}")
        elif backend.name == "postgres":
            with backend.con.transaction(), backend.con.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {name}")
        elif backend.name == "pyspark":
            backend._session.sql(f"UNCACHE TABLE IF EXISTS {name}")
            backend._session.catalog.dropTempView(name)
