"""db.migrate's schema check: at the latest migration, or what is wrong and the command to run;
on both databases, reading only."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from db.migrate import MIGRATE_COMMAND, head_revisions, schema_problem, upgrade
from db.session import make_engine


def _problem(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return schema_problem(engine)
    finally:
        engine.dispose()


def test_migrate_schema_problem_none_at_head(own_database: str) -> None:
    upgrade(own_database)
    assert _problem(own_database) is None


def test_migrate_schema_problem_names_the_command_on_an_empty_database(
    own_database: str,
) -> None:
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE unrelated (id INTEGER)"))  # exists, but no schema
    engine.dispose()
    problem = _problem(own_database)
    assert problem is not None and "no schema yet" in problem and MIGRATE_COMMAND in problem
    engine = make_engine(own_database)
    assert set(inspect(engine).get_table_names()) == {"unrelated"}  # nothing created
    engine.dispose()


def test_migrate_schema_problem_names_the_command_on_an_older_schema(own_database: str) -> None:
    (head,) = head_revisions()
    upgrade(own_database, "0004")
    assert head != "0004"
    problem = _problem(own_database)
    assert problem is not None and MIGRATE_COMMAND in problem
    assert "revision 0004, older than" in problem and head in problem
    upgrade(own_database)
    assert _problem(own_database) is None


def test_migrate_schema_problem_on_a_revision_this_code_does_not_know(own_database: str) -> None:
    upgrade(own_database)
    engine = make_engine(own_database)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    problem = _problem(own_database)
    assert problem is not None and "9999_future" in problem and "does not know" in problem


def test_migrate_schema_problem_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "experimentos.db"
    problem = _problem(f"sqlite:///{path}")
    assert problem is not None and str(path) in problem and MIGRATE_COMMAND in problem
    assert not path.exists()
