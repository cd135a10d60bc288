"""Capping in the file path (SQLite and PostgreSQL): a fixed cap on a mean metric with its CUPED
pre-period and on a ratio metric's numerator and denominator, applied per unit before the
daily sums, Parquet and CSV alike, and a dimension's slices capped at the same cap. Reference:
numpy's minimum and sums over the same unit rows (tests/core/data/test_ingestion.reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.data.ingestion import ingest_file
from db import metric_repository as mrepo
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import (
    START,
    make_experiment,
    reference,
    stored,
    write_csv,
    write_parquet,
)
from tests.core.data.test_ingestion_ratio import RATIO, ratio_reference, ratio_units, stored_ratio


def capped_experiment(session: Session) -> int:
    make_experiment(session, name="Catalogue setup")
    catalogue.create_metric(session, data=RATIO, actor=EDITOR)
    view = registry.create_experiment(session, data={
        "name": "Capped", "owner": "t", "hypothesis": "h", "primary_metric": "conv",
        "secondary_metrics": ["revenue", "revenue_per_session"], "planned_sample_size": 100,
        "variants": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        "capping": {"revenue": {"kind": "fixed", "value": 30.0},
                    "revenue_per_session": {"kind": "fixed", "value": 4.0}},
    }, actor=EDITOR)
    return registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=START).id


@pytest.mark.parametrize("writer", [write_csv, write_parquet])
def test_ingest_capping_fixed_caps_each_unit_before_the_sums(
    session: Session, tmp_path: Path, writer
) -> None:
    exp = capped_experiment(session)
    cols = ratio_units(600, seed=9)
    cols["revenue_pre"] = np.round(np.random.default_rng(4).gamma(2.0, 12.0, 1200), 2)
    cols["platform"] = np.where(np.arange(1200) % 3 == 0, "ios", "web").astype(object)
    assert (cols["revenue"] > 30).any() and (cols["sessions"] > 4).any()
    path = writer(tmp_path / ("units.csv" if writer is write_csv else "units.parquet"), cols)
    report = ingest_file(session, path=path, actor=EDITOR, experiment_id=exp)
    assert "revenue: per-unit values capped at 30, as the plan says." in report.notes

    capped = dict(cols)
    capped["revenue"] = np.minimum(cols["revenue"].astype(float), 30.0)
    capped["revenue_pre"] = np.minimum(cols["revenue_pre"], 30.0)
    got = {k: v for k, v in stored(session, exp).items() if k[1] == "revenue"}
    want = reference(capped, "revenue", pre="revenue_pre")
    assert got.keys() == want.keys()
    for key, row in want.items():
        assert_allclose(got[key], row, rtol=1e-12, err_msg=str(key))

    ratio = dict(capped)
    ratio["revenue"] = np.minimum(cols["revenue"].astype(float), 4.0)
    ratio["sessions"] = np.minimum(cols["sessions"].astype(float), 4.0)
    got_ratio, want_ratio = stored_ratio(session, exp), ratio_reference(ratio)
    assert got_ratio.keys() == want_ratio.keys()
    for key, row in want_ratio.items():
        assert_allclose(got_ratio[key], row, rtol=1e-12, err_msg=str(key))

    # The slices of a dimension are the capped units too: they add up to the capped total.
    metric = catalogue.get_metric(session, name="revenue").id
    slices = [r for r in mrepo.daily_slice_stats(session, experiment_id=exp)
              if r.metric_id == metric and r.dimension == "platform"]
    assert_allclose(sum(r.stats.sum for r in slices), capped["revenue"].sum(), rtol=1e-12)
    applied = mrepo.applied_caps(session, experiment_id=exp)
    assert applied[metric].cap == 30.0 and applied[metric].units == 1200


def test_ingest_capping_covariate_cross_products_use_the_capped_values(
    session: Session, tmp_path: Path
) -> None:
    """With unit attributes (cov_*), regression adjustment's cross-products Σ x·y (and Σ x·den
    for a ratio) are taken over the capped values, as the metric's own sums are, and the
    metric's own pre-period covariate is capped at its cap (as its CUPED sums and the
    warehouse take it). Reference: numpy over the same unit rows, per variant and day."""
    from db.models import Variant

    exp = capped_experiment(session)
    cols = ratio_units(600, seed=11)
    cols["revenue_pre"] = np.round(np.random.default_rng(5).gamma(2.0, 12.0, 1200), 2)
    cols["cov_tenure"] = np.random.default_rng(6).integers(0, 48, 1200).astype(float)
    assert (cols["revenue"] > 30).any() and (cols["sessions"] > 4).any()
    ingest_file(session, path=write_parquet(tmp_path / "units.parquet", cols), actor=EDITOR,
                experiment_id=exp)

    names = {v.id: v.name for v in session.query(Variant).filter_by(experiment_id=exp)}
    ids = {catalogue.get_metric(session, name=m).id: m
           for m in ("revenue", "revenue_per_session")}
    days = np.array(cols["date"])
    tenure = cols["cov_tenure"]
    revenue = cols["revenue"].astype(float)
    sessions = cols["sessions"].astype(float)
    checked = 0
    for row in mrepo.daily_stats(session, experiment_id=exp):
        metric = ids.get(row.metric_id)
        if metric is None:
            continue
        vec = row.stats.covariates
        assert vec is not None and "cov_tenure" in vec.names
        j = vec.names.index("cov_tenure")
        mask = (cols["variant"] == names[row.variant_id]) & (days == row.day)
        x = tenure[mask]
        if metric == "revenue":
            assert_allclose(vec.sum_xy[j], (x * np.minimum(revenue[mask], 30.0)).sum(),
                            rtol=1e-12)
            # its own pre-period at its cap, as its one-covariate CUPED sums take it
            assert vec.names[0] == "revenue_pre"
            pre = np.minimum(cols["revenue_pre"][mask], 30.0)
            assert_allclose([vec.sum_x[0], vec.xx[0, 0], vec.sum_xy[0], vec.xx[0, j]],
                            [pre.sum(), pre @ pre, pre @ np.minimum(revenue[mask], 30.0),
                             pre @ x], rtol=1e-12)
            assert_allclose(vec.sum_x[0], row.stats.sum_x, rtol=1e-12)
        else:
            assert vec.sum_xden is not None
            assert_allclose(vec.sum_xy[j], (x * np.minimum(revenue[mask], 4.0)).sum(),
                            rtol=1e-12)
            assert_allclose(vec.sum_xden[j], (x * np.minimum(sessions[mask], 4.0)).sum(),
                            rtol=1e-12)
        checked += 1
    assert checked == 2 * 2 * len(np.unique(days))
