"""SQL push-down: the query runs inside the source database (PostgreSQL, SQLite, or the app's
own database) and only aggregates come back. Reference sums: numpy on the same unit rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from numpy.testing import assert_allclose
from sqlalchemy import Column, Date, Float, Integer, MetaData, String, Table, func, select
from sqlalchemy.orm import Session

from core.data.metric_sources import get_metric_source, ingest_sql, set_metric_source
from core.errors import InvalidInput
from db import metric_repository as mrepo
from db.session import make_engine
from tests.conftest import EDITOR, create_postgres_database, drop_postgres_database
from tests.core.data.test_ingestion import make_experiment, make_units, reference, stored

_meta = MetaData()
UNITS = Table(
    "unit_metrics", _meta,
    Column("id", Integer, primary_key=True),
    Column("experiment", String(200)), Column("unit_id", String(40)),
    Column("variant", String(40)), Column("day", Date), Column("conv", Integer),
    Column("revenue", Float), Column("revenue_pre", Float),
)
QUERY = """
SELECT variant, day, 'conv' AS metric, COUNT(*) AS n, SUM(conv) AS sum, SUM(conv) AS sum_squares,
       NULL AS sum_x, NULL AS sum_x2, NULL AS sum_xy
FROM unit_metrics WHERE experiment = :experiment AND day BETWEEN :start AND :end
GROUP BY variant, day
UNION ALL
SELECT variant, day, 'revenue', COUNT(*), SUM(revenue), SUM(revenue * revenue),
       SUM(revenue_pre), SUM(revenue_pre * revenue_pre), SUM(revenue_pre * revenue)
FROM unit_metrics WHERE experiment = :experiment AND day BETWEEN :start AND :end
GROUP BY variant, day
"""
COLS = make_units(250, seed=4)


def _fill(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        _meta.create_all(conn)
        conn.execute(UNITS.insert(), [
            {"experiment": "Button test", "unit_id": u, "variant": v, "day": d, "conv": int(c),
             "revenue": float(r), "revenue_pre": float(p)}
            for u, v, d, c, r, p in zip(COLS["unit_id"], COLS["variant"], COLS["date"],
                                        COLS["conv"], COLS["revenue"], COLS["revenue_pre"],
                                        strict=True)
        ])
    engine.dispose()


@pytest.fixture(scope="module")
def pg_source() -> Iterator[str]:
    url = create_postgres_database("experimentos_source")
    if url is None:
        pytest.skip("no PostgreSQL server for the push-down source")
    _fill(url)
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('source') / 'warehouse.db'}"
    _fill(url)
    return url


def _check_against_numpy(session: Session, exp: int) -> None:
    got = stored(session, exp)
    want = {**reference(COLS, "conv"), **reference(COLS, "revenue", "revenue_pre")}
    assert set(got) == set(want)
    for key, values in want.items():
        assert got[key][0] == values[0]
        assert_allclose([v for v in got[key][1:] if v is not None], values[1:], rtol=1e-9)


@pytest.mark.parametrize("source", ["pg_source", "sqlite_source"])
def test_sql_push_down_stores_the_aggregates_it_returns(
    session: Session, request: pytest.FixtureRequest, source: str
) -> None:
    url = request.getfixturevalue(source)
    exp = make_experiment(session)
    view = set_metric_source(session, experiment_id=exp, url=url, query=QUERY, actor=EDITOR)
    assert view.query == QUERY.strip()
    report = ingest_sql(session, experiment_id=exp, actor=EDITOR)
    assert report.kind == "sql" and report.metrics == ("conv", "revenue")
    assert report.cuped_metrics == ("revenue",)
    _check_against_numpy(session, exp)
    again = ingest_sql(session, experiment_id=exp, actor=EDITOR)
    assert again.stats_rows_written == report.stats_rows_written
    _check_against_numpy(session, exp)  # replaced, not added


def test_sql_push_down_is_read_only(session: Session, pg_source: str) -> None:
    exp = make_experiment(session)
    sneaky = ("WITH gone AS (DELETE FROM unit_metrics RETURNING variant, day) "
              "SELECT variant, day, 'conv' AS metric, 1 AS n, 0 AS sum, 0 AS sum_squares "
              "FROM gone")
    set_metric_source(session, experiment_id=exp, url=pg_source, query=sneaky, actor=EDITOR)
    with pytest.raises(InvalidInput) as err:
        ingest_sql(session, experiment_id=exp, actor=EDITOR)
    assert "read-only transaction" in str(err.value)
    engine = make_engine(pg_source)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(UNITS)).scalar() == 500
    engine.dispose()
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT variant, day, 'conv' AS metric, COUNT(*) AS n FROM unit_metrics "
         "GROUP BY variant, day", "lacks the column(s) sum, sum_squares"),
        ("SELECT * FROM no_such_table", "failed in"),
        ("SELECT variant, day, 'conv' AS metric, -1 AS n, 0 AS sum, 0 AS sum_squares "
         "FROM unit_metrics GROUP BY variant, day", "n is negative"),
        ("SELECT variant, day, 'conv' AS metric, COUNT(*) AS n, COUNT(*) + 1 AS sum, "
         "COUNT(*) + 1 AS sum_squares FROM unit_metrics GROUP BY variant, day",
         "exceed units"),
    ],
)
def test_sql_push_down_bad_result_is_rejected_and_nothing_written(
    session: Session, sqlite_source: str, query: str, message: str
) -> None:
    exp = make_experiment(session)
    set_metric_source(session, experiment_id=exp, url=sqlite_source, query=query, actor=EDITOR)
    with pytest.raises(InvalidInput) as err:
        ingest_sql(session, experiment_id=exp, actor=EDITOR)
    assert message in str(err.value)
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0


@pytest.mark.parametrize(
    ("url", "query", "message"),
    [
        (None, "SELECT 1 WHERE :since > 0", "unknown parameter(s) :since"),
        (None, "SELECT 1; DROP TABLE experiments", "one SELECT statement"),
        (None, "DELETE FROM experiments", "one SELECT statement (it starts with 'DELETE')"),
        (None, "(UPDATE x SET y = 1)", "one SELECT statement (it starts with 'UPDATE')"),
        (None, "   ", "the SQL query is empty"),
        ("mysql://u@h/db", "SELECT 1", "mysql is not supported"),
        ("not a url", "SELECT 1", "is not a SQLAlchemy URL"),
    ],
)
def test_sql_source_definition_is_checked(
    session: Session, url: str | None, query: str, message: str
) -> None:
    exp = make_experiment(session)
    with pytest.raises(InvalidInput) as err:
        set_metric_source(session, experiment_id=exp, url=url, query=query, actor=EDITOR)
    assert message in str(err.value)
    assert get_metric_source(session, experiment_id=exp) is None


def test_sql_source_on_the_app_database_sees_the_session_and_changes_nothing(
    session: Session, tmp_path: Path
) -> None:
    _meta.create_all(session.connection())
    session.execute(UNITS.insert(), [
        {"experiment": "Button test", "unit_id": u, "variant": v, "day": d, "conv": int(c),
         "revenue": float(r), "revenue_pre": float(p)}
        for u, v, d, c, r, p in zip(COLS["unit_id"], COLS["variant"], COLS["date"],
                                    COLS["conv"], COLS["revenue"], COLS["revenue_pre"],
                                    strict=True)
    ])
    exp = make_experiment(session)
    set_metric_source(session, experiment_id=exp, query=QUERY, actor=EDITOR)
    ingest_sql(session, experiment_id=exp, actor=EDITOR)
    _check_against_numpy(session, exp)
    assert session.scalar(select(func.count()).select_from(UNITS)) == 500
    assert date(2026, 3, 2) <= min(COLS["date"])
