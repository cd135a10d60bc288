"""The registry list's queries read indexes, not the whole table (migration 0009), on
PostgreSQL and SQLite, at enough rows that a planner would rather scan without them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from db import repositories as repo

ROWS = 20_000
"""Enough rows that PostgreSQL's planner, after ANALYZE, prefers an index to a scan only
where one fits (a few hundred rows are read sequentially whatever the indexes)."""

CASES: list[tuple[dict[str, Any], str, bool, str, int]] = [
    # (filters, sort, descending, an index the page query must use, the total); where the
    # filter makes the sort key constant or selects little, a planner may rightly walk the
    # primary key or the sort's index and probe the filter's, hence "|" between choices.
    ({}, "updated_at", True, "ix_experiments_updated_at", ROWS),
    ({}, "updated_at", False, "ix_experiments_updated_at", ROWS),
    ({}, "name", False, "ix_experiments_name", ROWS),
    ({}, "owner", True, "ix_experiments_owner", ROWS),
    ({}, "created_at", True, "ix_experiments_created_at", ROWS),
    ({}, "rice_score", True, "ix_experiments_rice_score", ROWS),
    ({"status": "running"}, "status", True, "ix_experiments_status|pk_experiments",
     ROWS // 4),
    ({"owner": "OWNER6", "status": "completed"}, "updated_at", True,
     "ix_experiments_owner_lower", ROWS // 200),
    ({"tag": "tag_3"}, "updated_at", True, "ix_experiment_tags_tag|pk_experiment_tags",
     ROWS // 40),
    # PostgreSQL's pg_trgm indexes (0009), SQLite's FTS5 trigram table (0018)
    ({"search": "needle"}, "updated_at", True, "_trgm|experiments_search VIRTUAL TABLE",
     ROWS // 500),
    ({"include_archived": False}, "updated_at", True, "ix_experiments_updated_at", ROWS),
]


def _fill(session: Session) -> None:
    """ROWS experiments in one statement per table (inside the test's transaction): 200
    owners, four statuses, one tag each of 40, a rare word in 1 of 500 hypotheses."""
    if session.get_bind().dialect.name == "postgresql":
        series = f"generate_series(1, {ROWS}) AS g(i)"
        now = "now() - g.i * interval '1 minute'"
        tags = "CAST('[\"tag_' || (g.i % 40) || '\"]' AS json)"
    else:
        series = (f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                  f"WHERE i < {ROWS}) SELECT i FROM s) AS g")
        now = "datetime('now', '-' || g.i || ' minutes')"
        tags = "'[\"tag_' || (g.i % 40) || '\"]'"
    concat = "'Idea ' || g.i || CASE WHEN g.i % 500 = 0 THEN ' needle' ELSE '' END"
    session.execute(text(
        "INSERT INTO experiments (name, owner, hypothesis, target_segment, status, alpha, "
        "power, analysis_mode, correction, alternative, learnings, tags, rice_score, "
        "created_at, updated_at, version) "
        f"SELECT 'Experiment ' || g.i, 'Owner' || (g.i % 200), {concat}, '', "
        "CASE g.i % 4 WHEN 0 THEN 'proposed' WHEN 1 THEN 'running' WHEN 2 THEN 'completed' "
        "ELSE 'abandoned' END, 0.05, 0.8, 'fixed', 'holm', 'two-sided', '', "
        f"{tags}, g.i % 97, {now}, {now}, 1 FROM {series}"))
    session.execute(text(
        "INSERT INTO experiment_tags (experiment_id, tag) "
        "SELECT id, 'tag_' || (id % 40) FROM experiments"))
    session.execute(text("ANALYZE"))


def _sent(session: Session, **listing: Any) -> tuple[list[tuple[str, Any]], Any]:
    """The statements repo.list_experiments sends (with their parameters), and its answer."""
    sent: list[tuple[str, Any]] = []
    connection = session.connection()

    def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        answer = repo.list_experiments(session, **listing)
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    return sent, answer


@pytest.fixture
def filled(db_engine: Engine) -> Any:
    connection = db_engine.connect()
    outer = connection.begin()
    session = Session(bind=connection)
    try:
        _fill(session)
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.mark.parametrize(("filters", "sort", "descending", "index", "total"), CASES)
def test_listing_page_and_count_read_an_index(
    filled: Session, filters: dict[str, Any], sort: str, descending: bool, index: str,
    total: int,
) -> None:
    postgres = filled.get_bind().dialect.name == "postgresql"
    sent, (found, rows) = _sent(filled, sort=sort, descending=descending, **filters)
    assert found == total and len(rows) == min(50, total)
    # the count, the page (and on SQLite, once per engine, whether the word index exists)
    sent = [(statement, p) for statement, p in sent if "sqlite_master" not in statement]
    assert len(sent) == 2
    cursor = filled.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    plans = []
    for statement, parameters in sent:
        cursor.execute(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement,
                       parameters)
        plans.append("\n".join(str(row[0] if postgres else row[-1])
                                for row in cursor.fetchall()))
    count_plan, page_plan = plans
    # A count of a quarter of the table or more may rightly read it all (PostgreSQL: in a
    # transaction's fresh rows no index-only scan pays); a selective one must not.
    for plan in [page_plan] + ([count_plan] if total <= ROWS // 20 else []):
        if postgres:
            assert "Seq Scan" not in plan, plan
        else:  # a bare "SCAN experiments" reads the table; "... USING INDEX" walks an index
            assert "SCAN experiments" not in plan.replace("SCAN experiments USING", "").replace(
                "SCAN experiments_search VIRTUAL TABLE", ""), plan
    assert any(name in page_plan for name in index.split("|")), page_plan
