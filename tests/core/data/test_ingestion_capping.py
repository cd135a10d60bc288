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
