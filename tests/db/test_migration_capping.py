"""Migration 0013_capping on SQLite and PostgreSQL: an experiment stored before it reads with no
capping; the down-migration removes the column and the table, and the up-migration adds them
again."""

from __future__ import annotations

from sqlalchemy import inspect, text

from core.registry import get_experiment
from db.migrate import downgrade, upgrade
from db.session import make_engine, session_factory


def test_migration_0012_old_experiments_are_uncapped_and_it_goes_again(
    own_database: str,
) -> None:
    upgrade(own_database, "0012_multi_covariate")
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO experiments (name, owner, hypothesis, target_segment, status, alpha, "
            "power, analysis_mode, correction, learnings, tags, version) VALUES ('Old', 'o', "
            "'', '', 'proposed', 0.05, 0.8, 'fixed', 'holm', '', "
            f"{'CAST(:tags AS json)' if 'postgres' in own_database else ':tags'}, 1)"),
            {"tags": "[]"})
    engine.dispose()
    upgrade(own_database)
    engine = make_engine(own_database)
    try:
        with session_factory(engine)() as session:
            exp_id = session.execute(text("SELECT id FROM experiments")).scalar_one()
            assert get_experiment(session, experiment_id=exp_id).capping == {}
        assert "applied_caps" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    downgrade(own_database, "0012_multi_covariate")
    engine = make_engine(own_database)
    try:
        inspector = inspect(engine)
        assert "applied_caps" not in inspector.get_table_names()
        assert "capping" not in {c["name"] for c in inspector.get_columns("experiments")}
    finally:
        engine.dispose()
    upgrade(own_database)
