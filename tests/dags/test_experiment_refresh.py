"""The `experiment_refresh` DAG: it loads cleanly, passes ruff's Airflow 3 rules, and a real
`dag.test()` run refreshes a seeded app database, on SQLite and on PostgreSQL — twice for the same
interval, the second run changing nothing; a domain error fails its task at once, without retries.

Airflow runs in subprocesses with ``AIRFLOW_HOME`` in a temp folder (its metadata database on
SQLite there, created by ``airflow db migrate``), so this process's configuration stays clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.data.metric_sources import set_metric_source
from core.demo import seed_demo
from core.workflows import refresh
from db.migrate import upgrade
from db.models import (
    AssignmentDailyCount,
    AuditEntry,
    Experiment,
    MetricDailyStat,
    ReportArtifact,
    ResultSnapshot,
)
from db.session import make_engine, session_factory
from tests.conftest import ADMIN, create_postgres_database, drop_postgres_database
from tests.core.workflows.test_refresh import drop_demo_day

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
BIN = Path(sys.executable).parent
DAG_ID = "experiment_refresh"
RESULT = "RESULT "

LOAD_DAG = """
import json
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder={dags!r})
dag = bag.dags.get({dag_id!r})
facts = {{"import_errors": {{k: str(v) for k, v in bag.import_errors.items()}}}}
if dag is not None:
    facts.update(
        dag_ids=sorted(bag.dags),
        tags=sorted(dag.tags),
        catchup=dag.catchup,
        max_active_runs=dag.max_active_runs,
        retries=dag.default_args.get("retries"),
        retry_delay=dag.default_args["retry_delay"].total_seconds(),
        task_retries={{t.task_id: t.retries for t in dag.tasks}},
        doc_md=dag.doc_md,
        timetable=type(dag.timetable).__name__,
        expression=dag.timetable.expression,
        timezone=str(dag.timetable.timezone),
        tasks=sorted(t.task_id for t in dag.tasks),
    )
    rejected = {{"experiment_id": 1, "experiment_name": "E", "flags": [],
                "ready_for_decision": False, "report_key": None, "new_report": False,
                "rejected": ["incoming/experiment-1/2026-01-01.csv: file: bad"]}}
    try:
        dag.get_task("summarise").python_callable([rejected], [1])
    except RuntimeError as exc:
        facts["summarise_error"] = str(exc)
print({result!r} + json.dumps(facts))
"""

RUN_DAG = """
import json
from datetime import timedelta
import pendulum
from airflow.dag_processing.dagbag import DagBag
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

dag = DagBag(dag_folder={dags!r}).dags[{dag_id!r}]
for task in dag.tasks:  # a retry waits seconds here, not minutes: a wrong retry shows, fast
    task.retry_delay = timedelta(seconds=1)
run = dag.test(logical_date=pendulum.parse({logical_date!r}))
with create_session() as session:
    rows = session.scalars(XComModel.get_many(
        run_id=run.run_id, key="return_value", task_ids="summarise", dag_ids={dag_id!r}
    )).all()
    summary = [XComModel.deserialize_value(r) for r in rows]
    tries = [
        {{"task_id": ti.task_id, "map_index": ti.map_index, "state": str(ti.state),
          "try_number": ti.try_number}}
        for ti in run.get_task_instances(session=session)
    ]
print({result!r} + json.dumps({{
    "state": str(run.state),
    "start": run.data_interval_start.isoformat(),
    "end": run.data_interval_end.isoformat(),
    "summary": summary[0] if summary else None,
    "tries": tries,
}}))
"""


def _python(env: dict[str, str], code: str, cwd: Path, timeout: int = 240) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    assert proc.returncode == 0 and lines, (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n"
        f"{proc.stderr[-6000:]}"
    )
    return json.loads(lines[-1][len(RESULT):])


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("airflow_home")


def _airflow_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        PYTHONPATH=str(REPO),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        **extra,
    )
    return env


def test_experiment_refresh_dagbag_loads_without_errors(airflow_home: Path) -> None:
    facts = _python(
        _airflow_env(airflow_home),
        LOAD_DAG.format(dags=str(DAGS), dag_id=DAG_ID, result=RESULT),
        cwd=airflow_home,
    )
    assert facts["import_errors"] == {}
    assert facts["dag_ids"] == [DAG_ID]
    assert {"experimentos", "refresh"} <= set(facts["tags"])
    assert facts["catchup"] is False
    assert facts["max_active_runs"] == 1
    assert facts["retries"] >= 1 and facts["retry_delay"] > 0
    assert all(r >= 1 for t, r in facts["task_retries"].items() if t != "summarise")
    assert facts["doc_md"] and "### Experiment refresh" in facts["doc_md"]
    assert facts["timetable"] == "CronDataIntervalTimetable"
    assert (facts["expression"], facts["timezone"]) == ("0 0 * * *", "UTC")
    assert facts["tasks"] == [
        "due", "refresh_experiment.ingest", "refresh_experiment.recompute",
        "refresh_experiment.report", "summarise",
    ]
    # A rejected file drop fails the run at the end, naming the file and the problem.
    assert facts["summarise_error"] == (
        "rejected drop incoming/experiment-1/2026-01-01.csv: file: bad")


def test_experiment_refresh_passes_ruff_airflow3_rules() -> None:
    proc = subprocess.run(
        [str(BIN / "ruff"), "check", "--preview", "--select", "AIR3", "--no-cache", str(DAGS)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_experiment_refresh_dag_imports_nothing_heavy_at_parse_time(airflow_home: Path) -> None:
    """Parsing the DAG file loads neither core nor the scientific stack (tasks import them)."""
    code = (
        "import runpy, sys, json\n"
        f"runpy.run_path({str(DAGS / 'experiment_refresh.py')!r})\n"
        "heavy = sorted(m for m in ('core', 'db', 'numpy', 'scipy', 'pandas', 'duckdb',"
        " 'sqlalchemy.orm') if m in sys.modules)\n"
        f"print({RESULT!r} + json.dumps(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_airflow_env(airflow_home), cwd=airflow_home,
        capture_output=True, text=True, timeout=120,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    loaded = json.loads(lines[-1][len(RESULT):])
    assert not {"core", "db", "numpy", "scipy", "pandas", "duckdb"} & set(loaded)


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def airflow_db(airflow_home: Path) -> Path:
    """Airflow's metadata database (SQLite in ``airflow_home``), migrated once per module."""
    proc = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=_airflow_env(airflow_home),
        cwd=airflow_home, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return airflow_home


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def seeded_database(request: pytest.FixtureRequest, tmp_path: Path
                    ) -> Iterator[tuple[str, date]]:
    """A migrated app database of the test's own (the default SQLite file, or a throwaway
    PostgreSQL database) holding the demo portfolio up to yesterday; its URL and today."""
    if request.param == "sqlite":
        url: str | None = f"sqlite:///{tmp_path / 'experimentos.db'}"
    else:
        url = create_postgres_database("experimentos_dag")
        if url is None:
            pytest.skip("no PostgreSQL server (required when CI=true)")
    assert url is not None
    today = datetime.now(UTC).date()
    try:
        upgrade(url)
        engine = make_engine(url)
        with session_factory(engine)() as session:
            seed_demo(session, today=today)
        engine.dispose()
        yield url, today
    finally:
        if url.startswith("postgresql"):
            drop_postgres_database(url)


def _state(session: Session) -> dict[str, Any]:
    """Everything a refresh may write, as plain values."""
    return {
        "snapshots": session.execute(
            select(ResultSnapshot.id, ResultSnapshot.experiment_id, ResultSnapshot.as_of,
                   ResultSnapshot.fingerprint, ResultSnapshot.computed_at)
            .order_by(ResultSnapshot.id)
        ).all(),
        "reports": session.execute(
            select(ReportArtifact.id, ReportArtifact.key, ReportArtifact.sha256)
            .order_by(ReportArtifact.id)
        ).all(),
        "audit": session.execute(
            select(AuditEntry.id, AuditEntry.action).order_by(AuditEntry.id)
        ).all(),
        "stats": session.execute(
            select(MetricDailyStat.id, MetricDailyStat.n, MetricDailyStat.sum,
                   MetricDailyStat.loaded_at).order_by(MetricDailyStat.id)
        ).all(),
        "assignments": session.execute(
            select(AssignmentDailyCount.id, AssignmentDailyCount.units,
                   AssignmentDailyCount.loaded_at).order_by(AssignmentDailyCount.id)
        ).all(),
    }


@pytest.mark.slow
def test_experiment_refresh_dag_test_refreshes_then_a_rerun_changes_nothing(
    seeded_database: tuple[str, date], airflow_db: Path, tmp_path: Path
) -> None:
    url, today = seeded_database
    day = today - timedelta(days=1)  # the interval [day, today) holds the last seeded day
    artifacts = tmp_path / "artifacts"
    env = _airflow_env(airflow_db, DATABASE_URL=url, ARTIFACTS_URL=str(artifacts))

    engine = make_engine(url)
    with session_factory(engine)() as session:
        ids = {e.name: e.id for e in session.scalars(select(Experiment))}
        search, pricing, checkout = (ids["Search ranking v2"], ids["Pricing page redesign"],
                                     ids["Checkout button colour"])
        # The SQL-sourced experiment lost its last day: the run must pull it again.
        session.execute(delete(MetricDailyStat).where(
            MetricDailyStat.experiment_id == search, MetricDailyStat.day == day))
        session.commit()
        # So did a file-fed one, whose day arrives as a file dropped in the artifact store.
        drop = drop_demo_day(session, artifacts, "Checkout button colour", day)
        # Pricing (day 5 of its run) refreshes weekly: not due; Checkout (day 21) is due.
        refresh.set_refresh_schedule(session, experiment_id=pricing, every_days=7, actor=ADMIN)
        refresh.set_refresh_schedule(session, experiment_id=checkout, every_days=7, actor=ADMIN)
        running = set(session.scalars(select(Experiment.id).where(
            Experiment.status == "running")))

    run = RUN_DAG.format(dags=str(DAGS), dag_id=DAG_ID, result=RESULT,
                         logical_date=today.isoformat())
    first = _python(env, run, cwd=airflow_db)
    assert first["state"] == "success", first["tries"]
    assert all(t["try_number"] == 1 for t in first["tries"]), first["tries"]
    assert (first["start"][:10], first["end"][:10]) == (day.isoformat(), today.isoformat())

    due = running - {pricing}
    with session_factory(engine)() as session:
        after_first = _state(session)
        # The demo seed stored a first snapshot of each experiment; the run adds its own.
        snapshots = session.scalars(
            select(ResultSnapshot).where(ResultSnapshot.computed_by == "airflow")).all()
        assert {s.experiment_id for s in snapshots} == due
        assert all(s.as_of == day for s in snapshots)
        restored = session.scalars(select(MetricDailyStat).where(
            MetricDailyStat.experiment_id == search, MetricDailyStat.day == day)).all()
        assert len(restored) == 6  # 2 variants x 3 metrics, back from the SQL source
        dropped = session.scalars(select(MetricDailyStat).where(
            MetricDailyStat.experiment_id == checkout, MetricDailyStat.day == day)).all()
        assert len(dropped) == 6 and {r.source for r in dropped} == {f"user_file:{drop}"}
        reports = session.scalars(select(ReportArtifact)).all()
        ready = session.scalars(select(AuditEntry).where(
            AuditEntry.action == refresh.READY_ACTION)).all()
    engine.dispose()

    outcomes = {o["experiment_name"]: o for o in first["summary"]}
    assert set(outcomes) == {n for n, i in ids.items() if i in due}
    assert "srm" in outcomes["Onboarding checklist"]["flags"]
    assert not outcomes["Onboarding checklist"]["ready_for_decision"]
    assert "guardrail_breach" in outcomes["Free shipping threshold"]["flags"]
    assert "primary_significant" in outcomes["Recommendations carousel"]["flags"]
    ready_names = {n for n, o in outcomes.items() if o["ready_for_decision"]}
    assert ready_names == {"Checkout button colour", "Search ranking v2",
                           "Free shipping threshold", "Recommendations carousel",
                           "Infinite scroll on search", "Mobile express checkout",
                           # fed from the demo warehouse, refreshed by the same DAG
                           "One-tap reorder", "Search filters v2", "Product bundles"}
    assert all(outcomes[n]["new_report"] and outcomes[n]["report_key"] for n in ready_names)
    assert {r.key for r in reports} == {outcomes[n]["report_key"] for n in ready_names}
    assert all((artifacts / r.key).is_file() and r.created_by == "airflow" for r in reports)
    assert len(ready) == len(ready_names)
    files = sorted(p.relative_to(artifacts) for p in artifacts.rglob("*") if p.is_file())

    second = _python(env, run, cwd=airflow_db)
    assert second["state"] == "success", second["tries"]
    assert second["start"] == first["start"] and second["end"] == first["end"]
    engine = make_engine(url)
    with session_factory(engine)() as session:
        assert _state(session) == after_first
    engine.dispose()
    assert sorted(p.relative_to(artifacts) for p in artifacts.rglob("*") if p.is_file()) == files
    assert Path(drop) in files  # reports and the drop, nothing more
    again = {o["experiment_name"]: o for o in second["summary"]}
    assert {n: o["report_key"] for n, o in again.items()} == {
        n: o["report_key"] for n, o in outcomes.items()
    }
    assert not any(o["new_report"] for o in again.values())


@pytest.mark.slow
@pytest.mark.parametrize("seeded_database", ["sqlite"], indirect=True)
def test_experiment_refresh_a_domain_error_fails_its_task_at_once(
    seeded_database: tuple[str, date], airflow_db: Path, tmp_path: Path
) -> None:
    """An experiment whose SQL source returns no usable rows (InvalidInput) fails its ingest
    on the first try — retrying cannot fix bad data — while the others are refreshed."""
    url, today = seeded_database
    engine = make_engine(url)
    with session_factory(engine)() as session:
        search = session.scalars(select(Experiment.id).where(
            Experiment.name == "Search ranking v2")).one()
        set_metric_source(session, experiment_id=search, query="SELECT 1 AS one", actor=ADMIN)
    engine.dispose()
    env = _airflow_env(airflow_db, DATABASE_URL=url, ARTIFACTS_URL=str(tmp_path / "artifacts"))
    run = _python(env, RUN_DAG.format(dags=str(DAGS), dag_id=DAG_ID, result=RESULT,
                                      logical_date=today.isoformat()), cwd=airflow_db)

    assert run["state"] == "failed"
    by_state: dict[tuple[str, str], list[int]] = {}
    for ti in run["tries"]:
        by_state.setdefault((ti["task_id"], ti["state"]), []).append(ti["try_number"])
    assert by_state[("refresh_experiment.ingest", "failed")] == [1]
    assert by_state[("refresh_experiment.recompute", "upstream_failed")]
    assert set(by_state[("refresh_experiment.ingest", "success")]) == {1}
    assert by_state[("summarise", "failed")] == [1]


@pytest.mark.slow
@pytest.mark.parametrize("seeded_database", ["sqlite"], indirect=True)
def test_experiment_refresh_an_unreachable_warehouse_is_retried(
    seeded_database: tuple[str, date], airflow_db: Path, tmp_path: Path
) -> None:
    """An experiment fed from a warehouse that cannot be reached (WarehouseUnavailable) fails
    its ingest only after the retries — the warehouse may be back — while the others are
    refreshed."""
    from core import catalogue, registry
    from core.warehouse import catalog

    url, today = seeded_database
    engine = make_engine(url)
    with session_factory(engine)() as session:
        catalog.create_connection(session, data={
            "name": "gone", "url": f"duckdb:///{tmp_path / 'not-there.duckdb'}"}, actor=ADMIN)
        catalog.create_assignment_source(session, data={
            "name": "gone_exposures", "connection": "gone",
            "sql": "SELECT unit_id, ts AS timestamp, key AS experiment_key, variant FROM e"},
            actor=ADMIN)
        catalog.create_fact_source(session, data={
            "name": "gone_orders", "connection": "gone",
            "sql": "SELECT unit_id, ts AS timestamp, revenue FROM o", "columns": ["revenue"]},
            actor=ADMIN)
        catalogue.create_metric(session, data={"name": "wh_spend", "fact_source": "gone_orders",
                                               "aggregation": "sum", "value_column": "revenue"},
                                actor=ADMIN)
        search = session.scalars(select(Experiment.id).where(
            Experiment.name == "Search ranking v2")).one()
        view = registry.get_experiment(session, experiment_id=search)
        registry.update_experiment(
            session, experiment_id=search, expected_version=view.version, actor=ADMIN,
            reason="fed from the warehouse", changes={
                "secondary_metrics": [*view.secondary_metrics, "wh_spend"],
                "assignment_source": "gone_exposures", "experiment_key": "search-v2"})
    engine.dispose()
    env = _airflow_env(airflow_db, DATABASE_URL=url, ARTIFACTS_URL=str(tmp_path / "artifacts"))
    run = _python(env, RUN_DAG.format(dags=str(DAGS), dag_id=DAG_ID, result=RESULT,
                                      logical_date=today.isoformat()), cwd=airflow_db,
                  timeout=400)

    assert run["state"] == "failed"
    by_state: dict[tuple[str, str], list[int]] = {}
    for ti in run["tries"]:
        by_state.setdefault((ti["task_id"], ti["state"]), []).append(ti["try_number"])
    assert by_state[("refresh_experiment.ingest", "failed")] == [3]  # 1 + 2 retries
    assert set(by_state[("refresh_experiment.ingest", "success")]) == {1}
    assert by_state[("summarise", "failed")] == [1]
