"""Reports: the PDF's text (extracted with pypdf), its risk flags on the demo experiments built to
trigger them, storage and records, no-data and Unicode reports, the portfolio CSV and the CLI."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core import catalogue, registry, reports
from core import format as fmt
from core.analysis.results import compute_results
from core.artifacts import LocalArtifactStore, S3ArtifactStore
from core.config import PROJECT_ROOT
from core.data.ingestion import ingest_records
from core.errors import PermissionDenied, StorageUnavailable
from db import repositories as repo
from db.models import AuditEntry, ReportArtifact
from tests.conftest import ADMIN, EDITOR, VIEWER
from tests.s3server import moto_s3_server

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def demo(demo_session: Session) -> Session:
    return demo_session


def _text(pdf: bytes) -> str:
    """The PDF's text with whitespace (line wraps) collapsed to single spaces."""
    reader = PdfReader(io.BytesIO(pdf))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


CHART_TITLES = ("Forest plot: relative lift by metric and treatment", "Cumulative lift of ")


def _charts(text: str) -> int:
    """The charts in a report's text: each is drawn as vector lines and text (no image), its
    title extractable."""
    return sum(title in text for title in CHART_TITLES)


def _images(pdf: bytes) -> int:
    """Distinct embedded images (fpdf2 shares one resource dictionary across pages)."""
    return len({img.data for page in PdfReader(io.BytesIO(pdf)).pages for img in page.images})


def _report(session: Session, name: str) -> tuple[reports.ReportContent, str]:
    exp = registry.get_experiment_by_name(session, name=name)
    content = reports.assemble_report(session, experiment_id=exp.id, generated_by="tester",
                                      now=NOW)
    return content, _text(reports.render_pdf(content, charts=False))


def _flags(content: reports.ReportContent) -> set[str]:
    return {c.code for c in content.flags}


# --------------------------------------------------------------------------- summary and flags


def test_reports_summary_sentence_states_lift_ci_and_significance(demo: Session) -> None:
    exp = registry.get_experiment_by_name(demo, name="Checkout button colour")
    pdf = reports.build_report_pdf(demo, experiment_id=exp.id, generated_by="tester", now=NOW)
    text = _text(pdf)
    row = compute_results(demo, experiment_id=exp.id).rows(role="primary")[0]
    assert row.decision_state == "significant"
    expected = (
        f"Primary metric checkout_conversion: treatment vs control "
        f"{row.treatment_mean * 100:.2f}% vs {row.control_mean * 100:.2f}%, "
        f"lift {row.lift * 100:+.1f}%, 95% CI [{row.lift_ci_low * 100:+.1f}%, "
        f"{row.lift_ci_high * 100:+.1f}%]: statistically significant (Holm-adjusted p = "
        f"{row.adjusted_p_value:.3g} < 0.05)."
    )
    assert expected in text
    assert "Recommendation: Ship treatment" in text
    assert "Recorded decision: none yet." in text
    assert "What was tested: A high-contrast green 'Buy now' button" in text
    assert "Generated 2026-03-01 12:00 UTC by tester" in text
    for heading in ("Executive summary", "Risk flags", "Results", "Appendix", "Methods",
                    "Data sources and freshness"):
        assert heading in text
    assert _charts(text) == 2 and _images(pdf) == 0  # forest plot and cumulative lift, drawn
    assert "checkout_conversion (primary) treatment vs control" in text  # a forest row's label
    assert "Cumulative lift, % (95% CI)" in text


def test_reports_clean_experiment_raises_no_flag(demo: Session) -> None:
    content, text = _report(demo, "Checkout button colour")
    assert _flags(content) == set()
    assert "No risk flag was raised by the automatic checks." in text
    assert content.recommendation == "ship"
    assert {c.status for c in content.checks} == {"passed"}


def test_reports_flag_sample_ratio_mismatch(demo: Session) -> None:
    content, text = _report(demo, "Onboarding checklist")
    assert _flags(content) == {"srm"}
    assert content.recommendation == "investigate"
    assert "⚠ Sample ratio mismatch" in text
    assert "control 6,000, treatment 6,600" in text and "50%/50%" in text
    # the flag is the sequential test's (valid at every daily check), the chi-square beside it
    assert "sequential SRM p = " in text and "chi-square p = " in text
    assert "the effect is withheld: it cannot be trusted because of the sample ratio" in text
    # No lift, interval or p-value of the blocked experiment reaches the PDF, nor a chart.
    exp = registry.get_experiment_by_name(demo, name="Onboarding checklist")
    raw = compute_results(demo, experiment_id=exp.id)
    assert all(r.lift is None and r.blocked for r in raw.comparisons)
    assert "withheld" in text and "95% CI [" not in text
    assert _charts(_text(reports.render_pdf(content, charts=True))) == 0
    checkout, _ = _report(demo, "Checkout button colour")
    assert _charts(_text(reports.render_pdf(checkout))) == 2


def test_reports_flag_guardrail_breach(demo: Session) -> None:
    content, text = _report(demo, "Free shipping threshold")
    assert _flags(content) == {"guardrail_breach"}
    assert content.recommendation == "dont_ship"
    assert "⚠ Guardrail breach" in text
    assert "refund_rate is significantly worse in treatment" in text
    # Significant on the primary, but a guardrail breach: never a win.
    assert content.verdict is not None
    assert content.verdict.basis == "win_with_guardrail_breach"
    assert "Recommendation: Don't ship: treatment improves orders_per_user" in text
    assert "guardrail refund_rate (treatment) got significantly worse" in text


def test_reports_flag_underpowered_short_of_plan(demo: Session) -> None:
    content, text = _report(demo, "Pricing page redesign")
    assert _flags(content) == {"underpowered"}
    assert content.recommendation == "keep_running"
    assert "of the 20,000 planned units (40%)" in text
    assert "not the planned MDE of 5.0%" in text


def test_reports_flag_plan_deviation_after_launch(demo: Session) -> None:
    exp = registry.get_experiment_by_name(demo, name="Checkout button colour")
    registry.update_experiment(demo, experiment_id=exp.id, changes={"mde": 0.12},
                               expected_version=exp.version, actor=EDITOR,
                               reason="Finance asked for a bigger effect ✓")
    content, text = _report(demo, "Checkout button colour")
    assert _flags(content) == {"plan_deviation"}
    assert "1 change to the frozen plan after launch (mde)" in text
    assert "Finance asked for a bigger effect ✓" in text
    assert "mde: 0.1 → 0.12" in text  # the appendix lists every deviation


def test_reports_flag_read_early_when_fixed_test_concluded_short_of_plan(demo: Session) -> None:
    exp = registry.get_experiment_by_name(demo, name="Pricing page redesign")
    registry.transition_experiment(demo, experiment_id=exp.id, to_status="completed",
                                   expected_version=exp.version, actor=EDITOR, decision="ship")
    content, text = _report(demo, "Pricing page redesign")
    assert {"read_early", "underpowered"} <= _flags(content)
    assert "concluded at 40% of its planned sample" in text
    assert "Recorded decision: Ship" in text


def test_reports_flag_multiple_comparisons_with_count_and_method(demo: Session) -> None:
    content, text = _report(demo, "Recommendations carousel")
    assert _flags(content) == {"multiple_comparisons"}
    assert ("4 comparisons (2 metrics x 2 treatments) plus 2 guardrail tests, Holm-adjusted "
            "within each family; 2 treatments compete on the primary metric.") in text
    assert content.recommendation == "ship"
    assert "Ship carousel_top" in text
    assert "95% always-valid CI" in text


def test_reports_no_data_yet_says_so(demo: Session) -> None:
    content, text = _report(demo, "Social login")
    assert not content.has_data and content.snapshot is None
    assert "No metric data has been loaded for this experiment yet" in text
    assert "No recommendation" in text
    assert _flags(content) == set()
    pdf = reports.build_report_pdf(demo, experiment_id=content.experiment.id,
                                   generated_by="tester")
    assert _charts(_text(pdf)) == 0 and _images(pdf) == 0


# --------------------------------------------------------------------------- built with ingestion


def _experiment(session: Session, name: str, *, days: int, hypothesis: str = "",
                metric: str = "report_conversion") -> registry.ExperimentView:
    if not catalogue.list_metrics(session) or metric not in {
        m.name for m in catalogue.list_metrics(session)
    }:
        catalogue.create_metric(session, data={"name": metric, "kind": "binomial"}, actor=ADMIN)
    view = registry.create_experiment(session, actor=EDITOR, data={
        "name": name, "owner": "ünal.öztürk", "hypothesis": hypothesis or "It helps.",
        "primary_metric": metric, "planned_sample_size": 1000, "mde": 0.1,
        "variants": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
    })
    start = datetime.now(UTC).date() - timedelta(days=days + 1)
    return registry.transition_experiment(session, experiment_id=view.id, to_status="running",
                                          expected_version=view.version, actor=EDITOR, on=start)


def _load(session: Session, exp: registry.ExperimentView, rates: list[tuple[float, float]],
          n: int = 1500, metric: str = "report_conversion") -> None:
    assert exp.actual_start is not None
    rows = []
    for i, (control, treatment) in enumerate(rates):
        day: date = exp.actual_start + timedelta(days=i)
        for variant, rate in (("control", control), ("treatment", treatment)):
            conversions = round(n * rate)
            rows.append({"variant": variant, "date": day, "metric": metric, "n": n,
                         "sum": conversions, "sum_squares": conversions})
    ingest_records(session, experiment_id=exp.id, rows=rows, actor=EDITOR,
                   kind="aggregate_file", label="test.csv")


def test_reports_flag_novelty_drift(session: Session) -> None:
    exp = _experiment(session, "Report drift test", days=8)
    _load(session, exp, [(0.10, 0.16)] * 4 + [(0.10, 0.10)] * 4)
    content = reports.assemble_report(session, experiment_id=exp.id, generated_by="t", now=NOW)
    drift = next(c for c in content.checks if c.code == "drift")
    assert drift.status == "flagged"
    assert "likely a novelty effect" in drift.explanation
    assert "first half" in drift.explanation and "+60.0%" in drift.explanation
    exposures = next(c for c in content.checks if c.code == "multiple_exposures")
    assert exposures.status == "not_checked"  # pre-aggregated data cannot show it


def test_reports_stable_effect_does_not_drift(session: Session) -> None:
    exp = _experiment(session, "Report stable test", days=8)
    _load(session, exp, [(0.10, 0.12)] * 8)
    content = reports.assemble_report(session, experiment_id=exp.id, generated_by="t", now=NOW)
    assert next(c for c in content.checks if c.code == "drift").status == "passed"


def test_reports_render_unicode_and_wrap_long_text(session: Session) -> None:
    long = ("Größere Schaltflächen – Кнопка ≥ 5 % → μ-Effekt „überall“. " * 60).strip()
    name = "Büyük düğme ✓ — Ελληνικά κουμπιά"
    exp = _experiment(session, name, days=4, hypothesis=long)
    _load(session, exp, [(0.10, 0.11)] * 4)
    pdf = reports.build_report_pdf(session, experiment_id=exp.id, generated_by="zoë")
    text = _text(pdf)
    assert name in text
    assert "by zoë" in text
    assert text.count("Кнопка ≥ 5 % → μ-Effekt „überall“") >= 120  # summary + appendix
    assert len(PdfReader(io.BytesIO(pdf)).pages) >= 3


def test_reports_completed_experiment_shows_its_learnings(demo: Session) -> None:
    _content, text = _report(demo, "One-page checkout")
    assert "Learnings Removing the address step cut abandonment; mobile gained most." in text
    exp = registry.get_experiment_by_name(demo, name="Mobile express checkout")
    assert exp.status == "running"  # nothing learned yet: no section
    assert "Learnings" not in _report(demo, exp.name)[1]


def test_reports_running_experiment_without_data_has_no_recommendation(session: Session) -> None:
    exp = _experiment(session, "Report empty test", days=2)
    content = reports.assemble_report(session, experiment_id=exp.id, generated_by="t")
    assert content.recommendation == "none"
    assert "No recommendation yet: no metric data has been loaded" in content.summary_text


def test_reports_data_sources_come_from_the_ingest_ledger_not_the_audit_log(
    session: Session,
) -> None:
    """One line per source with its latest load, from ingest_loads: deleting the `ingest`
    audit entries and forging one changes neither the lines nor the exposure check."""
    exp = _experiment(session, "Report ledger test", days=4)
    assert exp.actual_start is not None
    _load(session, exp, [(0.10, 0.12)] * 4)
    _load(session, exp, [(0.10, 0.12)] * 4)  # the same source again: still one line
    ingest_records(session, experiment_id=exp.id, actor=EDITOR, kind="sql", label="warehouse",
                   rows=[{"variant": v, "date": exp.actual_start, "metric": "report_conversion",
                          "n": 1500, "sum": 150, "sum_squares": 150}
                         for v in ("control", "treatment")])
    before = reports.assemble_report(session, experiment_id=exp.id, generated_by="t", now=NOW)
    session.execute(delete(AuditEntry).where(AuditEntry.action == "ingest"))
    repo.add_audit(session, actor="x", entity_type="experiment", entity_id=exp.id,
                   action="ingest", changes={"source": [None, "user_file:forged.csv"]})
    session.commit()
    content = reports.assemble_report(session, experiment_id=exp.id, generated_by="t", now=NOW)

    assert content.data_sources == before.data_sources
    last = exp.actual_start + timedelta(days=3)
    loads = [line for line in content.data_sources if " daily rows, loaded " in line]
    assert [line.split(" loaded ")[0] for line in loads] == [
        f"aggregate_file:test.csv: days {exp.actual_start}..{last}, 8 daily rows,",
        f"sql:warehouse: days {exp.actual_start}..{exp.actual_start}, 2 daily rows,",
    ]
    assert all(line.endswith(f"by {EDITOR.name}.") for line in loads)
    exposures = next(c for c in content.checks if c.code == "multiple_exposures")
    assert exposures.status == "not_checked"


# --------------------------------------------------------------------------- storage and records


def test_reports_generate_stores_records_and_audits(session: Session, tmp_path: Path) -> None:
    exp = _experiment(session, "Report storage test", days=4)
    _load(session, exp, [(0.10, 0.12)] * 4)
    store = LocalArtifactStore(tmp_path)
    view = reports.generate_report(session, experiment_id=exp.id, actor=EDITOR, store=store)
    assert view.key.startswith(f"reports/experiment-{exp.id}/") and view.key.endswith(".pdf")
    assert view.created_by == EDITOR.name and view.experiment_name == "Report storage test"
    data = store.get(view.key)
    assert data.startswith(b"%PDF") and len(data) == view.size_bytes
    download = reports.download_report(session, report_id=view.id, store=store)
    assert download.content == data and download.report == view
    row = session.get(ReportArtifact, view.id)
    assert row is not None and row.sha256 == view.sha256 and row.size_bytes == len(data)
    second = reports.generate_report(session, experiment_id=exp.id, actor=EDITOR, store=store)
    assert [r.id for r in reports.list_reports(session, experiment_id=exp.id)] == [
        second.id, view.id]
    audit = session.scalars(select(AuditEntry).where(
        AuditEntry.entity_id == exp.id, AuditEntry.action == "report")).all()
    assert [a.changes["report"][1] for a in audit] == [view.key, second.key]
    assert store.list(f"reports/experiment-{exp.id}/") == sorted([view.key, second.key])


def test_reports_viewer_cannot_generate(session: Session, tmp_path: Path) -> None:
    exp = _experiment(session, "Report viewer test", days=2)
    with pytest.raises(PermissionDenied, match="generate reports"):
        reports.generate_report(session, experiment_id=exp.id, actor=VIEWER,
                                store=LocalArtifactStore(tmp_path))


def test_reports_nothing_recorded_when_the_store_fails(session: Session, tmp_path: Path) -> None:
    exp = _experiment(session, "Report failing store", days=2)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    with pytest.raises(StorageUnavailable, match="ENOTDIR.*nothing was recorded"):
        reports.generate_report(session, experiment_id=exp.id, actor=EDITOR,
                                store=LocalArtifactStore(blocker))
    assert reports.list_reports(session, experiment_id=exp.id) == []


def test_reports_download_detects_a_tampered_artifact(session: Session, tmp_path: Path) -> None:
    exp = _experiment(session, "Report tamper test", days=2)
    store = LocalArtifactStore(tmp_path)
    view = reports.generate_report(session, experiment_id=exp.id, actor=EDITOR, store=store)
    path = tmp_path / view.key
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(reports.ArtifactCorrupt, match="checksum"):
        reports.download_report(session, report_id=view.id, store=store)


def test_reports_generate_on_s3(session: Session) -> None:
    import boto3

    exp = _experiment(session, "Report S3 test", days=4)
    _load(session, exp, [(0.10, 0.12)] * 4)
    with moto_s3_server() as endpoint:
        bucket = f"reports-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        store = S3ArtifactStore(bucket, "experimentos", endpoint_url=endpoint)
        view = reports.generate_report(session, experiment_id=exp.id, actor=EDITOR, store=store)
        assert store.list() == [view.key]
        download = reports.download_report(session, report_id=view.id, store=store)
        assert download.content.startswith(b"%PDF") and len(download.content) == view.size_bytes
        assert "Report S3 test" in _text(download.content)


# --------------------------------------------------------------------------- portfolio and CLI


def test_reports_cli_writes_the_pdf_and_records_it(demo_db_url: str, tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    db.write_bytes(Path(demo_db_url.removeprefix("sqlite:///")).read_bytes())
    out = tmp_path / "checkout.pdf"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}",
           "ARTIFACTS_URL": str(tmp_path / "artifacts")}
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "report", "--experiment", "Checkout button colour",
         "--out", str(out)], cwd=PROJECT_ROOT, env=env, text=True, capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "written to" in done.stdout
    assert "Primary metric checkout_conversion" in _text(out.read_bytes())
    stored = list((tmp_path / "artifacts").rglob("*.pdf"))
    assert len(stored) == 1 and stored[0].read_bytes() == out.read_bytes()
    missing = subprocess.run(
        [sys.executable, "-m", "core.cli", "report", "--experiment", "No such thing",
         "--out", str(out)], cwd=PROJECT_ROOT, env=env, text=True, capture_output=True,
        timeout=300,
    )
    assert missing.returncode == 2 and "No experiment named 'No such thing'" in missing.stderr


def test_reports_download_name_is_slug_and_date() -> None:
    when = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)
    assert reports.report_filename("Checkout: button colour!", when) == (
        "checkout-button-colour-2026-12-02.pdf")
    assert reports.report_filename("Ünïcode café test", when) == "unicode-cafe-test-2026-12-02.pdf"
    assert reports.report_filename("!!!", when) == "experiment-2026-12-02.pdf"


def test_reports_show_the_bayesian_readout_beside_the_frequentist_one(demo: Session) -> None:
    content, text = _report(demo, "Checkout button colour")
    assert content.snapshot is not None
    row = content.snapshot.rows(role="primary")[0]
    assert row.bayesian is not None
    assert "Bayesian readout" in text
    assert f"{row.bayesian.chance_to_beat_control * 100:.1f}%" in text
    assert "95% credible interval" in text and "flat" in text


def test_reports_show_segments_as_exploratory(demo: Session) -> None:
    content, text = _report(demo, "Mobile express checkout")
    assert {s.dimension for s in content.segments} == {"platform", "country"}
    assert "Segments by platform (exploratory)" in text
    assert "no ship decision is made from a slice" in text
    platform = next(s for s in content.segments if s.dimension == "platform")
    primary = content.experiment.primary_metric
    values = {c.value for c in platform.comparisons if c.metric == primary}
    assert values and all(v in text for v in values)
    # Experiments without dimension data have no segment section.
    plain, plain_text = _report(demo, "Checkout button colour")
    assert plain.segments == () and "Segments by" not in plain_text


def test_reports_state_the_plans_one_sided_test_and_guardrail_margin(demo: Session) -> None:
    """The PDF says a one-sided primary was tested one-sided, shows its interval open-ended,
    and states a guardrail's non-inferiority margin (demo: Infinite scroll on search, Search
    ranking v2)."""
    _content, text = _report(demo, "Infinite scroll on search")
    assert ("Plan: Primary metric revenue_per_session: one-sided test, as planned (treatment > "
            "control)") in text
    assert re.search(r"\[\+\d+\.\d%, \+∞\)", text), text[:3000]
    _content, text = _report(demo, "Search ranking v2")
    assert "Plan: Guardrail page_load_time_ms: non-inferiority margin +2.0%" in text


def test_reports_methods_name_every_test_in_words(demo: Session) -> None:
    # the methods section used a map of its own whose keys ("z") no test has: "wald_z" and
    # "delta_ratio" reached the PDF raw
    raw = ("wald_z", "delta_ratio", "welch_cuped", "mover_cp", "fisher_exact",
           "regression_adjusted")
    for name, words in [("Infinite scroll on search", "delta-method z-test for a ratio"),
                        ("Trust badges on cart", "Wald z-test"),
                        ("Annual plan discount", "Welch t-test on CUPED-adjusted means"),
                        ("Checkout button colour",
                         "t-test on regression-adjusted means (Lin 2013, several covariates)")]:
        _content, text = _report(demo, name)
        methods = text[text.index("Methods"):]
        assert words in methods, methods[:600]
        assert not [r for r in raw if r in text], methods[:600]


# --------------------------------------------------------------------------- issue 22 (5, 6)


def test_reports_say_why_the_bayesian_readout_differs_from_the_decision(demo: Session) -> None:
    """Recommendations carousel (sequential): page_load_time_ms reads "no significant harm so
    far" with an always-valid interval while its credible interval lies below 0 (better): the
    PDF says in one sentence why the two differ, under the Bayesian table."""
    content, text = _report(demo, "Recommendations carousel")
    assert content.snapshot is not None
    row = next(r for r in content.snapshot.comparisons if r.metric == "page_load_time_ms")
    assert row.bayesian is not None and row.bayesian.ci_high < 0
    assert row.decision_state == "too_early" and row.sequential
    sentence = ("The Bayesian readout differs from the decision because the decision's interval "
                "is always-valid (it holds however often the results are looked at, so it is "
                "wider than a one-look interval, above all before the planned sample), while "
                "the Bayesian readout reads the data as a single look.")
    assert f"page_load_time_ms ({row.treatment} vs {row.control}): {sentence}" in text
    # agreeing readouts get no such sentence
    _content, agreeing = _report(demo, "Checkout button colour")
    assert "Bayesian readout differs" not in agreeing


def test_reports_show_no_variation_and_a_guardrail_improvement(session: Session) -> None:
    """A secondary with no variation reads "Cannot be tested: no variation" (no lift, no p) and
    is named as left out of the correction; a guardrail that improved reads Significant."""
    from tests.core.analysis.test_results_inference import binomial, normal, put
    from tests.core.data.test_ingestion import make_experiment

    exp = make_experiment(session, name="Flat and better", primary="conv",
                          guardrails=("refunds",), secondaries=("revenue",), planned=100)
    put(session, exp, "conv", [binomial(10000, 1000), binomial(10000, 1100)])
    put(session, exp, "refunds", [binomial(10000, 500), binomial(10000, 380)], assign=False)
    put(session, exp, "revenue", [normal(10000, 0.0, 0.0), normal(10000, 0.0, 0.0)],
        assign=False)
    content = reports.assemble_report(session, experiment_id=exp, generated_by="tester", now=NOW)
    text = _text(reports.render_pdf(content, charts=False))
    assert content.snapshot is not None
    states = {r.metric: r.decision_state for r in content.snapshot.comparisons}
    assert states == {"conv": "significant", "refunds": "significant",
                      "revenue": "not_testable"}
    assert "revenue (secondary) treatment vs control 0 (n=10,000) 0 (n=10,000) — — — " \
           "Cannot be tested: no variation" in text
    assert "(revenue left out: cannot be tested, no variation)" in text
    # the improvement test's interval, open at the far (worse) end, and its state
    assert re.search(r"refunds \(guardrail\) treatment vs control 5\.00% \(n=10,000\) 3\.80% "
                     r"\(n=10,000\) −24\.0% \(−∞, −\d+\.\d%\] \S+ Significant ", text)


def test_reports_quantile_metric_shows_its_quantiles_lift_and_method(
        session: Session, tmp_path: Path) -> None:
    from core.data.ingestion import ingest_file
    from core.stats import quantile_stats, quantile_test
    from tests.conftest import EDITOR
    from tests.core.data.test_ingestion import write_parquet
    from tests.core.data.test_ingestion_quantile import quantile_experiment, quantile_units

    exp = quantile_experiment(session, name="Faster pages")
    cols = quantile_units(2000, 2000, slower=1.1)
    ingest_file(session, path=write_parquet(tmp_path / "q.parquet", cols), experiment_id=exp,
                actor=EDITOR)
    content = reports.assemble_report(session, experiment_id=exp, generated_by="t", now=NOW)
    text = _text(reports.render_pdf(content, charts=False))
    x, arm = cols["p90_load_ms"].astype(float), cols["variant"]
    ref = quantile_test(quantile_stats(x[arm == "control"], 0.9),
                        quantile_stats(x[arm == "treatment"], 0.9), alternative="greater")
    assert "p90_load_ms (guardrail)" in text
    assert f"{fmt.number(ref.control_mean)} (n=2,000)" in text
    assert fmt.signed_percent(ref.lift) in text
    assert "Quantile metric p90_load_ms" in text and "Woodruff 1952" in text


def test_reports_show_the_variance_reduction_of_each_adjusted_metric(demo: Session) -> None:
    """Checkout button colour's data carries unit attributes (cov_tenure_months,
    cov_sessions_last_30d): every metric is regression-adjusted, and the PDF shows the variance
    each adjustment removed ("CUPED: −34% variance" for revenue, with its pre-period too)."""
    content, text = _report(demo, "Checkout button colour")
    assert content.snapshot is not None
    rows = {c.metric: c for c in content.snapshot.comparisons}
    rev = rows["revenue_per_user"]
    assert rev.test == "regression_adjusted"
    assert rev.variance_reduction is not None and rev.variance_reduction > 0.25
    assert rev.adjustment == f"CUPED: −{rev.variance_reduction:.0%} variance"
    flat = " ".join(text.split())
    assert "Variance reduction: " in flat
    assert f"revenue_per_user: {rev.adjustment}" in flat


def test_reports_show_the_segment_scan_as_worth_a_look_and_srm_per_value(demo: Session) -> None:
    content, text = _report(demo, "Mobile express checkout")
    assert content.scan is not None and content.scan.tested > 0
    look = {(f.dimension, f.value, f.metric) for f in content.scan.worth_a_look}
    # the demo's effect lives on ios and android, none on web: web differs from the rest
    assert ("platform", "web", "checkout_conversion") in look
    assert "Worth a look: automatic segment scan (not a ship decision)" in text
    assert "platform = web" in text and "Holm" in text
    assert content.recommendation == _report(demo, "Mobile express checkout")[0].recommendation
    by_value = next(c for c in content.checks if c.code == "srm_by_value")
    assert by_value.status == "passed" and "platform" in by_value.explanation
    plain, plain_text = _report(demo, "Checkout button colour")
    assert "srm_by_value" not in {c.code for c in plain.checks}
    assert "Worth a look" not in plain_text


def test_reports_srm_by_value_flags_a_broken_slice() -> None:
    from core.analysis.segments import SegmentBreakdown, SegmentSlice
    from core.reports.risks import srm_by_value_check

    slices = (SegmentSlice("country", "DE", ("DE",), 4600, 1e-9, True, 2e-6, 4e-6),
              SegmentSlice("country", "FR", ("FR",), 4000, 0.8, False, 1.0, 1.0))
    seg = SegmentBreakdown("country", 10, "holm", 0.05, slices, ())
    check = srm_by_value_check([seg])
    assert check.status == "flagged" and "country = DE" in check.explanation
    assert srm_by_value_check([]).status == "not_checked"
