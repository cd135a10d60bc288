"""Alembic is the only way the schema changes: up from empty, down to base, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from db.base import Base
from db.migrate import downgrade, upgrade
from db.session import make_engine

WORD_SEARCH = "experiments_search"
"""SQLite's FTS5 table of the registry's word search (0018) and its shadow tables: made by the
migration, not a model."""


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {name for name in inspect(engine).get_table_names()
                if name != "alembic_version" and not name.startswith(WORD_SEARCH)}
    finally:
        engine.dispose()


def test_migrations_upgrade_head_creates_every_model_table(own_database: str) -> None:
    upgrade(own_database)
    assert _tables(own_database) == set(Base.metadata.tables)


def test_migrations_downgrade_base_removes_everything_and_upgrades_again(own_database: str) -> None:
    upgrade(own_database)
    downgrade(own_database, "base")
    assert _tables(own_database) == set()
    upgrade(own_database)
    assert _tables(own_database) == set(Base.metadata.tables)


def test_migrations_match_the_models(own_database: str) -> None:
    """Autogenerate finds nothing to do: models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(own_database)
    engine = make_engine(own_database)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    # Expression indexes cannot be reflected on every dialect, and the word search's trigram
    # indexes are PostgreSQL's only (migration 0009): ignore only those.
    ignored = ("uq_experiments_name_lower", "ix_experiments_owner_lower", "_trgm", WORD_SEARCH)
    diff = [d for d in diff if not (isinstance(d, tuple) and any(n in str(d) for n in ignored))]
    assert diff == []


def test_migrations_0005_gives_stored_experiments_the_default_plan_tests(own_database: str) -> None:
    """An experiment stored before 0005 reads two-sided with no prior; the new CHECKs hold."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    upgrade(own_database, "0004")
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO experiments (name, owner, hypothesis, target_segment, status, alpha, "
            "power, analysis_mode, correction, learnings, tags, version) VALUES ('Old', 'o', "
            "'', '', 'proposed', 0.05, 0.8, 'fixed', 'holm', '', '[]', 1)"))
    engine.dispose()
    upgrade(own_database)
    engine = make_engine(own_database)
    try:
        with engine.begin() as conn:
            row = conn.execute(text(
                "SELECT alternative, prior_lift_mean, prior_lift_sd FROM experiments")).one()
        assert tuple(row) == ("two-sided", None, None)
        for bad in ("alternative = 'up'", "prior_lift_mean = 0.1", "prior_lift_sd = 0",
                    "prior_lift_mean = 0, prior_lift_sd = -1"):
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(text(f"UPDATE experiments SET {bad}"))
    finally:
        engine.dispose()


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def test_migrations_0006_fills_the_state_tables_from_the_audit_log(own_database: str) -> None:
    """A database at 0005 with rows and audit entries as the old code wrote them gets its
    promotion, ready-for-decision mark and ingest ledger filled by the upgrade."""
    from sqlalchemy import JSON, Boolean, DateTime, Integer, String, column, insert, table, text

    upgrade(own_database, "0005")
    engine = make_engine(own_database)
    audit = table("audit_log", column("at", DateTime(timezone=True)), column("actor", String),
                  column("entity_type", String), column("entity_id", Integer),
                  column("action", String), column("changes", JSON),
                  column("is_deviation", Boolean))
    t0 = datetime(2026, 3, 1, 9, 0)
    rice_then = {"reach": 20000.0, "impact": 2.0, "confidence": 80.0, "effort": 2.0,
                 "rice_score": 16000.0}
    drop = "incoming/experiment-2/2026-03-03.csv"

    def ingest(exp: int, at: int, source: str, days: str, written: int,
               sha: str | None = None) -> dict:
        changes = {"source": [None, source], "days": [None, days],
                   "metrics": [None, ["conv"]], "rows_written": [None, written]}
        if sha:
            changes["sha256"] = [None, sha]
        return {"at": t0 + timedelta(hours=at), "actor": "airflow" if sha else "erin",
                "entity_type": "experiment", "entity_id": exp, "action": "ingest",
                "changes": changes}

    with engine.begin() as conn:
        for name in ("Idea", "Ready", "Orphan report", "Untouched"):
            conn.execute(text(
                "INSERT INTO experiments (name, owner, hypothesis, target_segment, status, "
                "alpha, power, analysis_mode, correction, learnings, tags, version) VALUES "
                "(:name, 'o', '', '', 'proposed', 0.05, 0.8, 'fixed', 'holm', '', '[]', 1)"),
                {"name": name})
        conn.execute(text(
            "INSERT INTO report_artifacts (id, experiment_id, key, size_bytes, sha256, "
            "created_at, created_by) VALUES "
            "(7, 2, 'reports/experiment-2/a.pdf', 10, 'aa', :at, 'airflow'), "
            "(8, 3, 'reports/experiment-3/b.pdf', 10, 'bb', :at, 'airflow')"),
            {"at": t0 + timedelta(days=2)})
        conn.execute(insert(audit).values(is_deviation=False), [
            {"at": t0, "actor": "erin", "entity_type": "experiment", "entity_id": 1,
             "action": "promote", "changes": {"stage": ["backlog idea", "proposed experiment"],
                                              "rice_at_promotion": [None, rice_then]}},
            ingest(2, 1, f"user_file:{drop}", "2026-03-03..2026-03-03", 6, "a" * 64),
            ingest(2, 2, f"aggregate_file:{drop}", "2026-03-03..2026-03-03", 4, "b" * 64),
            ingest(2, 3, "sql:sql source of 'Ready', 2026-03-03..2026-03-04",
                   "2026-03-03..2026-03-04", 12),
            ingest(2, 4, "user_file:export.csv", "None..None", 0),
            ingest(999, 5, "user_file:gone.csv", "2026-03-03..2026-03-03", 1),
            {"at": t0 + timedelta(days=3), "actor": "airflow", "entity_type": "experiment",
             "entity_id": 2, "action": "ready_for_decision",
             "changes": {"report": [None, "reports/experiment-2/a.pdf"],
                         "as_of": [None, "2026-03-04"], "flags": [None, []]}},
            {"at": t0, "actor": "erin", "entity_type": "experiment", "entity_id": 4,
             "action": "archive", "changes": {"archived_at": [None, "2026-03-01"]}},
        ])
    engine.dispose()

    upgrade(own_database)
    engine = make_engine(own_database)
    try:
        with engine.connect() as conn:
            rows = {r.name: r for r in conn.execute(text(
                "SELECT name, promoted_at, promoted_rice, ready_for_decision_at, "
                "ready_report_id FROM experiments"))}
            loads = conn.execute(text(
                "SELECT experiment_id, key, kind, sha256, first_day, last_day, metrics, "
                "rows_read, rows_written, loaded_at, loaded_by FROM ingest_loads "
                "ORDER BY experiment_id, key")).all()
        with engine.begin() as conn:  # the new foreign key holds (SQLite's edited schema too)
            conn.execute(text("DELETE FROM report_artifacts WHERE id = 7"))
            assert conn.execute(text(
                "SELECT ready_report_id FROM experiments WHERE name = 'Ready'")).scalar() is None
    finally:
        engine.dispose()
    downgrade(own_database, "0005")  # and goes again with the rows in place
    assert "ingest_loads" not in _tables(own_database)

    def as_json(value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    def as_dt(value: object) -> datetime:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(parsed, datetime)
        return _naive_utc(parsed)

    assert as_dt(rows["Idea"].promoted_at) == t0
    assert as_json(rows["Idea"].promoted_rice) == rice_then
    assert as_dt(rows["Ready"].ready_for_decision_at) == t0 + timedelta(days=3)
    assert rows["Ready"].ready_report_id == 7
    # a scheduler's report without its entry (the old code's fallback) marks the experiment too
    assert as_dt(rows["Orphan report"].ready_for_decision_at) == t0 + timedelta(days=2)
    assert rows["Orphan report"].ready_report_id == 8
    for name in ("Ready", "Orphan report", "Untouched"):
        assert rows[name].promoted_at is None and rows[name].promoted_rice is None
    assert rows["Idea"].ready_for_decision_at is None
    assert rows["Untouched"].ready_for_decision_at is None

    got = [(r.experiment_id, r.key, r.kind, r.sha256, str(r.first_day), str(r.last_day),
            as_json(r.metrics), r.rows_read, r.rows_written, as_dt(r.loaded_at), r.loaded_by)
           for r in loads]
    assert got == [
        (2, "export.csv", "user_file", None, "None", "None", ["conv"], None, 0,
         t0 + timedelta(hours=4), "erin"),
        (2, drop, "aggregate_file", "b" * 64, "2026-03-03", "2026-03-03", ["conv"], None, 4,
         t0 + timedelta(hours=2), "airflow"),  # the latest load of the drop
        (2, "sql source of 'Ready', 2026-03-03..2026-03-04", "sql", None, "2026-03-03",
         "2026-03-04", ["conv"], None, 12, t0 + timedelta(hours=3), "erin"),
    ]


def test_migrations_0007_warehouse_definitions_hold_their_rules_and_go_again(
    own_database: str,
) -> None:
    """Stored metrics and experiments keep working at 0007; the new CHECKs and foreign keys
    hold on both databases (SQLite's edited definitions too); a downgrade drops the warehouse
    tables, the ratio metrics only a fact source can define and the 'warehouse' loads, and
    keeps the rest."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    upgrade(own_database, "0006_state_tables")
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO metrics (name, kind, unit, higher_is_better, description, numerator, "
            "denominator) VALUES ('conv', 'binomial', '', true, '', NULL, NULL), "
            "('rps', 'ratio', '', true, '', 'revenue', 'sessions')"))
        conn.execute(text(
            "INSERT INTO experiments (name, owner, hypothesis, target_segment, status, alpha, "
            "power, analysis_mode, correction, learnings, tags, version) VALUES ('Old', 'o', "
            "'', '', 'proposed', 0.05, 0.8, 'fixed', 'holm', '', '[]', 1)"))
    engine.dispose()

    upgrade(own_database)
    engine = make_engine(own_database)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO warehouse_connections (id, name, url, allow_app_database, "
                "created_by, updated_by) VALUES (1, 'wh', 'duckdb:///w.duckdb', false, 'a', "
                "'a')"))
            conn.execute(text(
                "INSERT INTO fact_sources (id, name, connection_id, sql, columns, created_by, "
                "updated_by) VALUES (1, 'orders', 1, 'SELECT 1', '[\"revenue\"]', 'a', 'a')"))
            conn.execute(text(
                "INSERT INTO assignment_sources (id, name, connection_id, sql, dimensions, "
                "created_by, updated_by) VALUES (1, 'exposures', 1, 'SELECT 1', '[]', 'a', "
                "'a')"))
        good = {
            "spend": "'mean', 1, 'sum', 'revenue', NULL, 7, 14",
            "buyers": "'binomial', 1, 'any', NULL, NULL, NULL, 7",
            "aov": "'ratio', 1, 'mean', 'revenue', NULL, NULL, NULL",
            "rpi": "'ratio', 1, 'ratio', 'revenue', 'items', 3, NULL",
            "aov_cuped": "'ratio', 1, 'mean', 'revenue', NULL, NULL, 14",  # since 0016
        }
        bad = {
            "kind_mismatch": "'binomial', 1, 'sum', 'revenue', NULL, NULL, NULL",
            "no_aggregation": "'mean', 1, NULL, 'revenue', NULL, NULL, NULL",
            "aggregation_without_source": "'mean', NULL, 'sum', 'revenue', NULL, NULL, NULL",
            "sum_without_column": "'mean', 1, 'sum', NULL, NULL, NULL, NULL",
            "ratio_without_denominator": "'ratio', 1, 'ratio', 'revenue', NULL, NULL, NULL",
            "denominator_not_ratio": "'ratio', 1, 'mean', 'revenue', 'items', NULL, NULL",
            "zero_window": "'mean', 1, 'count', NULL, NULL, 0, NULL",
            "zero_cuped": "'ratio', 1, 'mean', 'revenue', NULL, NULL, 0",
            "window_on_a_file_metric": "'mean', NULL, NULL, NULL, NULL, 7, NULL",
            "unknown_fact_source": "'mean', 99, 'sum', 'revenue', NULL, NULL, NULL",
            "unknown_aggregation": "'mean', 1, 'median', 'revenue', NULL, NULL, NULL",
        }
        insert = ("INSERT INTO metrics (name, kind, fact_source_id, aggregation, value_column, "
                   "denominator_column, window_days, cuped_days, unit, higher_is_better, "
                   "description) VALUES ('{name}', {values}, '', true, '')")
        with engine.begin() as conn:
            for name, values in good.items():
                conn.execute(text(insert.format(name=name, values=values)))
        for name, values in bad.items():
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(text(insert.format(name=name, values=values)))
        with pytest.raises(IntegrityError), engine.begin() as conn:  # a file ratio still
            conn.execute(text(  # names both of its columns
                "INSERT INTO metrics (name, kind, unit, higher_is_better, description, "
                "numerator) VALUES ('half', 'ratio', '', true, '', 'revenue')"))
        for bad_update in ("assignment_source_id = 1",  # without its key
                           "experiment_key = 'k'",
                           "assignment_source_id = 99, experiment_key = 'k'"):
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(text(f"UPDATE experiments SET {bad_update}"))
        with engine.begin() as conn:
            conn.execute(text(
                "UPDATE experiments SET assignment_source_id = 1, experiment_key = 'old-key'"))
            exp_id = conn.execute(text("SELECT id FROM experiments")).scalar_one()
            aov = conn.execute(text("SELECT id FROM metrics WHERE name = 'aov'")).scalar_one()
            conn.execute(text("UPDATE experiments SET primary_metric_id = :m"), {"m": aov})
            conn.execute(text(
                "INSERT INTO ingest_loads (experiment_id, key, kind, metrics, rows_written, "
                "loaded_by) VALUES (:e, 'warehouse refresh', 'warehouse', '[]', 3, 'a'), "
                "(:e, 'f.csv', 'user_file', '[]', 2, 'a')"), {"e": exp_id})
            conn.execute(text(
                "INSERT INTO warehouse_runs (experiment_id, source, role, sql, rows_returned, "
                "seconds, ran_by) VALUES (:e, 'orders', 'fact', 'SELECT 1', 1, 0.1, 'a')"),
                {"e": exp_id})
        with pytest.raises(IntegrityError), engine.begin() as conn:  # a source in use stays
            conn.execute(text("DELETE FROM assignment_sources"))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("DELETE FROM fact_sources"))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO ingest_loads (experiment_id, key, kind, metrics, rows_written, "
                "loaded_by) VALUES (:e, 'x', 'spreadsheet', '[]', 0, 'a')"), {"e": exp_id})
    finally:
        engine.dispose()

    downgrade(own_database, "0006_state_tables")
    assert not {"warehouse_connections", "assignment_sources", "fact_sources",
                "warehouse_runs"} & _tables(own_database)
    engine = make_engine(own_database)
    try:
        with engine.connect() as conn:
            metrics = dict(conn.execute(text("SELECT name, kind FROM metrics")).all())
            kinds = sorted(conn.execute(text("SELECT kind FROM ingest_loads")).scalars())
            primary = conn.execute(text("SELECT primary_metric_id FROM experiments")).scalar()
        assert metrics == {"conv": "binomial", "rps": "ratio", "spend": "mean",
                           "buyers": "binomial"}
        assert kinds == ["user_file"] and primary is None
        with pytest.raises(IntegrityError), engine.begin() as conn:  # the old rules are back
            conn.execute(text(
                "INSERT INTO metrics (name, kind, unit, higher_is_better, description) "
                "VALUES ('r2', 'ratio', '', true, '')"))
    finally:
        engine.dispose()
    upgrade(own_database)
    assert {"warehouse_connections", "warehouse_runs"} <= _tables(own_database)


def test_migrations_0009_carries_the_tags_over_and_goes_again(own_database: str) -> None:
    """The experiment_tags rows come from each experiment's tag list (duplicates once, a
    non-list or empty one gives none); a downgrade drops the table and the indexes, and an
    upgrade makes them again."""
    from sqlalchemy import text

    upgrade(own_database, "0008_slice_keys")
    engine = make_engine(own_database)
    stored = {"A": '["ui", "zoë", "ui"]', "B": "[]", "C": '["pricing"]', "D": "null"}
    with engine.begin() as conn:
        for name, tags in stored.items():
            conn.execute(text(
                "INSERT INTO experiments (name, owner, hypothesis, target_segment, status, "
                "alpha, power, analysis_mode, correction, learnings, tags, version) VALUES "
                f"(:name, 'o', '', '', 'proposed', 0.05, 0.8, 'fixed', 'holm', '', "
                f"{'CAST(:tags AS json)' if 'postgres' in own_database else ':tags'}, 1)"),
                {"name": name, "tags": tags})
    engine.dispose()

    def tag_rows() -> list[tuple[str, str]]:
        engine = make_engine(own_database)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(
                    "SELECT e.name, t.tag FROM experiment_tags t JOIN experiments e "
                    "ON e.id = t.experiment_id ORDER BY e.name, t.tag"))]
        finally:
            engine.dispose()

    upgrade(own_database)
    assert tag_rows() == [("A", "ui"), ("A", "zoë"), ("C", "pricing")]
    downgrade(own_database, "0008_slice_keys")
    assert "experiment_tags" not in _tables(own_database)
    upgrade(own_database)
    assert tag_rows() == [("A", "ui"), ("A", "zoë"), ("C", "pricing")]


def test_migrations_0009_without_the_right_to_create_pg_trgm_completes_without_its_indexes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A role that may create tables but not extensions (no CREATE on the database) migrates
    to the head: the trigram indexes are left out with a warning naming the remedy, and the
    word search still answers (by a scan)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.conftest import ADMIN_URL, create_postgres_database, drop_postgres_database

    url = create_postgres_database("experimentos_trgm")
    if url is None:
        pytest.skip("no PostgreSQL server answers")
    role = f"experimentos_norights_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    owner = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        with owner.connect() as conn:
            conn.execute(text(f'GRANT CREATE ON SCHEMA public TO "{role}"'))
        as_role = make_url(url).set(username=role, password=None).render_as_string(
            hide_password=False)
        with caplog.at_level("WARNING", logger="alembic.runtime.migration"):
            upgrade(as_role)
        assert "pg_trgm could not be created" in caplog.text
        assert "docs/operations.md" in caplog.text
        with owner.connect() as conn:
            assert conn.execute(text(
                "SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%trgm'")).scalar() == 0
            assert conn.execute(text(
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_experiments_name'"
            )).scalar() == 1
            conn.execute(text(
                "INSERT INTO experiments (name, owner, hypothesis, target_segment, status, "
                "alpha, power, analysis_mode, correction, learnings, tags, version) VALUES "
                "('Old', 'o', 'A needle here', '', 'proposed', 0.05, 0.8, 'fixed', 'holm', "
                "'', '[]', 1)"))
        from sqlalchemy.orm import Session

        from db import repositories as repo

        with Session(owner) as session:
            total, rows = repo.list_experiments(session, search="NEEDLE")
        assert total == 1 and len(rows) == 1
    finally:
        owner.dispose()
        drop_postgres_database(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_migrations_0011_quantile_metrics_hold_their_rules_and_go_again(
        own_database: str) -> None:
    """A metric stored at 0010 keeps working; at 0011 a quantile metric needs its level p in
    (0, 1) and only it has one; a downgrade drops the quantile metrics, the column and the
    table, and an upgrade makes them again."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    upgrade(own_database, "0010_plan_inputs")
    engine = make_engine(own_database)
    insert = ("INSERT INTO metrics (name, kind, unit, higher_is_better, description{extra}) "
              "VALUES (:name, :kind, '', false, ''{values})")
    with engine.begin() as conn:
        conn.execute(text(insert.format(extra="", values="")), {"name": "load", "kind": "mean"})
    engine.dispose()
    upgrade(own_database)
    engine = make_engine(own_database)
    with_p = insert.format(extra=", quantile_p", values=", :p")
    with engine.begin() as conn:
        conn.execute(text(with_p), {"name": "p90", "kind": "quantile", "p": 0.9})
    for name, kind, p in (("p1", "quantile", 1.0), ("p0", "quantile", None),
                          ("m", "mean", 0.5), ("p_neg", "quantile", -0.1)):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(with_p), {"name": name, "kind": kind, "p": p})
    with engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT name, kind, quantile_p FROM metrics"))) == [
            ("load", "mean", None), ("p90", "quantile", 0.9)]
    engine.dispose()
    downgrade(own_database, "0010_plan_inputs")
    assert "metric_quantile_stats" not in _tables(own_database)
    engine = make_engine(own_database)
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT name FROM metrics"))] == ["load"]
    engine.dispose()
    upgrade(own_database)
    assert "metric_quantile_stats" in _tables(own_database)


def test_migrations_0012_adds_the_covariate_vector_column_and_goes_again(
        own_database: str) -> None:
    """metric_daily_stats.covariate_sums and experiments.post_stratify_on: absent at 0011,
    nullable columns at the head, gone after a downgrade to 0010 and back after an upgrade."""

    def columns() -> dict[str, bool]:
        engine = make_engine(own_database)
        try:
            found = {}
            for table, column in (("metric_daily_stats", "covariate_sums"),
                                  ("experiments", "post_stratify_on")):
                for c in inspect(engine).get_columns(table):
                    if c["name"] == column:
                        found[column] = c["nullable"]
            return found
        finally:
            engine.dispose()

    upgrade(own_database, "0011_quantile_metrics")
    assert columns() == {}
    upgrade(own_database)
    assert columns() == {"covariate_sums": True, "post_stratify_on": True}
    downgrade(own_database, "0011_quantile_metrics")
    assert columns() == {}
    upgrade(own_database)
    assert columns() == {"covariate_sums": True, "post_stratify_on": True}
