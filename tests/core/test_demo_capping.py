"""The demo shows capping: "Recommendations carousel" caps revenue per user at its pooled 99th
percentile; the cap stored and shown is numpy's percentile (method "linear") of the demo's own
unit-level revenue, and the results say so beside the metric."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from numpy.testing import assert_allclose
from sqlalchemy.orm import Session

from core import catalogue
from core.analysis.results import compute_results
from core.demo_data import DEMO_TRUTH, _last_day, generate_units
from core.registry.listing import load_experiment
from db import metric_repository as mrepo
from db import repositories as repo

NAME = "Recommendations carousel"


def test_demo_carousel_caps_revenue_at_the_pooled_p99(demo_session: Session) -> None:
    exp_id = repo.experiment_id_by_name(demo_session, name=NAME)
    assert exp_id is not None
    exp = load_experiment(demo_session, experiment_id=exp_id)
    assert exp.capping == {"revenue_per_user": {"kind": "percentile", "value": 0.99}}
    assert exp.actual_start is not None
    last = _last_day(exp, datetime.now(UTC).date())
    units = generate_units(NAME, DEMO_TRUTH[NAME], start=exp.actual_start, last=last)
    revenue = np.asarray(units["revenue_per_user"], dtype=float)
    cap = np.percentile(revenue, 99, method="linear")
    metric = catalogue.get_metric(demo_session, name="revenue_per_user").id
    applied = mrepo.applied_caps(demo_session, experiment_id=exp_id)[metric]
    assert_allclose(applied.cap, cap, rtol=1e-12)
    assert applied.units == revenue.size
    snap = compute_results(demo_session, experiment_id=exp_id)
    shown = {c.capping for c in snap.comparisons if c.metric == "revenue_per_user"}
    assert shown == {f"capped at p99 (value {cap:.6g})"}
    assert all(c.capping is None for c in snap.comparisons if c.metric != "revenue_per_user")


def test_demo_carousel_report_states_the_cap(demo_session: Session) -> None:
    """The PDF says, beside the results table and in its methods, what was capped and at what."""
    import io
    import re

    from pypdf import PdfReader

    from core import reports

    exp_id = repo.experiment_id_by_name(demo_session, name=NAME)
    assert exp_id is not None
    content = reports.assemble_report(demo_session, experiment_id=exp_id, generated_by="t")
    assert any(m.startswith("Capping (winsorisation)") and "revenue_per_user capped at p99 "
               "(value " in m for m in content.methods)
    pdf = reports.render_pdf(content, charts=False)
    text = re.sub(r"\s+", " ", " ".join(
        page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages))
    assert re.search(r"revenue_per_user: per-unit values capped at p99 \(value [0-9.]+\) before "
                     r"the sums", text), text[:2000]
