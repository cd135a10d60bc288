"""Pre-aggregated files with the cross-products of several covariates (SQLite and PostgreSQL):
the flat columns ``sum_x__<a>``, ``sum_xx__<a>__<b>``, ``sum_xy__<a>`` (and a ratio metric's
``sum_xden__<a>``) are stored as the CovariateSums a user-level file with the same units gives,
and the results regression-adjust on them exactly as from that file. Every malformed set of
columns is refused naming the column, with nothing written.

References: numpy (``X.T @ X``, ``X.T @ y`` per variant and day, core.stats.covariate_sums)
for the stored sums, to 1e-9; statsmodels OLS of y on [1, T, X - xbar, T (X - xbar)] for the
adjusted difference, to 1e-9 (tests/core/analysis/test_results_adjusted.py).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core.analysis.results import compute_results
from core.data.ingestion import ingest_file
from core.errors import InvalidInput
from core.registry.listing import load_experiment
from core.stats import covariate_sums
from db import metric_repository as mrepo
from tests.conftest import EDITOR
from tests.core.analysis.test_results_adjusted import _lin
from tests.core.data.test_ingestion import ingest_count, make_experiment, make_units, write_csv
from tests.core.data.test_ingestion_ratio import ratio_experiment

NAMES = {"revenue": ["revenue_pre", "cov_tenure", "cov_tenure_missing"],
         "conv": ["cov_tenure", "cov_tenure_missing"]}


def _units(n: int, seed: int = 4) -> dict[str, np.ndarray]:
    """Units with a unit attribute (tenure) unknown for some of them: 0 and an indicator."""
    cols = make_units(n, seed=seed, lift={"treatment": 0.05})
    rng = np.random.default_rng(seed)
    total = cols["variant"].size
    tenure = np.round(rng.gamma(3.0, 4.0, total), 1)
    missing = rng.random(total) < 0.1
    cols["revenue"] = np.round(cols["revenue"] + 0.8 * tenure + rng.normal(0, 1, total), 2)
    cols["cov_tenure"] = np.where(missing, 0.0, tenure)
    cols["cov_tenure_missing"] = missing.astype(np.int64)
    return cols


def _aggregate_rows(cols: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per variant, day and metric with every sum, the covariates' cross-products
    as flat columns computed by numpy."""
    rows: list[dict[str, Any]] = []
    days = np.array(cols["date"])
    for v in np.unique(cols["variant"]):
        for d in np.unique(days):
            mask = (cols["variant"] == v) & (days == d)
            if not mask.any():
                continue
            for metric, names in NAMES.items():
                y = cols[metric][mask].astype(float)
                x = np.column_stack([cols[c][mask].astype(float) for c in names])
                rows.append({"variant": v, "date": d.isoformat(), "metric": metric,
                             "n": int(mask.sum()), "sum": y.sum(), "sum_squares": y @ y,
                             **covariate_sums(x, y, names).columns()})
    return pd.DataFrame(rows)


def _stored_vectors(session: Session, exp: int) -> dict[tuple[int, date, str], Any]:
    variants = {v.id: v.name for v in load_experiment(session, experiment_id=exp).variants}
    return {(r.metric_id, r.day, variants[r.variant_id]): r.stats.covariates
            for r in mrepo.daily_stats(session, experiment_id=exp)}


def test_ingest_aggregate_file_covariate_sums_give_the_user_files_adjusted_results(
    session: Session, tmp_path: Path
) -> None:
    cols = _units(400)
    units = make_experiment(session, name="From units")
    ingest_file(session, path=write_csv(tmp_path / "units.csv", cols), experiment_id=units,
                actor=EDITOR)
    aggregated = make_experiment(session, name="From aggregates")
    frame = _aggregate_rows(cols)
    path = tmp_path / "agg.csv"
    frame.to_csv(path, index=False)
    report = ingest_file(session, path=path, experiment_id=aggregated, actor=EDITOR)
    assert report.kind == "aggregate_file"

    got, want = _stored_vectors(session, aggregated), _stored_vectors(session, units)
    assert {k: v.names for k, v in got.items() if v} == {k: v.names for k, v in want.items()
                                                        if k in got}
    for key, vec in got.items():
        assert vec is not None and want[key] is not None
        for field in ("sum_x", "sum_xx", "sum_xy"):
            assert_allclose(getattr(vec, field), getattr(want[key], field), rtol=1e-9,
                            err_msg=f"{key} {field}")

    by_file = {c.metric: c for c in compute_results(session, experiment_id=units).comparisons}
    by_rows = {c.metric: c for c in compute_results(session,
                                                    experiment_id=aggregated).comparisons}
    for metric, names in NAMES.items():
        fit = _lin(cols, metric, names)
        row = by_rows[metric]
        assert row.test == "regression_adjusted", metric
        assert_allclose(row.diff, fit.params[1], rtol=1e-9, err_msg=metric)
        for field in ("diff", "diff_ci_low", "diff_ci_high", "p_value", "variance_reduction"):
            assert_allclose(getattr(row, field), getattr(by_file[metric], field), rtol=1e-9,
                            err_msg=f"{metric} {field}")
    assert by_rows["revenue"].adjustment is not None
    assert by_rows["revenue"].adjustment.startswith("CUPED: −")


def test_ingest_aggregate_file_ratio_covariate_sums_need_sum_xden(
    session: Session, tmp_path: Path
) -> None:
    exp = ratio_experiment(session)
    rng = np.random.default_rng(8)
    num, den, x = rng.gamma(2.0, 3.0, 80), rng.integers(1, 5, 80).astype(float), \
        rng.normal(10, 2, 80)
    vec = covariate_sums(x, num, ["cov_age"], den)
    row = {"variant": "control", "date": "2026-03-03", "metric": "revenue_per_session",
           "n": 80, "sum": num.sum(), "sum_squares": num @ num, "sum_den": den.sum(),
           "sum_den_squares": den @ den, "sum_num_den": num @ den, **vec.columns()}
    path = tmp_path / "agg.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    (stored,) = [r.stats.covariates for r in mrepo.daily_stats(session, experiment_id=exp)]
    assert stored is not None and stored.sum_xden is not None
    assert_allclose(stored.sum_xden, [x @ den], rtol=1e-12)

    other = ratio_experiment(session, name="Without sum_xden")
    pd.DataFrame([{k: v for k, v in row.items() if k != "sum_xden__cov_age"}]).to_csv(
        path, index=False)
    with pytest.raises(InvalidInput, match=r"row 2: covariate sums: missing sum_xden__cov_age"):
        ingest_file(session, path=path, experiment_id=other, actor=EDITOR)
    assert mrepo.count_daily_stats(session, experiment_id=other) == 0


def _good_row() -> dict[str, Any]:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 2))
    y = rng.normal(5, 1, 50)
    return {"variant": "control", "date": "2026-03-03", "metric": "revenue", "n": 50,
            "sum": y.sum(), "sum_squares": y @ y,
            **covariate_sums(x, y, ["cov_a", "cov_b"]).columns()}


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.pop("sum_xx__cov_a__cov_b"),
     "row 2: covariate sums: missing sum_xx__cov_a__cov_b (each covariate needs"),
    (lambda r: r.update(sum_xy__cov_b="lots"),
     "row 2: covariate sums: sum_xy__cov_b must be finite numbers"),
    (lambda r: r.update(sum_xx__cov_a__cov_a=0.001),
     "row 2: sum_xx__cov_a__cov_a 0.001 is below sum_x__cov_a² / n"),
    (lambda r: r.update(dimension="platform", dimension_value="ios"),
     "row 2: a dimension value's row takes no covariate sums"),
    (lambda r: r.update(sum_xden__cov_a=1.0),
     "sum_xden__ columns belong to ratio metrics only"),
])
def test_ingest_aggregate_file_bad_covariate_sums_are_refused(
    session: Session, tmp_path: Path, change: Any, message: str
) -> None:
    exp = make_experiment(session)
    row = _good_row()
    change(row)
    path = tmp_path / "agg.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    with pytest.raises(InvalidInput) as err:
        ingest_file(session, path=path, experiment_id=exp, actor=EDITOR)
    assert message in str(err.value)
    assert mrepo.count_daily_stats(session, experiment_id=exp) == 0
    assert ingest_count(session, exp) == 0
