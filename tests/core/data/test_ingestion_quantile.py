"""Quantile metrics, data side: a user-level file's per-arm QuantileStats (n, the p-quantile and
the quantiles at p -/+ z sqrt(p (1 - p) / n), by DuckDB's quantile_disc) stored on SQLite and
PostgreSQL, equal to numpy's ``np.quantile(..., method="inverted_cdf")`` over the same units
(and to core.stats.quantile_stats); the metric's daily sums are stored as for a mean metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.data.ingestion import ingest_file
from core.stats import quantile_levels, quantile_stats
from db import metric_repository as mrepo
from db.models import Experiment
from tests.conftest import EDITOR
from tests.core.data.test_ingestion import START, make_experiment, write_csv, write_parquet

P90 = {"name": "p90_load_ms", "kind": "quantile", "quantile_p": 0.9, "unit": "ms",
       "higher_is_better": False}


def quantile_experiment(session: Session, name: str = "Quantile test") -> int:
    """A running experiment: conv primary, p90_load_ms (quantile, p = 0.9) guardrail."""
    known = {m.name for m in catalogue.list_metrics(session)}
    if "conv" not in known:
        make_experiment(session, name="Catalogue setup")
    if "p90_load_ms" not in known:
        catalogue.create_metric(session, data=P90, actor=EDITOR)
    view = registry.create_experiment(session, data={
        "name": name, "owner": "t", "hypothesis": "h", "primary_metric": "conv",
        "guardrail_metrics": ["p90_load_ms"],
        "variants": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        "planned_sample_size": 1000,
    }, actor=EDITOR)
    return registry.transition_experiment(
        session, experiment_id=view.id, to_status="running", expected_version=view.version,
        actor=EDITOR, on=START).id


def quantile_units(n_c: int, n_t: int, seed: int = 3, slower: float = 1.05) -> dict[str, Any]:
    """Seeded units: conv (0/1) and lognormal load times, the treatment's ``slower`` times."""
    rng = np.random.default_rng(seed)
    variant = np.array(["control"] * n_c + ["treatment"] * n_t, dtype=object)
    load = rng.lognormal(6.0, 0.6, n_c + n_t) * np.where(variant == "treatment", slower, 1.0)
    return {
        "unit_id": np.array([f"u{i}" for i in range(n_c + n_t)], dtype=object),
        "variant": variant,
        "date": np.array([START] * (n_c + n_t), dtype=object),
        "conv": (rng.random(n_c + n_t) < 0.2).astype(np.int64),
        "p90_load_ms": np.round(load, 1),
    }


def _stored(session: Session, exp: int) -> dict[str, Any]:
    names = {v.id: v.name for v in session.get(Experiment, exp).variants}  # type: ignore[union-attr]
    return {names[r.variant_id]: r.stats for r in mrepo.quantile_stats(session, experiment_id=exp)}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_ingest_quantile_metric_stores_numpy_inverted_cdf_quantiles(
        session: Session, tmp_path: Path, fmt: str) -> None:
    exp = quantile_experiment(session)
    cols = quantile_units(1200, 1100)
    writer = write_csv if fmt == "csv" else write_parquet
    report = ingest_file(session, path=writer(tmp_path / f"q.{fmt}", cols), experiment_id=exp,
                         actor=EDITOR)
    assert "p90_load_ms" in report.metrics
    assert any("quantile is computed over this file's units" in n for n in report.notes)
    got = _stored(session, exp)
    for arm, n in (("control", 1200), ("treatment", 1100)):
        x = cols["p90_load_ms"][cols["variant"] == arm].astype(float)
        low, high = quantile_levels(0.9, n)
        ref = np.quantile(x, [low, 0.9, high], method="inverted_cdf")
        s = got[arm]
        assert (s.n, s.n_star, s.p) == (n, n, 0.9)
        assert (s.lower, s.quantile, s.upper) == tuple(float(v) for v in ref)
        assert s == quantile_stats(x, 0.9)
    # the daily sums of the value are stored too (units per arm, the mean beside the quantile)
    daily = mrepo.daily_stats(session, experiment_id=exp)
    metric = catalogue.get_metric(session, name="p90_load_ms").id
    assert sum(r.stats.n for r in daily if r.metric_id == metric) == 2300


def test_ingest_quantile_metric_replaces_the_arms_and_notes_an_arm_too_small(
        session: Session, tmp_path: Path) -> None:
    exp = quantile_experiment(session)
    ingest_file(session, path=write_parquet(tmp_path / "a.parquet", quantile_units(500, 500)),
                experiment_id=exp, actor=EDITOR)
    assert set(_stored(session, exp)) == {"control", "treatment"}
    # 30 treatment units are too few for the p90's interval (it needs 35): no record, a note
    report = ingest_file(session, path=write_parquet(tmp_path / "b.parquet",
                                                     quantile_units(800, 30, seed=4)),
                         experiment_id=exp, actor=EDITOR)
    assert any("no quantile for treatment" in n and "at least 35 units" in n
               for n in report.notes)
    stored = _stored(session, exp)
    assert set(stored) == {"control"} and stored["control"].n == 800
