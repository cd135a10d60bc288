"""SQL push-down over a data interval: the query is bound to the refresh window
(``:interval_start``/``:interval_end``), the warehouse returns only the window's rows, and only
the window's days are replaced. Reference sums: numpy on the same unit rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from numpy.testing import assert_allclose
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.artifacts import LocalArtifactStore
from core.data import metric_sources
from core.data.metric_sources import ingest_sql, query_parameters, set_metric_source
from core.errors import InvalidInput
from core.workflows import refresh
from db.models import AuditEntry, MetricDailyStat
from tests.conftest import EDITOR, create_postgres_database, drop_postgres_database
from tests.core.data.test_ingestion import START, make_experiment, reference, stored
from tests.core.data.test_ingestion_sql import COLS, QUERY, UNITS, _fill, _meta

WINDOW_QUERY = QUERY.replace(":start AND :end", ":interval_start AND :interval_end")
DAY = date(2026, 3, 9)
"""The interval [DAY, DAY + 2) refreshes the window DAY..DAY + 1 (two days)."""


@pytest.fixture(scope="module")
def pg_source() -> Iterator[str]:
    url = create_postgres_database("experimentos_window")
    if url is None:
        pytest.skip("no PostgreSQL server for the push-down source")
    _fill(url)
    yield url
    drop_postgres_database(url)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The parameters every query run is bound to (in a warehouse or on the app's session)."""
    seen: list[dict[str, Any]] = []
    for name in ("_run_read_only", "_run_in_session"):
        original = getattr(metric_sources, name)

        def wrapped(target: Any, query: str, params: dict[str, Any],
                    _original: Any = original) -> list[dict[str, Any]]:
            seen.append(dict(params))
            return _original(target, query, params)

        monkeypatch.setattr(metric_sources, name, wrapped)
    return seen


def _want() -> dict[tuple[str, str, date], tuple]:
    return {**reference(COLS, "conv"), **reference(COLS, "revenue", "revenue_pre")}


def _assert_day_equals_reference(got: dict, want: dict, day: date) -> None:
    keys = [k for k in want if k[2] == day]
    assert keys and all(k in got for k in keys)
    for key in keys:
        assert got[key][0] == want[key][0]
        assert_allclose([v for v in got[key][1:] if v is not None], want[key][1:], rtol=1e-9)


@pytest.mark.parametrize("where", ["postgres_warehouse", "app_database"])
def test_sql_refresh_binds_the_window_and_replaces_only_its_days(
    session: Session, request: pytest.FixtureRequest, spy: list[dict[str, Any]], where: str,
    tmp_path: Any,
) -> None:
    if where == "postgres_warehouse":
        url: str | None = request.getfixturevalue("pg_source")
    else:  # the app's own database (SQLite or PostgreSQL), on the session
        url = None
        _meta.create_all(session.connection())
        session.execute(UNITS.insert(), [
            {"experiment": "Button test", "unit_id": u, "variant": v, "day": d,
             "conv": int(c), "revenue": float(r), "revenue_pre": float(p)}
            for u, v, d, c, r, p in zip(COLS["unit_id"], COLS["variant"], COLS["date"],
                                        COLS["conv"], COLS["revenue"], COLS["revenue_pre"],
                                        strict=True)
        ])
    exp = make_experiment(session, end=None)
    set_metric_source(session, experiment_id=exp, url=url, query=WINDOW_QUERY, actor=EDITOR)
    ingest_sql(session, experiment_id=exp, actor=EDITOR)  # the whole run so far
    today = datetime.now(UTC).date()
    assert spy[-1] == {"experiment": "Button test", "interval_start": START,
                       "interval_end": today}
    # Mark every stored day: the refresh must rewrite the window's days and no others.
    session.execute(update(MetricDailyStat).where(MetricDailyStat.experiment_id == exp)
                    .values(sum=MetricDailyStat.sum + 1000))
    session.commit()

    store = LocalArtifactStore(tmp_path / "artifacts")  # no drops
    outcome = refresh.ingest_interval(
        session, experiment_id=exp, interval_start=DAY, interval_end=DAY + timedelta(days=2),
        actor=EDITOR, store=store,
    )
    window = {DAY, DAY + timedelta(days=1)}
    assert spy[-1] == {"experiment": "Button test", "interval_start": DAY,
                       "interval_end": DAY + timedelta(days=1)}
    assert (outcome.window_start, outcome.window_end) == (DAY, DAY + timedelta(days=1))
    assert outcome.source == "sql" and outcome.changed
    assert outcome.rows_ignored == 0  # the database filtered: only the window came back
    assert outcome.rows_read == 2 * 2 * 2  # variants x metrics x days
    assert outcome.stats_rows_written == 8

    got, want = stored(session, exp), _want()
    assert set(got) == set(want)
    for day in window:
        _assert_day_equals_reference(got, want, day)
    for key in want:
        if key[2] not in window:
            assert got[key][1] == pytest.approx(want[key][1] + 1000)

    audits = session.scalar(select(func.count()).select_from(AuditEntry)
                            .where(AuditEntry.entity_id == exp)) or 0
    again = refresh.ingest_interval(
        session, experiment_id=exp, interval_start=DAY, interval_end=DAY + timedelta(days=2),
        actor=EDITOR, store=store,
    )
    assert not again.changed and again.stats_rows_written == 0
    assert session.scalar(select(func.count()).select_from(AuditEntry)
                          .where(AuditEntry.entity_id == exp)) == audits


def test_sql_refresh_with_a_query_ignoring_the_window_still_replaces_only_the_window(
    session: Session, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """A query on :start/:end only (written before the interval parameters) keeps working: the
    rows outside the window are read, then ignored."""
    url = request.getfixturevalue("pg_source")
    exp = make_experiment(session, end=None)
    set_metric_source(session, experiment_id=exp, url=url, query=QUERY, actor=EDITOR)
    outcome = refresh.ingest_interval(
        session, experiment_id=exp, interval_start=DAY, interval_end=DAY + timedelta(days=1),
        actor=EDITOR, store=LocalArtifactStore(tmp_path / "artifacts"),
    )
    assert outcome.rows_read == 4 and outcome.rows_ignored == 4 * 13
    assert {k[2] for k in stored(session, exp)} == {DAY}
    _assert_day_equals_reference(stored(session, exp), _want(), DAY)


def test_query_parameters_default_to_the_run_so_far_and_check_the_window(
    session: Session,
) -> None:
    exp = make_experiment(session)  # completed: START..END
    params = query_parameters(session, experiment_id=exp)
    assert params == {"experiment_id": exp, "experiment": "Button test",
                      "interval_start": START, "interval_end": date(2026, 3, 15),
                      "start": START, "end": date(2026, 3, 15)}
    narrowed = query_parameters(session, experiment_id=exp, interval_start=DAY,
                                interval_end=DAY)
    assert (narrowed["interval_start"], narrowed["interval_end"]) == (DAY, DAY)
    assert (narrowed["start"], narrowed["end"]) == (START, date(2026, 3, 15))
    with pytest.raises(InvalidInput, match="is after the last"):
        query_parameters(session, experiment_id=exp, interval_start=DAY,
                         interval_end=DAY - timedelta(days=1))
    with pytest.raises(InvalidInput, match="is outside 'Button test'"):
        query_parameters(session, experiment_id=exp, interval_start=START - timedelta(days=1))


def test_sql_source_accepts_the_interval_parameters(session: Session) -> None:
    exp = make_experiment(session)
    view = set_metric_source(session, experiment_id=exp, query=WINDOW_QUERY, actor=EDITOR)
    assert ":interval_start" in view.query
    with pytest.raises(InvalidInput) as err:
        set_metric_source(session, experiment_id=exp, query="SELECT 1 WHERE :since > 0",
                          actor=EDITOR)
    assert ":interval_start, :interval_end" in str(err.value)


def test_ingest_sql_with_a_window_stores_only_its_days(
    session: Session, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_source")
    exp = make_experiment(session)
    set_metric_source(session, experiment_id=exp, url=url, query=QUERY, actor=EDITOR)
    report = ingest_sql(session, experiment_id=exp, actor=EDITOR, interval_start=DAY,
                        interval_end=DAY + timedelta(days=1))
    assert (report.first_day, report.last_day) == (DAY, DAY + timedelta(days=1))
    assert {k[2] for k in stored(session, exp)} == {DAY, DAY + timedelta(days=1)}
