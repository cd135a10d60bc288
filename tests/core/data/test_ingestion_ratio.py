"""Ratio metrics, data side: the catalogue definition (numerator and denominator columns) and the
per-arm per-day sufficient statistics — n, sums and sums of squares of numerator and denominator,
sum of their products — from user-level files and aggregate files, on SQLite and PostgreSQL.
Reference: numpy sums over the same unit rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.data.ingestion import ingest_file
from core.errors import InvalidInput
from db import metric_repository as mrepo
from db.models import Metric
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import (
    START,
    ingest_count,
    make_experiment,
    make_units,
    write_csv,
    write_parquet,
)

RATIO = {"name": "revenue_per_session", "kind": "ratio", "numerator": "revenue",
         "denominator": "sessions", "unit": "$"}


def ratio_experiment(session: Session, name: str = "Ratio test") -> int:
    """A running experiment: conv primary, revenue_per_session (ratio) secondary."""
    known = {m.name for m in catalogue.list_metrics(session)}
    if "conv" not in known:
        make_experiment(session, name="Catalogue setup")
    if "revenue_per_session" not in known:
        catalogue.create_metric(session, data=RATIO, actor=EDITOR)
    view = registry.create_experiment(session, data={
        "name": name, "owner": "t", "hypothesis": "h", "primary_metric": "conv",
        "secondary_metrics": ["revenue_per_session"],
        "variants": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        "planned_sample_size": 100,
    }, actor=EDITOR)
    return registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=START).id


def ratio_units(n: int, seed: int = 5) -> dict[str, Any]:
    cols: dict[str, Any] = make_units(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    cols["sessions"] = rng.poisson(3.0, cols["unit_id"].size) + 1
    cols["revenue"] = np.round(cols["revenue"] * cols["sessions"] / 3.0, 2)
    return {k: cols[k] for k in ("unit_id", "variant", "date", "conv", "revenue", "sessions")}


def ratio_reference(cols: dict[str, Any]) -> dict[tuple[str, date], tuple]:
    """numpy, per (variant, day): n, Σnum, Σnum², Σden, Σden², Σnum·den."""
    out = {}
    days = np.array(cols["date"])
    for v in np.unique(cols["variant"]):
        for d in np.unique(days):
            mask = (cols["variant"] == v) & (days == d)
            if mask.any():
                y, x = cols["revenue"][mask].astype(float), cols["sessions"][mask].astype(float)
                out[(v, d)] = (int(mask.sum()), y.sum(), (y * y).sum(), x.sum(), (x * x).sum(),
                               (x * y).sum())
    return out


def stored_ratio(session: Session, exp: int) -> dict[tuple[str, date], tuple]:
    metric = catalogue.get_metric(session, name="revenue_per_session").id
    from db.models import Variant

    ctx_names = {v.id: v.name for v in session.query(Variant).filter_by(experiment_id=exp)}
    return {
        (ctx_names[r.variant_id], r.day): (r.stats.n, r.stats.sum, r.stats.sum_squares,
                                           r.stats.sum_den, r.stats.sum_den_squares,
                                           r.stats.sum_num_den)
        for r in mrepo.daily_stats(session, experiment_id=exp) if r.metric_id == metric
    }


def test_catalogue_ratio_metric_names_its_numerator_and_denominator(session: Session) -> None:
    view = catalogue.create_metric(session, data=RATIO, actor=EDITOR)
    assert (view.kind, view.numerator, view.denominator) == ("ratio", "revenue", "sessions")
    assert catalogue.get_metric(session, name="revenue_per_session") == view


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"denominator": None}, "a ratio metric needs a numerator and a denominator column"),
        ({"denominator": "revenue"}, "numerator and denominator must be different columns"),
        ({"numerator": "revenue_per_session"}, "cannot be its own numerator or denominator"),
        ({"kind": "mean"}, "only ratio metrics take a numerator and a denominator"),
        ({"numerator": "Revenue $"}, "numerator: write the column's name in lower_snake_case"),
    ],
)
def test_catalogue_refuses_an_ill_defined_ratio_metric(
    session: Session, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        catalogue.create_metric(session, data={**RATIO, **changes}, actor=EDITOR)
    assert message in str(err.value)
    assert catalogue.list_metrics(session) == []


def test_metric_table_refuses_a_ratio_without_its_columns(session: Session) -> None:
    """The database itself holds the rule (migration 0004's CHECK constraints)."""
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(insert(Metric).values(name="bad_ratio", kind="ratio"))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_ingest_user_file_stores_ratio_sums_equal_to_numpy(
    session: Session, tmp_path: Path, fmt: str
) -> None:
    exp = ratio_experiment(session)
    cols = ratio_units(400)
    writer = write_csv if fmt == "csv" else write_parquet
    report = ingest_file(session, path=writer(tmp_path / f"r.{fmt}", cols), experiment_id=exp,
                         actor=EDITOR)
    assert set(report.metrics) == {"conv", "revenue_per_session"}
    got, want = stored_ratio(session, exp), ratio_reference(cols)
    assert set(got) == set(want)
    for key, values in want.items():
        assert got[key][0] == values[0]
        assert_allclose(got[key][1:], values[1:], rtol=1e-12)
    # Loading again replaces, never adds.
    ingest_file(session, path=writer(tmp_path / f"r.{fmt}", cols), experiment_id=exp,
                actor=EDITOR)
    assert stored_ratio(session, exp) == got


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.pop("sessions"), "has revenue but not sessions: ratio metric "
                                      "revenue_per_session is revenue / sessions"),
        (lambda c: c["sessions"].__setitem__(3, -2),
         "column sessions: 1 negative values (it is the denominator of revenue_per_session"),
        (lambda c: c.__setitem__("sessions", [*c["sessions"][:-1], "many"]),
         "column sessions: 1 non-numeric values, e.g. unit u19 = 'many'"),
    ],
)
def test_ingest_user_file_with_bad_ratio_columns_is_rejected(
    session: Session, tmp_path: Path, change: Any, message: str
) -> None:
    exp = ratio_experiment(session)
    cols = {k: list(v) for k, v in ratio_units(10).items()}
    cols["sessions"] = np.array(cols["sessions"], dtype=object)
    change(cols)
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=write_csv(tmp_path / "bad.csv", cols), experiment_id=exp,
                    actor=EDITOR)
    assert message in str(err.value)
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0
    assert ingest_count(session, exp) == 0


def _agg_rows(**changes: Any) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {
        "variant": ["control", "treatment"], "date": ["2026-03-03", "2026-03-03"],
        "metric": ["revenue_per_session"] * 2, "n": [100, 110], "sum": [250.0, 300.0],
        "sum_squares": [1200.0, 1500.0], "sum_den": [320, 360], "sum_den_squares": [1300, 1450],
        "sum_num_den": [900.0, 1100.0],
    }
    rows.update(changes)
    return rows


def test_ingest_aggregate_file_stores_ratio_sums_as_given(
    session: Session, tmp_path: Path
) -> None:
    exp = ratio_experiment(session)
    ingest_file(session, path=write_csv(tmp_path / "agg.csv", _agg_rows()), experiment_id=exp,
                actor=EDITOR)
    assert stored_ratio(session, exp) == {
        ("control", date(2026, 3, 3)): (100, 250.0, 1200.0, 320.0, 1300.0, 900.0),
        ("treatment", date(2026, 3, 3)): (110, 300.0, 1500.0, 360.0, 1450.0, 1100.0),
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sum_den": ["", ""]}, "row 2: a ratio metric needs sum_den, sum_den_squares, "
                                "sum_num_den"),
        ({"sum_den": [-5, 360]}, "row 2: sum_den -5 is negative"),
        ({"sum_num_den": [5000.0, 1100.0]}, "row 2: sum_num_den 5000.0 is impossible"),
        ({"sum_den_squares": [10, 1450]}, "row 2: denominator:"),
        ({"metric": ["conv", "revenue_per_session"], "sum": [50, 300.0],
          "sum_squares": [50, 1500.0]},
         "row 2: sum_den, sum_den_squares, sum_num_den belong to ratio metrics only"),
    ],
)
def test_ingest_bad_ratio_aggregate_rows_are_rejected(
    session: Session, tmp_path: Path, changes: dict[str, list[Any]], message: str
) -> None:
    exp = ratio_experiment(session)
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=write_csv(tmp_path / "agg.csv", _agg_rows(**changes)),
                    experiment_id=exp, actor=EDITOR)
    assert message in str(err.value)
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0
