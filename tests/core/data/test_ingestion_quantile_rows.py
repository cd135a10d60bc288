"""Quantile metrics in pre-aggregated inputs (core.data.aggregates; SQLite and PostgreSQL): a
row per arm without a date (``n, quantile_p, quantile, quantile_lower, quantile_upper`` [,
``quantile_n_star``]) is stored as the arm's QuantileStats in the table a user-level file
fills. The reference: seeded units summarised with numpy's ``quantile(method="inverted_cdf")``
at p and at core.stats.quantile_levels(p, n_star) (what a warehouse's percentile_disc returns),
written as rows; the stored statistics are those numbers, and the same units loaded as a
user-level file store the same ones. Every bad row is refused with what to fix, nothing
written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from core.data.ingestion import ingest_file, ingest_records
from core.errors import InvalidInput
from core.stats import QuantileStats, quantile_levels, quantile_stats
from db import metric_repository as mrepo
from db.models import Experiment
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import START, write_csv
from tests.core.data.test_ingestion_quantile import quantile_experiment, quantile_units

HEADER = ("variant,date,metric,n,sum,sum_squares,quantile_p,quantile,quantile_lower,"
          "quantile_upper,quantile_n_star")


def _stored(session: Session, exp: int) -> dict[str, QuantileStats]:
    names = {v.id: v.name for v in session.get(Experiment, exp).variants}  # type: ignore[union-attr]
    return {names[r.variant_id]: r.stats for r in mrepo.quantile_stats(session, experiment_id=exp)}


def _arm_row(variant: str, x: np.ndarray, p: float = 0.9, n_star: int | None = None) -> str:
    """The arm's quantile row, by numpy at p and its levels for n_star (default n)."""
    star = n_star or len(x)
    low, high = quantile_levels(p, star)
    q_low, q, q_high = (float(v) for v in np.quantile(x, [low, p, high], method="inverted_cdf"))
    return (f"{variant},,p90_load_ms,{len(x)},,,{p!r},{q!r},{q_low!r},{q_high!r},"
            f"{'' if n_star is None else n_star}")


def _daily_row(variant: str, x: np.ndarray) -> str:
    total, squares = float(x.sum()), float((x * x).sum())
    return f"{variant},{START},p90_load_ms,{len(x)},{total!r},{squares!r},,,,,"


def test_ingest_quantile_rows_store_the_arms_numpy_quantiles(
        session: Session, tmp_path: Path) -> None:
    exp = quantile_experiment(session)
    cols = quantile_units(1200, 1100)
    arms = {arm: cols["p90_load_ms"][cols["variant"] == arm].astype(float)
            for arm in ("control", "treatment")}
    path = tmp_path / "agg.csv"
    path.write_text("\n".join([
        HEADER,
        _daily_row("control", arms["control"]), _daily_row("treatment", arms["treatment"]),
        _arm_row("control", arms["control"]),
        # levels for a fixed n_star below n (GrowthBook's constant-level grid)
        _arm_row("treatment", arms["treatment"], n_star=1000),
    ]) + "\n")
    report = ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    assert report.metrics == ("p90_load_ms",)
    assert any("p90_load_ms: its quantile rows replace the stored statistics" in n
               for n in report.notes)
    got = _stored(session, exp)
    assert got["control"] == quantile_stats(arms["control"], 0.9)
    x = arms["treatment"]
    low, high = quantile_levels(0.9, 1000)
    q_low, q, q_high = np.quantile(x, [low, 0.9, high], method="inverted_cdf")
    assert got["treatment"] == QuantileStats(1100, 0.9, float(q), float(q_low), float(q_high),
                                             1000)
    # the daily sums are stored as for a mean metric
    daily = mrepo.daily_stats(session, experiment_id=exp)
    assert sorted(r.stats.n for r in daily) == [1100, 1200]

    # The same units as a user-level file store the same statistics (n_star = n).
    other = quantile_experiment(session, name="Quantile users")
    ingest_file(session, path=write_csv(tmp_path / "units.csv", cols), experiment_id=other,
                actor=EDITOR)
    assert _stored(session, other)["control"] == got["control"]


def test_ingest_quantile_rows_alone_define_the_metric_whole(
        session: Session, tmp_path: Path) -> None:
    """Rows without any daily sums load; a later load with one arm's row removes the other's
    (quantiles do not add up across loads)."""
    exp = quantile_experiment(session)
    cols = quantile_units(500, 400)
    arms = {arm: cols["p90_load_ms"][cols["variant"] == arm].astype(float)
            for arm in ("control", "treatment")}
    first = tmp_path / "q1.csv"
    first.write_text("\n".join([HEADER, _arm_row("control", arms["control"]),
                                _arm_row("treatment", arms["treatment"])]) + "\n")
    report = ingest_file(session, path=first, experiment_id=exp, actor=EDITOR)
    assert (report.metrics, report.first_day, report.stats_rows_written) == (
        ("p90_load_ms",), None, 0)
    assert set(_stored(session, exp)) == {"control", "treatment"}
    second = tmp_path / "q2.csv"
    second.write_text("\n".join([HEADER, _arm_row("control", arms["control"][:450])]) + "\n")
    ingest_file(session, path=second, experiment_id=exp, actor=EDITOR)
    stored = _stored(session, exp)
    assert set(stored) == {"control"} and stored["control"].n == 450


def test_ingest_quantile_rows_from_a_sql_source_take_the_same_path(session: Session) -> None:
    """A SQL push-down source's rows (numbers, a null day) go through the same checks."""
    exp = quantile_experiment(session)
    x = quantile_units(300, 300)["p90_load_ms"][:300].astype(float)
    s = quantile_stats(x, 0.9)
    rows: list[dict[str, Any]] = [
        {"variant": "control", "day": None, "metric": "p90_load_ms", "n": 300, "sum": None,
         "sum_squares": None, "quantile_p": 0.9, "quantile": s.quantile,
         "quantile_lower": s.lower, "quantile_upper": s.upper},
        {"variant": "control", "day": START, "metric": "conv", "n": 300, "sum": 60,
         "sum_squares": 60},
    ]
    ingest_records(session, experiment_id=exp, rows=rows, actor=EDITOR, kind="sql",
                   label="sql source")
    assert _stored(session, exp) == {"control": s}


def test_ingest_quantile_rows_refuse_every_bad_row_with_what_to_fix(
        session: Session, tmp_path: Path) -> None:
    exp = quantile_experiment(session)
    good = "control,,p90_load_ms,500,,,0.9,100,90,110,"
    bad = [
        "control,,p90_load_ms,500,,,0.9,100,120,110,",          # 2: lower > quantile
        "control,,p90_load_ms,500,,,0.95,100,90,110,",          # 3: another level
        "control,,p90_load_ms,500,,,1.5,100,90,110,",           # 4: p outside (0, 1)
        "control,,p90_load_ms,0,,,0.9,100,90,110,",             # 5: no units
        "control,,p90_load_ms,500,,,0.9,100,90,110,600",        # 6: n_star > n
        f"control,{START},p90_load_ms,500,,,0.9,100,90,110,",   # 7: a date
        "control,,p90_load_ms,500,5,25,0.9,100,90,110,",        # 8: sums
        "control,,conv,500,,,0.9,1,0,1,",                       # 9: not a quantile metric
        "control,,p90_load_ms,500,,,0.9,100,90,,",              # 10: no upper
        "control,,p90_load_ms,500,,,0.9,abc,90,110,",           # 11: not a number
        "control,,p90_load_ms,500,,,0.9,100,90,110,20",         # 12: n_star too small
        good,                                                   # 13
        good,                                                   # 14: repeats 13
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([HEADER, *bad]) + "\n")
    with pytest.raises(InvalidInput) as excinfo:
        ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    problems = excinfo.value.problems
    expected = {
        2: "need quantile_lower <= quantile <= quantile_upper (got 120.0, 100.0, 110.0)",
        3: "quantile_p '0.95' is not the level of p90_load_ms (0.9): give its 0.9-quantile",
        4: "quantile_p '1.5' is not strictly between 0 and 1",
        5: "n '0' is not a whole number of units >= 1 (the arm's units)",
        6: "quantile_n_star '600' is not a whole number from 1 to n (500)",
        7: "a quantile row covers every unit of the arm, not one day: leave its date empty",
        8: "a quantile row takes no sum or sum_squares",
        9: "quantile_p, quantile, quantile_lower, quantile_upper, quantile_n_star belong to "
           "quantile metrics only (conv is binomial)",
        10: "give quantile_p, quantile, quantile_lower, quantile_upper together "
            "(quantile_upper is empty)",
        11: "quantile 'abc' is not a number",
        12: "20 units are too few for the 0.9-quantile's interval: it needs at least 35 units "
            "per arm: drop this row",
        14: "repeats the p90_load_ms quantile row of control (row 13)",
    }
    assert len(problems) == len(expected), problems
    for (row, says), problem in zip(sorted(expected.items()), problems, strict=True):
        assert problem.startswith(f"bad.csv row {row}: ") and says in problem, (row, problem)
    assert mrepo.quantile_stats(session, experiment_id=exp) == []
    assert mrepo.daily_stats(session, experiment_id=exp) == []
    with pytest.raises(InvalidInput, match="quantiles are stored per arm, not per dimension"):
        ingest_records(session, experiment_id=exp, actor=EDITOR, kind="sql", label="sql",
                       rows=[{"variant": "control", "metric": "p90_load_ms", "n": 500,
                              "quantile_p": 0.9, "quantile": 100, "quantile_lower": 90,
                              "quantile_upper": 110, "dimension": "platform",
                              "dimension_value": "ios"}])
