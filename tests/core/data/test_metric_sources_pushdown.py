"""Beyond one machine: the documented warehouse query, run inside PostgreSQL, stores the same
sufficient statistics (whole arms, dimension values, ratio sums) as loading the same unit rows
as a user-level file, and carries the same uniqueness proof: a duplicated unit is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sqlalchemy import Column, Date, Float, Integer, MetaData, String, Table, select
from sqlalchemy.orm import Session

from core.config import PROJECT_ROOT
from core.data.ingestion import ingest_file
from core.data.metric_sources import ingest_sql, set_metric_source
from core.errors import InvalidInput
from db import metric_repository as mrepo
from db.models import Metric, Variant
from db.session import make_engine
from tests.conftest import EDITOR, create_postgres_database, drop_postgres_database
from tests.core.data.test_ingestion import write_parquet
from tests.core.data.test_ingestion_ratio import ratio_experiment, ratio_units

_meta = MetaData()
UNITS = Table(
    "unit_metrics", _meta,
    Column("id", Integer, primary_key=True),
    Column("experiment", String(200)), Column("unit_id", String(40)),
    Column("variant", String(40)), Column("day", Date), Column("country", String(8)),
    Column("conv", Integer), Column("revenue", Float), Column("sessions", Integer),
)
COLS = ratio_units(300, seed=11)
COLS["country"] = np.random.default_rng(11).choice(
    np.array(["DE", "FR", "US", None], dtype=object), COLS["unit_id"].size)

# The same units, plus unit 0 again in the other variant and unit 5 again in its own variant.
DUPLICATED = {k: np.concatenate([v, v[[0, 5]]]) for k, v in COLS.items()}
DUPLICATED["variant"][-2] = "treatment" if COLS["variant"][0] == "control" else "control"


def documented_query() -> str:
    """The SQL block of docs/data-and-sources.md's "Beyond one machine" section."""
    text = (PROJECT_ROOT / "docs" / "data-and-sources.md").read_text()
    section = text[text.index("### Beyond one machine"):]
    match = re.search(r"```sql\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def _rows(experiment: str, cols: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"experiment": experiment, "unit_id": u, "variant": v, "day": d, "country": c,
         "conv": int(k), "revenue": float(r), "sessions": int(s)}
        for u, v, d, c, k, r, s in zip(cols["unit_id"], cols["variant"], cols["date"],
                                       cols["country"], cols["conv"], cols["revenue"],
                                       cols["sessions"], strict=True)
    ]


@pytest.fixture(scope="module")
def warehouse() -> Iterator[str]:
    url = create_postgres_database("experimentos_warehouse")
    if url is None:
        pytest.skip("no PostgreSQL server for the warehouse")
    engine = make_engine(url)
    with engine.begin() as conn:
        _meta.create_all(conn)
        conn.execute(UNITS.insert(), _rows("Pushed down", COLS))
        conn.execute(UNITS.insert(), _rows("Duplicated", DUPLICATED))
    engine.dispose()
    yield url
    drop_postgres_database(url)


def _by_name(session: Session, exp: int) -> tuple[dict, dict, dict]:
    variants = {v.id: v.name for v in session.scalars(select(Variant))}
    metrics = {m.id: m.name for m in session.scalars(select(Metric))}
    whole = {(variants[r.variant_id], metrics[r.metric_id], r.day): r
             for r in mrepo.daily_stats(session, experiment_id=exp)}
    parts = {(variants[r.variant_id], metrics[r.metric_id], r.day, r.dimension, r.value): r
             for r in mrepo.daily_slice_stats(session, experiment_id=exp)}
    units = {(variants[a.variant_id], a.day, a.dimension, a.value): a.units
             for a in mrepo.slice_assignments(session, experiment_id=exp)}
    return whole, parts, units


def _same(a: Any, b: Any, fields: tuple[str, ...]) -> None:
    assert a.n == b.n
    got = [getattr(a, f) for f in fields]
    want = [getattr(b, f) for f in fields]
    assert [g is None for g in got] == [w is None for w in want]
    assert_allclose([g for g in got if g is not None], [w for w in want if w is not None],
                    rtol=1e-12)


def test_pushdown_query_stores_the_same_statistics_as_the_user_level_file(
    session: Session, warehouse: str, tmp_path: Any
) -> None:
    pushed = ratio_experiment(session, name="Pushed down")
    loaded = ratio_experiment(session, name="Loaded from a file")
    set_metric_source(session, experiment_id=pushed, url=warehouse, query=documented_query(),
                      actor=EDITOR)
    report = ingest_sql(session, experiment_id=pushed, actor=EDITOR)
    assert report.dimensions == ("country",)
    ingest_file(session, path=write_parquet(tmp_path / "units.parquet", COLS),
                experiment_id=loaded, actor=EDITOR)
    sql_whole, sql_parts, sql_units = _by_name(session, pushed)
    file_whole, file_parts, file_units = _by_name(session, loaded)
    fields = ("sum", "sum_squares", "sum_den", "sum_den_squares", "sum_num_den")
    assert set(sql_whole) == set(file_whole) and len(sql_whole) > 10
    for key, row in sql_whole.items():
        _same(row.stats, file_whole[key].stats, fields)
    assert set(sql_parts) == set(file_parts) and len(sql_parts) > 40
    for key, row in sql_parts.items():
        _same(row.stats, file_parts[key].stats, fields)
    assert sql_units == file_units
    total = sum(a.units for a in mrepo.assignments(session, experiment_id=pushed))
    assert total == COLS["unit_id"].size


def test_pushdown_query_counts_the_same_extra_unit_rows_as_a_file_load(
    session: Session, warehouse: str, tmp_path: Any
) -> None:
    """The warehouse's proof (rows beyond the first of each unit, from the query's per-unit
    aggregate) counts exactly what the file path's sorted-hash proof counts on the same rows: a
    unit in two variants and a unit twice in one variant are 2 extra rows either way (reference:
    len - len(set) of the ids), and neither load writes anything."""
    ids = list(DUPLICATED["unit_id"])
    extra = len(ids) - len(set(ids))
    assert extra == 2
    exp = ratio_experiment(session, name="Duplicated")
    set_metric_source(session, experiment_id=exp, url=warehouse, query=documented_query(),
                      actor=EDITOR)
    with pytest.raises(InvalidInput) as err:
        ingest_sql(session, experiment_id=exp, actor=EDITOR)
    assert f"the source counted {extra} extra rows of units that appear more than once or in " \
           "two variants" in str(err.value)
    as_file = ratio_experiment(session, name="Duplicated file")
    with pytest.raises(InvalidInput) as file_err:
        ingest_file(session, path=write_parquet(tmp_path / "dup.parquet", DUPLICATED),
                    experiment_id=as_file, actor=EDITOR)
    assert f"unit_id: {extra} extra rows: units appear in two variants" in str(file_err.value)
    for e in (exp, as_file):
        assert mrepo.count_daily_stats(session, experiment_id=e) == 0
        assert mrepo.daily_slice_stats(session, experiment_id=e) == []
