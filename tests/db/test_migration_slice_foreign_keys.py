"""Migration 0017_slice_foreign_keys on SQLite and PostgreSQL: the slice tables keep their rows;
a slice row's variant must then belong to its experiment (one composite key instead of two
single ones); deleting an experiment or a variant still deletes its slices; the downgrade
brings the two single keys back and an upgrade goes again."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from db.migrate import downgrade, upgrade
from db.models import Experiment, Metric, Variant
from db.session import make_engine, session_factory

BEFORE = "0016_ratio_cuped"
STATS = ("INSERT INTO metric_slice_daily_stats (experiment_id, variant_id, metric_id, day, "
         "dimension, value, n, sum, sum_squares, source) VALUES "
         "(:e, :v, :m, '2026-01-01', 'country', :value, 10, 5.0, 5.0, 'test')")
UNITS = ("INSERT INTO assignment_slice_daily_counts (experiment_id, variant_id, day, dimension, "
         "value, units) VALUES (:e, :v, '2026-01-01', 'country', :value, 10)")


def _setup(engine: Engine) -> dict[str, int]:
    """Two experiments with their variants and one metric, through the ORM (the columns are the
    same at 0016 and at the head); returns their ids by name."""
    with session_factory(engine)() as session:
        metric = Metric(name="conv", kind="binomial", unit="", higher_is_better=True,
                        description="")
        one = Experiment(name="One", owner="o", variants=[
            Variant(name="control", weight=0.5, position=0),
            Variant(name="treatment", weight=0.5, position=1)])
        two = Experiment(name="Two", owner="o", variants=[
            Variant(name="control", weight=0.5, position=0),
            Variant(name="treatment", weight=0.5, position=1)])
        session.add_all([metric, one, two])
        session.commit()
        return {"metric": metric.id, "one": one.id, "one_control": one.variants[0].id,
                "one_treatment": one.variants[1].id, "two": two.id,
                "two_control": two.variants[0].id}


def _count(engine: Engine, table: str, experiment_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE experiment_id = :e"),
                                {"e": experiment_id}).scalar_one())


def test_migration_0017_one_key_per_slice_row_and_goes_again(own_database: str) -> None:
    upgrade(own_database, BEFORE)
    engine = make_engine(own_database)
    try:
        ids = _setup(engine)
        with engine.begin() as conn:
            for variant, value in (("one_control", "DE"), ("one_treatment", "DE"),
                                   ("two_control", "FR")):
                e = ids["one"] if variant.startswith("one") else ids["two"]
                conn.execute(text(STATS), {"e": e, "v": ids[variant], "m": ids["metric"],
                                           "value": value})
                conn.execute(text(UNITS), {"e": e, "v": ids[variant], "value": value})
    finally:
        engine.dispose()

    upgrade(own_database)
    engine = make_engine(own_database)
    try:
        for table in ("metric_slice_daily_stats", "assignment_slice_daily_counts"):
            assert _count(engine, table, ids["one"]) == 2
            assert _count(engine, table, ids["two"]) == 1
        # Another experiment's variant: refused by the one key (the two single keys let it in).
        for statement, params in (
                (STATS, {"e": ids["one"], "v": ids["two_control"], "m": ids["metric"]}),
                (UNITS, {"e": ids["one"], "v": ids["two_control"]}),
                (STATS, {"e": ids["one"], "v": 10_000, "m": ids["metric"]}),
                (STATS, {"e": ids["one"], "v": ids["one_control"], "m": 10_000})):
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(text(statement), {**params, "value": "US"})
        # A variant removed from its experiment takes its slices with it, then the experiment.
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM variants WHERE id = :v"), {"v": ids["one_treatment"]})
        for table in ("metric_slice_daily_stats", "assignment_slice_daily_counts"):
            assert _count(engine, table, ids["one"]) == 1
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM experiments WHERE id = :e"), {"e": ids["one"]})
        for table in ("metric_slice_daily_stats", "assignment_slice_daily_counts"):
            assert _count(engine, table, ids["one"]) == 0
            assert _count(engine, table, ids["two"]) == 1
    finally:
        engine.dispose()

    downgrade(own_database, BEFORE)
    engine = make_engine(own_database)
    try:
        assert _count(engine, "metric_slice_daily_stats", ids["two"]) == 1
        with engine.begin() as conn:  # the single keys again: each id exists, unrelated
            conn.execute(text(STATS), {"e": ids["two"], "v": ids["two_control"],
                                       "m": ids["metric"], "value": "US"})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(STATS), {"e": ids["two"], "v": 10_000, "m": ids["metric"],
                                       "value": "NL"})
    finally:
        engine.dispose()
    upgrade(own_database)
    engine = make_engine(own_database)
    try:
        assert _count(engine, "metric_slice_daily_stats", ids["two"]) == 2
    finally:
        engine.dispose()
