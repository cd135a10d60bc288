"""
### Experiment refresh

Once a day, for the data interval that just closed (one UTC day, `[start, end)`), every running
experiment that is due — daily, or every `refresh_every_days` days counted from its start — goes
through three tasks, mapped over the experiments' ids:

1. **ingest** — the experiment's SQL metric source runs inside its own database (push-down),
   bound to the refresh window (`:interval_start`, `:interval_end`), and the per-variant,
   per-day rows of the window are upserted; rows equal to the stored ones are not written
   again. An experiment attached to a warehouse assignment source is refreshed inside its
   warehouse (generated queries; the exposure days still open, whatever the interval; only
   aggregates come back). Files dropped in the artifact store at
   `incoming/experiment-<id>/<YYYY-MM-DD>.csv` or `.parquet` for the window's days are loaded
   too, each once per content (SHA-256); a bad drop is rejected (nothing of it written) and
   reported. Experiments fed by uploads have nothing to pull.
2. **recompute** — results as of the interval's last day; a snapshot is stored only if no
   snapshot has the same input fingerprint. Flags: `srm`, `guardrail_breach`,
   `planned_sample_reached`, `primary_significant` (sequential), and *ready for a decision*.
3. **report** — the first time an experiment is ready for a decision, a PDF report is written to
   the artifact store and the experiment is marked (`ready_for_decision_at`); an audit entry
   `ready_for_decision` names the report.

**summarise** logs one line per experiment and returns the flags (XCom); it fails the run when
an experiment's refresh failed or a dropped file was rejected, after the others have finished.

Each task is one call into `core.workflows.refresh`; the logic lives there. An error a retry cannot
fix (bad data, an experiment not found, a refused input, a statement the database rejects) fails
its task at once; only transient faults (the database down or busy, a warehouse that cannot be
reached or ran past its statement timeout) are retried. Re-running a day
(clearing the run) changes nothing unless the source data for that day changed. Settings come
from the worker's environment, as for the app: `DATABASE_URL`, `ARTIFACTS_URL`
(see docs/operations.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task, task_group
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger(__name__)


@contextmanager
def app_session() -> Iterator[Any]:
    """A session on the app database; an error no retry can fix fails the task at once."""
    from core.workflows import refresh

    try:
        with refresh.open_session() as session:
            yield session
    except Exception as exc:
        if refresh.is_permanent_failure(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


@dag(
    dag_id="experiment_refresh",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["experimentos", "experiments", "refresh"],
    default_args={
        "owner": "experimentos",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
    },
    doc_md=__doc__,
)
def experiment_refresh() -> None:
    @task
    def due(data_interval_start: Any = None, data_interval_end: Any = None) -> list[int]:
        """Ids of the running experiments due for this interval."""
        from core.workflows import refresh

        with app_session() as session:
            return refresh.due_experiments(
                session, interval_start=data_interval_start, interval_end=data_interval_end
            )

    @task(multiple_outputs=False)
    def ingest(
        experiment_id: int, data_interval_start: Any = None, data_interval_end: Any = None
    ) -> dict[str, Any]:
        from core.workflows import refresh

        with app_session() as session:
            return refresh.ingest_interval(
                session, experiment_id=experiment_id, interval_start=data_interval_start,
                interval_end=data_interval_end, actor=refresh.SCHEDULER,
            ).to_dict()

    @task(multiple_outputs=False)
    def recompute(
        ingested: dict[str, Any], data_interval_start: Any = None, data_interval_end: Any = None
    ) -> dict[str, Any]:
        from core.workflows import refresh

        with app_session() as session:
            return refresh.recompute_results(
                session, experiment_id=ingested["experiment_id"],
                interval_start=data_interval_start, interval_end=data_interval_end,
                actor=refresh.SCHEDULER,
            ).to_dict()

    @task(multiple_outputs=False)
    def report(
        results: dict[str, Any], ingested: dict[str, Any], data_interval_start: Any = None,
        data_interval_end: Any = None,
    ) -> dict[str, Any]:
        from core.workflows import refresh

        with app_session() as session:
            return refresh.report_if_ready(
                session, experiment_id=results["experiment_id"],
                interval_start=data_interval_start, interval_end=data_interval_end,
                ready_for_decision=results["ready_for_decision"], flags=results["flags"],
                rejected=ingested["rejected"], actor=refresh.SCHEDULER,
            ).to_dict()

    @task_group
    def refresh_experiment(experiment_id: int) -> Any:
        ingested = ingest(experiment_id)
        return report(recompute(ingested), ingested)

    @task(trigger_rule="all_done", retries=0)
    def summarise(outcomes: Any, due_ids: list[int]) -> list[dict[str, Any]]:
        """Log the flags of every refreshed experiment; fail if any refresh failed or any
        dropped file was rejected."""
        from core.workflows import refresh

        done = [o for o in outcomes if o is not None]
        for line in refresh.summarise(done):
            log.info("%s", line)
        missing = sorted(set(due_ids) - {o["experiment_id"] for o in done})
        rejected = [r for o in done for r in o.get("rejected") or []]
        problems = [f"the refresh failed for experiment id(s) {missing}: see their logs"
                    ] if missing else []
        problems += [f"rejected drop {r}" for r in rejected]
        if problems:
            raise RuntimeError("; ".join(problems))
        return done

    ids = due()
    summarise(refresh_experiment.expand(experiment_id=ids), ids)


experiment_refresh()
