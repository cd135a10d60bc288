"""The warehouse commands of `python -m core.cli`, on a SQLite app database and an embedded
DuckDB warehouse: define a connection, sources and metrics, attach an experiment, refresh it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core import cli, registry
from db.migrate import upgrade
from db.session import make_engine
from tests.conftest import EDITOR
from tests.core.warehouse import duckdb_warehouse as wh

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    engine = make_engine(url)
    monkeypatch.setattr(cli, "_session", lambda: Session(engine, expire_on_commit=False))

    def call(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    yield call
    engine.dispose()


def test_cli_warehouse_define_attach_and_refresh(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    wh.write_warehouse(path, *wh.tables())
    code, _out, err = run("add-connection", "--name", "shop",
                          "--url", "postgresql://me:secret@db/shop")
    assert code == 2 and "holds a password" in err and "${NAME}" in err
    code, out, err = run("add-connection", "--name", "shop", "--url", f"duckdb:///{path}")
    assert code == 0, err
    code, out, err = run("test-connection", "--name", "shop")
    assert code == 0 and out.startswith("Connected"), err
    sql_file = tmp_path / "exposures.sql"
    sql_file.write_text(wh.ASSIGNMENT_SQL.replace(" FROM", ", length(unit_id) AS tenure FROM")
                        + ";\n")
    code, out, err = run("add-assignment-source", "--name", "exposures", "--connection", "shop",
                         "--sql-file", str(sql_file), "--dimensions", "platform",
                         "--covariates", "tenure")
    assert code == 0 and "dimensions: platform; covariates: tenure" in out, err
    code, out, err = run("add-fact-source", "--name", "orders", "--connection", "shop",
                         "--sql", wh.ORDERS_SQL, "--columns", "revenue, items")
    assert code == 0 and "columns: revenue, items" in out, err
    code, out, err = run("add-metric", "--name", "buyers", "--fact-source", "orders",
                         "--aggregation", "any", "--window-days", "7")
    assert code == 0 and "'buyers' (binomial) added, computed from fact source 'orders'" in out
    code, out, err = run("add-metric", "--name", "spend", "--fact-source", "orders",
                         "--aggregation", "ratio", "--column", "revenue", "--cuped-days", "14")
    # a ratio needs its denominator; its cuped_days is allowed (its numerator's pre-period)
    assert code == 2 and "denominator_column" in err and "cuped_days" not in err
    code, out, err = run("add-metric", "--name", "spend", "--fact-source", "orders",
                         "--aggregation", "sum", "--column", "revenue", "--window-days", "7",
                         "--cuped-days", "14", "--unit", "EUR")
    assert code == 0, err
    code, out, err = run("add-metric", "--name", "refunds", "--kind", "mean",
                         "--lower-is-better")
    assert code == 0 and "loaded from files or SQL" in out, err
    code, out, err = run("add-metric", "--name", "spend_p90", "--fact-source", "orders",
                         "--aggregation", "sum", "--column", "revenue", "--quantile-p", "0.9")
    assert code == 0 and "'spend_p90' (quantile) added, computed from fact source" in out, err

    with cli._session() as session:
        view = registry.create_experiment(session, data={
            "name": "Checkout v2", "owner": "o", "hypothesis": "It helps.",
            "primary_metric": "buyers", "secondary_metrics": ["spend"],
            "variants": [{"name": "control", "weight": 0.5},
                         {"name": "treatment", "weight": 0.5}],
            "planned_sample_size": 1000}, actor=EDITOR)
        registry.transition_experiment(session, experiment_id=view.id, to_status="running",
                                       expected_version=1, actor=EDITOR, on=wh.start_day())
    code, out, err = run("refresh-warehouse", "--experiment", "Checkout v2")
    assert code == 2 and "attach" in err
    code, out, err = run("attach-warehouse", "--experiment", "Checkout v2",
                         "--assignment-source", "exposures", "--key", wh.KEY)
    assert code == 2 and "plan deviation and needs a reason" in err
    code, out, err = run("attach-warehouse", "--experiment", "Checkout v2",
                         "--assignment-source", "exposures", "--key", wh.KEY,
                         "--reason", "fed from the warehouse from now on")
    assert code == 0 and f"under key '{wh.KEY}'" in out, err
    code, out, err = run("refresh-warehouse", "--experiment", "Checkout v2", "--show-sql")
    assert code == 0, err
    assert "398 units, 2 in more than one variant (excluded)" in out
    assert f"exposure days recomputed: orders from {wh.start_day()}" in out
    assert "daily rows stored" in out and "snapshot" in out
    assert "assignment source 'exposures':" in out and "fact source 'orders':" in out
    assert "/* ExperimentOS experiment" in out  # the SQL that ran
    code, out, err = run("refresh-warehouse", "--experiment", "Checkout v2", "--full")
    assert code == 0 and "nothing changed" in out, err


def test_cli_add_metric_quantile_takes_its_level(run: Run) -> None:
    code, out, err = run("add-metric", "--name", "p90_load_ms", "--kind", "quantile",
                         "--quantile-p", "0.9", "--unit", "ms", "--lower-is-better")
    assert code == 0 and "'p90_load_ms' (quantile) added" in out, err
    code, out, err = run("add-metric", "--name", "p_bad", "--kind", "quantile")
    assert code == 2 and "quantile_p" in err
