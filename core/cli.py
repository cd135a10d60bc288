"""Admin command line: ``python -m core.cli <command> --help``.

Each command is one function taking parsed arguments; it prints a clear message and exits
non-zero on any error a user can fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from core.errors import DomainError

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(
    name: str, help_text: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> Callable[[Handler], Handler]:
    """Register a subcommand: `arguments` adds its options, the decorated function runs it."""

    def register(handler: Handler) -> Handler:
        _COMMANDS[name] = (help_text, arguments or (lambda _p: None), handler)
        return handler

    return register


def _session():  # type: ignore[no-untyped-def]
    from db.session import session_factory

    return session_factory()()


# --------------------------------------------------------------------------- database


@command("migrate", "Upgrade the database at DATABASE_URL to the latest schema (Alembic).")
def _migrate(_args: argparse.Namespace) -> int:
    from core.config import get_settings
    from db.migrate import upgrade

    upgrade(get_settings().database_url)
    print("Database is at the latest schema.")
    return 0


@command(
    "seed-demo",
    "Load the demo portfolio (metrics, experiments, backlog ideas, metric data). Idempotent.",
)
def _seed_demo(_args: argparse.Namespace) -> int:
    from core.demo import seed_demo

    with _session() as session:
        summary = seed_demo(session)
    print(summary)
    return 0


# --------------------------------------------------------------------------- users


def _add_user_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--username", required=True, help="login name (letters, digits, . _ -)")
    p.add_argument("--name", required=True, help="display name")
    p.add_argument("--email", default="", help="e-mail address (optional)")
    p.add_argument("--role", required=True, choices=["viewer", "editor", "admin"])
    p.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from standard input instead of prompting",
    )


@command(
    "add-user",
    "Add or replace an app user in CREDENTIALS_FILE (the password is stored bcrypt-hashed).",
    _add_user_args,
)
def _add_user(args: argparse.Namespace) -> int:
    import getpass

    from core.users import add_user

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
    path = add_user(
        username=args.username, name=args.name, email=args.email, role=args.role,
        password=password,
    )
    print(f"User '{args.username}' ({args.role}) saved in {path}.")
    return 0


# --------------------------------------------------------------------------- API keys


def _create_api_key_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="who or what uses the key, e.g. airflow-prod")
    p.add_argument("--scope", required=True, choices=["read", "write", "admin"])


@command(
    "create-api-key",
    "Create a key for the sidecar API; the key is printed once (only its hash is stored).",
    _create_api_key_args,
)
def _create_api_key(args: argparse.Namespace) -> int:
    from core.api_keys import create_api_key

    with _session() as session:
        created = create_api_key(session, name=args.name, scope=args.scope)
    print(f"API key '{created.view.name}' ({created.view.scope}) created. Store it now; "
          "it is not shown again:")
    print(created.key)
    return 0


def _revoke_api_key_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="name the key was created with")


@command("revoke-api-key", "Revoke a sidecar API key for good.", _revoke_api_key_args)
def _revoke_api_key(args: argparse.Namespace) -> int:
    from core.api_keys import revoke_api_key

    with _session() as session:
        view = revoke_api_key(session, name=args.name)
    print(f"API key '{view.name}' ({view.prefix}…) is revoked.")
    return 0


# --------------------------------------------------------------------------- metric data

_CLI_ACTOR_NAME = "cli"


def _ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help="experiment name")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="user-level or pre-aggregated CSV/Parquet file")
    source.add_argument("--sql", action="store_true", help="run the experiment's SQL source")
    p.add_argument("--day", help="YYYY-MM-DD: the day of a user-level file without a date column")


@command("ingest", "Load metric data into an experiment (all or nothing, idempotent).",
         _ingest_args)
def _ingest(args: argparse.Namespace) -> int:
    from datetime import date

    from core.auth import Actor
    from core.data.ingestion import ingest_file
    from core.data.metric_sources import ingest_sql
    from db import repositories as repo

    actor = Actor(name=_CLI_ACTOR_NAME, role="admin")

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr)

    with _session() as session:
        exp_id = repo.experiment_id_by_name(session, name=args.experiment)
        if exp_id is None:
            print(f"error: no experiment named '{args.experiment}'", file=sys.stderr)
            return 2
        if args.sql:
            report = ingest_sql(session, experiment_id=exp_id, actor=actor, progress=progress)
        else:
            day = date.fromisoformat(args.day) if args.day else None
            report = ingest_file(session, path=args.file, experiment_id=exp_id, actor=actor,
                                 day=day, progress=progress)
    units = ", ".join(f"{v} {n:,}" for v, n in report.units.items())
    print(f"Loaded {report.rows_read:,} rows from {report.source} into '{report.experiment_name}':"
          f" {report.stats_rows_written} daily rows, days {report.first_day} to "
          f"{report.last_day}, metrics {', '.join(report.metrics)}; units {units}"
          f" ({report.seconds:.1f} s).")
    if report.dimensions:
        print(f"Dimensions (per-value statistics stored): {', '.join(report.dimensions)} "
              f"({report.slice_rows_written} slice rows)")
    if report.ignored_columns:
        print(f"Ignored columns: {', '.join(report.ignored_columns)}")
    for note in report.notes:
        print(note)
    return 0


def _set_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help="experiment name")
    p.add_argument("--query-file", required=True,
                   help="file with one SQL query returning variant, day, metric, n, sum, "
                        "sum_squares (see docs/data-and-sources.md 'SQL sources')")
    p.add_argument("--url", help="SQLAlchemy URL of the source database (default: the app's own)")


@command("set-source", "Set an experiment's SQL push-down metric source (audited).",
         _set_source_args)
def _set_source(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.auth import Actor
    from core.data.metric_sources import set_metric_source
    from db import repositories as repo

    query = Path(args.query_file).read_text(encoding="utf-8")
    with _session() as session:
        exp_id = repo.experiment_id_by_name(session, name=args.experiment)
        if exp_id is None:
            print(f"error: no experiment named '{args.experiment}'", file=sys.stderr)
            return 2
        view = set_metric_source(session, experiment_id=exp_id, query=query, url=args.url,
                                 actor=Actor(name=_CLI_ACTOR_NAME, role="admin"))
    print(f"SQL source of '{args.experiment}' set ({view.url or 'the app database'}); "
          f"load it with `python -m core.cli ingest --experiment \"{args.experiment}\" --sql`.")
    return 0


def _refresh_args(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", help="experiment name")
    which.add_argument("--all-running", action="store_true", help="every running experiment")


@command("refresh", "Recompute results and store a snapshot (skipped when nothing changed).",
         _refresh_args)
def _refresh(args: argparse.Namespace) -> int:
    from core.analysis.results import refresh_results, refresh_running
    from core.auth import Actor
    from db import repositories as repo

    actor = Actor(name=_CLI_ACTOR_NAME, role="admin")
    with _session() as session:
        if args.all_running:
            snapshots = refresh_running(session, actor=actor)
        else:
            exp_id = repo.experiment_id_by_name(session, name=args.experiment)
            if exp_id is None:
                print(f"error: no experiment named '{args.experiment}'", file=sys.stderr)
                return 2
            snapshots = [refresh_results(session, experiment_id=exp_id, actor=actor)]
    for snap in snapshots:
        states: dict[str, int] = {}
        for row in snap.comparisons:
            states[row.decision_state] = states.get(row.decision_state, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no metrics"
        print(f"'{snap.experiment_name}': snapshot {snap.snapshot_id} (data through "
              f"{snap.data_through}): {summary}")
    if not snapshots:
        print("No running experiments.")
    return 0


def _refresh_schedule_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help="experiment name")
    every = p.add_mutually_exclusive_group(required=True)
    every.add_argument("--every-days", type=int, help="every N days, counted from the start")
    every.add_argument("--daily", action="store_true", help="refresh every day (the default)")


@command("refresh-schedule", "Set how often the scheduled refresh (Airflow DAG "
         "experiment_refresh) refreshes an experiment.", _refresh_schedule_args)
def _refresh_schedule(args: argparse.Namespace) -> int:
    from core.auth import Actor
    from core.registry.listing import get_experiment_by_name
    from core.workflows.refresh import set_refresh_schedule

    with _session() as session:
        exp = get_experiment_by_name(session, name=args.experiment)
        every = set_refresh_schedule(
            session, experiment_id=exp.id, every_days=None if args.daily else args.every_days,
            actor=Actor(name=_CLI_ACTOR_NAME, role="admin"),
        )
    print(f"'{exp.name}' is refreshed " + ("every day." if every is None else
                                          f"every {every} days, counted from its start."))
    return 0


# --------------------------------------------------------------------------- warehouse


def _cli_admin():  # type: ignore[no-untyped-def]
    from core.auth import Actor

    return Actor(name=_CLI_ACTOR_NAME, role="admin")


def _sql_text(args: argparse.Namespace) -> str:
    from pathlib import Path

    return args.sql if args.sql is not None else Path(args.sql_file).read_text(encoding="utf-8")


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _add_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="lower_snake_case, e.g. analytics")
    p.add_argument("--url", required=True,
                   help="duckdb:///path/file.duckdb, postgresql://user:${PASSWORD_VAR}@host/db, "
                        "spark://local[2], bigquery://project/dataset, ...; a credential only as "
                        "${ENV_VAR} (quote the URL in the shell)")
    p.add_argument("--allow-app-database", action="store_true",
                   help="allow the URL to point at the app's own database")


@command("add-connection", "Add a warehouse connection (credentials only as ${ENV_VAR}; "
         "audited).", _add_connection_args)
def _add_connection(args: argparse.Namespace) -> int:
    from core.warehouse import catalog

    with _session() as session:
        view = catalog.create_connection(session, actor=_cli_admin(), data={
            "name": args.name, "url": args.url,
            "allow_app_database": args.allow_app_database})
    print(f"Connection '{view.name}' added ({view.url}); check it with "
          f"`python -m core.cli test-connection --name {view.name}`.")
    return 0


def _test_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="the connection's name")


@command("test-connection", "Connect to a warehouse connection and run SELECT 1.",
         _test_connection_args)
def _test_connection(args: argparse.Namespace) -> int:
    from core.warehouse import catalog

    with _session() as session:
        print(catalog.check_connection(session, name=args.name, actor=_cli_admin()))
    return 0


def _source_args(columns: str, help_text: str, *, required: bool) -> Callable[
        [argparse.ArgumentParser], None]:
    def arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", required=True, help="lower_snake_case, unique among sources")
        p.add_argument("--connection", required=True, help="the warehouse connection's name")
        sql = p.add_mutually_exclusive_group(required=True)
        sql.add_argument("--sql", help="one SELECT statement in the warehouse's dialect")
        sql.add_argument("--sql-file", help="a file holding that statement")
        p.add_argument(f"--{columns}", required=required, help=help_text)

    return arguments


def _assignment_source_args(p: argparse.ArgumentParser) -> None:
    _source_args("dimensions", "comma-separated dimension columns, e.g. platform,country",
                 required=False)(p)
    p.add_argument("--covariates", help="comma-separated numeric unit-attribute columns every "
                   "metric is regression-adjusted on, e.g. tenure_days")


@command("add-assignment-source", "Add an assignment source: SQL returning unit_id, timestamp, "
         "experiment_key, variant and the dimension and covariate columns (audited).",
         _assignment_source_args)
def _add_assignment_source(args: argparse.Namespace) -> int:
    from core.warehouse import catalog

    with _session() as session:
        view = catalog.create_assignment_source(session, actor=_cli_admin(), data={
            "name": args.name, "connection": args.connection, "sql": _sql_text(args),
            "dimensions": _names(args.dimensions), "covariates": _names(args.covariates)})
    dims = ", ".join(view.dimensions) or "none"
    covs = ", ".join(view.covariates) or "none"
    print(f"Assignment source '{view.name}' added on '{view.connection}' (dimensions: {dims}; "
          f"covariates: {covs}).")
    return 0


@command("add-fact-source", "Add a fact source: SQL returning unit_id, timestamp and numeric "
         "columns (audited).",
         _source_args("columns", "comma-separated numeric columns, e.g. revenue,items",
                      required=True))
def _add_fact_source(args: argparse.Namespace) -> int:
    from core.warehouse import catalog

    with _session() as session:
        view = catalog.create_fact_source(session, actor=_cli_admin(), data={
            "name": args.name, "connection": args.connection, "sql": _sql_text(args),
            "columns": _names(args.columns)})
    print(f"Fact source '{view.name}' added on '{view.connection}' (columns: "
          f"{', '.join(view.columns)}).")
    return 0


def _add_metric_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="lower_snake_case, e.g. checkout_conversion")
    p.add_argument("--kind", choices=["binomial", "mean", "ratio", "quantile"],
                   help="required for a metric loaded from files or SQL; a warehouse metric's "
                        "follows from --aggregation")
    p.add_argument("--unit", default="", help="e.g. EUR, %%, ms")
    p.add_argument("--lower-is-better", action="store_true",
                   help="a decrease is an improvement (latency, refunds)")
    p.add_argument("--description", default="")
    p.add_argument("--numerator", help="file ratio metrics: the per-unit column above the line")
    p.add_argument("--denominator", help="file ratio metrics: the per-unit column below it")
    p.add_argument("--quantile-p", type=float,
                   help="quantile metrics (from files, or a warehouse sum or count metric): "
                        "the level of the per-unit value's quantile, strictly between 0 and 1 "
                        "(0.9 for p90)")
    p.add_argument("--fact-source", help="warehouse metrics: the fact source it is computed from")
    p.add_argument("--aggregation", choices=["sum", "count", "any", "mean", "ratio"],
                   help="warehouse metrics: per unit, sum | count of rows | any row (0/1) | "
                        "mean over rows | ratio of --column to --denominator-column")
    p.add_argument("--column", help="warehouse metrics: the fact source's column aggregated")
    p.add_argument("--denominator-column", help="warehouse ratio metrics: the column below")
    p.add_argument("--window-days", type=int,
                   help="warehouse metrics: days after the unit's first exposure counted "
                        "(default: up to the analysis day)")
    p.add_argument("--cuped-days", type=int,
                   help="warehouse metrics: days before first exposure used as the CUPED "
                        "covariate (mean/ratio: the value column's sum over them)")


@command("add-metric", "Add a metric to the catalogue: loaded from files or SQL, or computed "
         "in the warehouse from a fact source (audited).", _add_metric_args)
def _add_metric(args: argparse.Namespace) -> int:
    from core import catalogue

    given = {
        "kind": args.kind, "numerator": args.numerator, "denominator": args.denominator,
        "fact_source": args.fact_source, "aggregation": args.aggregation,
        "value_column": args.column, "denominator_column": args.denominator_column,
        "window_days": args.window_days, "cuped_days": args.cuped_days,
        "quantile_p": args.quantile_p,
    }
    data = {"name": args.name, "unit": args.unit, "higher_is_better": not args.lower_is_better,
            "description": args.description,
            **{k: v for k, v in given.items() if v is not None}}
    with _session() as session:
        view = catalogue.create_metric(session, data=data, actor=_cli_admin())
    where = (f"computed from fact source '{view.fact_source}' ({view.aggregation})"
             if view.fact_source else "loaded from files or SQL")
    print(f"Metric '{view.name}' ({view.kind}) added, {where}.")
    return 0


def _attach_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help="experiment name")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--assignment-source", help="the assignment source's name")
    which.add_argument("--detach", action="store_true",
                       help="read no exposures from a warehouse any more")
    p.add_argument("--key", help="the experiment's experiment_key in the assignment source")
    p.add_argument("--reason", help="needed once the experiment has launched (a plan deviation)")


@command("attach-warehouse", "Read an experiment's exposures from an assignment source under "
         "its key (a registry change: audited, frozen at launch).", _attach_args)
def _attach_warehouse(args: argparse.Namespace) -> int:
    from core.registry.listing import get_experiment_by_name
    from core.warehouse import catalog

    with _session() as session:
        exp = get_experiment_by_name(session, name=args.experiment)
        view = catalog.attach_experiment(
            session, experiment_id=exp.id,
            assignment_source=None if args.detach else args.assignment_source,
            experiment_key=None if args.detach else args.key, expected_version=exp.version,
            actor=_cli_admin(), reason=args.reason)
    if view.assignment_source is None:
        print(f"'{view.name}' reads no exposures from a warehouse.")
    else:
        print(f"'{view.name}' reads its exposures from '{view.assignment_source}' under key "
              f"'{view.experiment_key}'; refresh it with `python -m core.cli refresh-warehouse "
              f"--experiment \"{view.name}\"`.")
    return 0


def _refresh_warehouse_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help="experiment name")
    p.add_argument("--full", action="store_true",
                   help="recompute every exposure day, not only the open ones")
    p.add_argument("--show-sql", action="store_true", help="print the SQL that ran")


@command("refresh-warehouse", "Refresh an experiment's metrics from its warehouse (the open "
         "exposure days; --full: all), then store a results snapshot.",
         _refresh_warehouse_args)
def _refresh_warehouse(args: argparse.Namespace) -> int:
    from core.registry.listing import get_experiment_by_name
    from core.workflows.loads import refresh_from_warehouse

    with _session() as session:
        exp = get_experiment_by_name(session, name=args.experiment)
        report, snapshot = refresh_from_warehouse(session, experiment_id=exp.id,
                                                  actor=_cli_admin(), full=args.full)
    days = ", ".join(f"{fact} from {first}" for fact, first in sorted(report.open_from.items()))
    stored = (f"{report.stats_rows_written} daily rows stored" if report.changed
              else "nothing changed")
    print(f"'{report.experiment_name}' from '{report.assignment_source}': {report.units:,} "
          f"units, {report.multi_variant_units} in more than one variant (excluded); exposure "
          f"days recomputed: {days or 'none'}; {report.rows_read:,} rows returned; {stored} "
          f"({report.seconds:.1f} s); snapshot {snapshot.snapshot_id}.")
    for note in report.notes:
        print(note)
    for run in report.runs:
        scanned = "" if run.rows_scanned is None else f", {run.rows_scanned:,} rows scanned"
        print(f"  {run.role} source '{run.source}': {run.rows_returned:,} rows returned"
              f"{scanned}, {run.seconds:.2f} s")
        if args.show_sql and run.sql:
            print(run.sql)
    return 0


# --------------------------------------------------------------------------- reports


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help="experiment name")
    p.add_argument("--out", required=True, help="where to write the PDF, e.g. report.pdf")


@command("report", "Generate an experiment's PDF report: stored in ARTIFACTS_URL, recorded, and "
         "written to --out.", _report_args)
def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.auth import Actor
    from core.registry.listing import get_experiment_by_name
    from core.reports import download_report, generate_report

    with _session() as session:
        exp = get_experiment_by_name(session, name=args.experiment)
        view = generate_report(session, experiment_id=exp.id,
                               actor=Actor(name=_CLI_ACTOR_NAME, role="editor"))
        content = download_report(session, report_id=view.id).content
    out = Path(args.out)
    out.write_bytes(content)
    print(f"Report on '{exp.name}' written to {out} ({view.size_bytes:,} bytes); stored as "
          f"{view.key} (sha256 {view.sha256[:12]}…).")
    return 0


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.cli",
        description="ExperimentOS administration. Settings come from the environment "
        "(DATABASE_URL, ARTIFACTS_URL, ...; see docs/operations.md).",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (help_text, arguments, _handler) in sorted(_COMMANDS.items()):
        p = sub.add_parser(name, help=help_text, description=help_text)
        arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = _COMMANDS[args.command][2]
    try:
        return handler(args)
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, PermissionError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
