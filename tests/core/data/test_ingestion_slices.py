"""Segment drill-down, data side: text columns of a user-level file are dimensions; per value,
daily sufficient statistics and assignment counts are stored in the same load, idempotently,
with high-cardinality columns refused as dimensions; aggregate rows may carry a dimension too.
SQLite and PostgreSQL. Reference: numpy over the same unit rows."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.data.ingestion import ingest_file
from core.data.reading import EMPTY_DIMENSION_VALUE, MAX_DIMENSION_VALUES
from core.errors import InvalidInput
from db import metric_repository as mrepo
from db.models import Metric, Variant
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import (
    make_experiment,
    make_units,
    stored,
    write_csv,
    write_parquet,
)
from tests.core.data.test_ingestion_ratio import ratio_experiment, ratio_units


def sliced_units(n: int, seed: int = 7) -> dict[str, Any]:
    cols: dict[str, Any] = make_units(n, seed=seed)
    rng = np.random.default_rng(seed)
    size = cols["unit_id"].size
    cols["country"] = rng.choice(np.array(["DE", "FR", "US"], dtype=object), size)
    cols["platform"] = rng.choice(np.array(["ios", "android", "web"], dtype=object), size)
    return cols


def slice_reference(cols: dict[str, Any], dimension: str, metric: str) -> dict[tuple, tuple]:
    """numpy: (variant, day, value) -> (n, Σy, Σy²)."""
    out = {}
    days, values = np.array(cols["date"]), np.array(cols[dimension])
    for v in np.unique(cols["variant"]):
        for d in np.unique(days):
            for value in np.unique(values):
                mask = (cols["variant"] == v) & (days == d) & (values == value)
                if mask.any():
                    y = cols[metric][mask].astype(float)
                    out[(v, d, value)] = (int(mask.sum()), y.sum(), (y * y).sum())
    return out


def stored_slices(session: Session, exp: int, dimension: str, metric: str) -> dict[tuple, tuple]:
    names = {v.id: v.name for v in session.scalars(select(Variant))}
    metric_id = session.scalar(select(Metric.id).where(Metric.name == metric))
    return {
        (names[r.variant_id], r.day, r.value): (r.stats.n, r.stats.sum, r.stats.sum_squares)
        for r in mrepo.daily_slice_stats(session, experiment_id=exp, dimension=dimension)
        if r.metric_id == metric_id
    }


def stored_slice_units(session: Session, exp: int, dimension: str) -> dict[tuple, int]:
    names = {v.id: v.name for v in session.scalars(select(Variant))}
    return {(names[a.variant_id], a.day, a.value): a.units
            for a in mrepo.slice_assignments(session, experiment_id=exp, dimension=dimension)}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_ingest_user_file_stores_slices_per_dimension_value_equal_to_numpy(
    session: Session, tmp_path: Path, fmt: str
) -> None:
    exp = make_experiment(session, guardrails=("refunds", "load_ms"))
    cols = sliced_units(300)
    writer = write_csv if fmt == "csv" else write_parquet
    report = ingest_file(session, path=writer(tmp_path / f"s.{fmt}", cols), experiment_id=exp,
                         actor=EDITOR)
    assert report.dimensions == ("country", "platform")
    assert report.ignored_columns == ()
    assert mrepo.dimensions(session, experiment_id=exp) == ["country", "platform"]
    whole = stored(session, exp)
    for dimension in ("country", "platform"):
        for metric in ("conv", "revenue", "load_ms"):
            got, want = stored_slices(session, exp, dimension, metric), slice_reference(
                cols, dimension, metric)
            assert set(got) == set(want)
            for key, values in want.items():
                assert got[key][0] == values[0]
                assert_allclose(got[key][1:], values[1:], rtol=1e-12)
            # The slices of a dimension add up to the whole arm.
            for (v, d), total in Counter({(k[0], k[1]): 0 for k in got}).items():
                parts = [x for k, x in got.items() if k[:2] == (v, d)]
                assert sum(p[0] for p in parts) + total == whole[(v, metric, d)][0]
                assert_allclose(sum(p[1] for p in parts), whole[(v, metric, d)][1], rtol=1e-12)
        units = Counter(zip(cols["variant"], cols["date"], cols[dimension], strict=True))
        assert stored_slice_units(session, exp, dimension) == dict(units)


def test_ingest_reload_replaces_slices_and_a_load_without_dimensions_clears_its_days(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session)
    cols = sliced_units(100)
    path = write_parquet(tmp_path / "s.parquet", cols)
    ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    first = mrepo.daily_slice_stats(session, experiment_id=exp)
    ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    assert mrepo.daily_slice_stats(session, experiment_id=exp) == first
    plain = {k: v for k, v in cols.items() if k not in ("country", "platform")}
    ingest_file(session, path=write_parquet(tmp_path / "p.parquet", plain), experiment_id=exp,
                actor=EDITOR)
    assert mrepo.daily_slice_stats(session, experiment_id=exp) == []
    assert mrepo.slice_assignments(session, experiment_id=exp) == []


def test_ingest_high_cardinality_text_column_is_not_a_dimension(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session)
    cols = sliced_units(100)
    cols["email"] = np.array([f"{u}@example.com" for u in cols["unit_id"]], dtype=object)
    cols["country"][:5] = None
    report = ingest_file(session, path=write_parquet(tmp_path / "s.parquet", cols),
                         experiment_id=exp, actor=EDITOR)
    assert report.dimensions == ("country", "platform")
    assert report.ignored_columns == ("load_ms", "email")
    assert report.notes == (
        f"column email: not used as a dimension (200 distinct values, more than the "
        f"{MAX_DIMENSION_VALUES} a dimension may have)",)
    values = {r.value for r in mrepo.daily_slice_stats(session, experiment_id=exp,
                                                       dimension="country")}
    assert values == {"DE", "FR", "US", EMPTY_DIMENSION_VALUE}
    assert mrepo.dimensions(session, experiment_id=exp) == ["country", "platform"]


def test_ingest_ratio_metric_slices_carry_the_denominator_sums(
    session: Session, tmp_path: Path
) -> None:
    exp = ratio_experiment(session)
    cols = ratio_units(200)
    cols["platform"] = np.where(np.arange(cols["unit_id"].size) % 3 == 0, "ios", "web").astype(
        object)
    ingest_file(session, path=write_csv(tmp_path / "r.csv", cols), experiment_id=exp,
                actor=EDITOR)
    metric = session.scalar(select(Metric.id).where(Metric.name == "revenue_per_session"))
    rows = [r for r in mrepo.daily_slice_stats(session, experiment_id=exp)
            if r.metric_id == metric]
    assert rows
    names = {v.id: v.name for v in session.scalars(select(Variant))}
    for r in rows:
        mask = ((cols["variant"] == names[r.variant_id]) & (np.array(cols["date"]) == r.day)
                & (cols["platform"] == r.value))
        y, x = cols["revenue"][mask].astype(float), cols["sessions"][mask].astype(float)
        s = r.stats
        assert s.n == int(mask.sum())
        assert_allclose([s.sum, s.sum_squares, s.sum_den, s.sum_den_squares, s.sum_num_den],
                        [y.sum(), (y * y).sum(), x.sum(), (x * x).sum(), (x * y).sum()],
                        rtol=1e-12)


def _agg(**changes: Any) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {
        "variant": ["control", "control", "control"], "date": ["2026-03-03"] * 3,
        "metric": ["conv"] * 3, "n": [100, 60, 40], "sum": [12, 8, 4],
        "sum_squares": [12, 8, 4], "dimension": ["", "country", "country"],
        "dimension_value": ["", "DE", "FR"],
    }
    rows.update(changes)
    return rows


def test_ingest_aggregate_rows_with_a_dimension_are_stored_as_slices(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session)
    report = ingest_file(session, path=write_csv(tmp_path / "a.csv", _agg()), experiment_id=exp,
                         actor=EDITOR)
    assert report.dimensions == ("country",)
    assert stored_slices(session, exp, "country", "conv") == {
        ("control", date(2026, 3, 3), "DE"): (60, 8.0, 8.0),
        ("control", date(2026, 3, 3), "FR"): (40, 4.0, 4.0),
    }
    assert stored_slice_units(session, exp, "country") == {
        ("control", date(2026, 3, 3), "DE"): 60, ("control", date(2026, 3, 3), "FR"): 40}
    assert stored(session, exp)[("control", "conv", date(2026, 3, 3))][:3] == (100, 12.0, 12.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dimension_value": ["", "", "FR"]},
         "row 3: give both dimension and dimension_value, or neither"),
        ({"dimension_value": ["", "DE", "DE"]}, "row 4: repeats control/2026-03-03/conv/"
                                                "country=DE of row 3"),
        ({"duplicate_units": [0, 0, 3]}, "the source counted 3 extra rows of units"),
    ],
)
def test_ingest_bad_slice_aggregate_rows_are_rejected(
    session: Session, tmp_path: Path, changes: dict[str, list[Any]], message: str
) -> None:
    exp = make_experiment(session)
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=write_csv(tmp_path / "a.csv", _agg(**changes)),
                    experiment_id=exp, actor=EDITOR)
    assert message in str(err.value)
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0
    assert mrepo.daily_slice_stats(session, experiment_id=exp) == []


def test_ingest_too_many_dimension_values_in_aggregate_rows_is_refused(
    session: Session, tmp_path: Path
) -> None:
    exp = make_experiment(session)
    k = MAX_DIMENSION_VALUES + 1
    rows = _agg(variant=["control"] * k, date=["2026-03-03"] * k, metric=["conv"] * k,
                n=[10] * k, sum=[1] * k, sum_squares=[1] * k, dimension=["city"] * k,
                dimension_value=[f"c{i}" for i in range(k)])
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=write_csv(tmp_path / "a.csv", rows), experiment_id=exp,
                    actor=EDITOR)
    assert f"dimension city has {k} distinct values, more than the {MAX_DIMENSION_VALUES}" in str(
        err.value)
