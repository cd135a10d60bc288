"""Reports page (AppTest) on the demo data: viewers list and download, editors generate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from core.config import get_settings
from db.models import Experiment, ReportArtifact
from db.session import make_engine, session_factory
from tests.apptest import login, open_page


def _downloads(at) -> list[str]:  # type: ignore[no-untyped-def]
    return [d.proto.label for d in at.get("download_button")]


def _experiment_id(url: str, name: str) -> int:
    engine = make_engine(url)
    with session_factory(engine)() as s:
        found = s.scalar(select(Experiment.id).where(Experiment.name == name))
    engine.dispose()
    assert found is not None
    return found


@pytest.fixture
def artifacts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "artifacts"
    monkeypatch.setenv("ARTIFACTS_URL", str(folder))
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def test_reports_page_viewer_lists_and_exports_without_write_controls(
    demo_app: str, artifacts: Path
) -> None:
    at = open_page(login("demo-viewer"), "reports")
    assert not at.exception, at.exception
    assert at.title[0].value == "Reports"
    assert "Generate report" not in {b.label for b in at.button}
    assert any("read-only access" in c.value for c in at.caption)
    assert any("No report has been generated" in i.value for i in at.info)
    assert _downloads(at) == ["Export portfolio (CSV)"]


def test_reports_page_editor_generates_lists_and_downloads(
    fresh_demo_app: str, artifacts: Path
) -> None:
    at = open_page(login("demo-editor"), "reports")
    checkout = _experiment_id(fresh_demo_app, "Checkout button colour")
    at.selectbox(key="rep_experiment").set_value(checkout).run()
    next(b for b in at.button if b.label == "Generate report").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    today = datetime.now(UTC).date().isoformat()
    assert any(s.value.startswith(f"Report generated: checkout-button-colour-{today}.pdf (")
               for s in at.success), [s.value for s in at.success]
    table = at.dataframe[0].value
    assert len(table) == 1 and list(table["By"]) == ["demo-editor"]
    assert _downloads(at) == ["Download PDF", "Export portfolio (CSV)"]
    engine = make_engine(fresh_demo_app)
    with session_factory(engine)() as s:
        row = s.scalar(select(ReportArtifact).where(ReportArtifact.experiment_id == checkout))
    engine.dispose()
    assert row is not None and row.created_by == "demo-editor"
    stored = artifacts / row.key
    assert stored.is_file() and stored.stat().st_size == row.size_bytes
    # a viewer now sees the same report and can download it
    viewer = open_page(login("demo-viewer"), "reports")
    viewer.selectbox(key="rep_experiment").set_value(checkout).run()
    assert len(viewer.dataframe[0].value) == 1
    assert "Download PDF" in _downloads(viewer)


def test_reports_page_opens_the_deep_linked_experiment(demo_app: str, artifacts: Path) -> None:
    search = _experiment_id(demo_app, "Search ranking v2")
    at = login("demo-viewer")
    at.query_params["experiment"] = str(search)
    open_page(at, "reports")
    assert not at.exception
    assert at.selectbox(key="rep_experiment").value == search
    assert at.query_params["experiment"] == str(search)


def test_reports_page_says_there_is_no_such_experiment(demo_app: str, artifacts: Path) -> None:
    """Issue 23: an id that names no experiment opens no other one's reports."""
    for value, said in (("999999", "There is no experiment #999999"),
                        ("abc", "“abc” is not an experiment number")):
        at = login("demo-editor")
        at.query_params["experiment"] = value
        at = open_page(at, "reports")
        assert not at.exception, at.exception
        assert at.selectbox(key="rep_experiment").value is None
        assert at.query_params["experiment"] == value
        assert any(said in w.value for w in at.warning)
        assert "Generate report" not in {b.label for b in at.button}
        assert [s.value for s in at.subheader] == ["Portfolio export"]
