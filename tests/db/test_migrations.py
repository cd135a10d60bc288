"""Alembic is the only way the schema changes: up from empty, down to base, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from db.base import Base
from db.migrate import downgrade, upgrade
from db.session import make_engine


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
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
    # Expression indexes cannot be reflected on every dialect; ignore only those.
    diff = [d for d in diff if not (isinstance(d, tuple) and "name_lower" in str(d))]
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
