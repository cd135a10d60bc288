"""The warehouse definitions a team keeps in the app: connections (admins), assignment sources
and fact sources (editors), and which assignment source and key an experiment reads its
exposures from. Metrics on a fact source live in the catalogue (:mod:`core.catalogue`).

Every change is audited in its transaction; bad input raises :class:`InvalidInput` listing
every problem, and nothing is written. Names are lower_snake_case and unique: a connection's
among connections, a source's among assignment *and* fact sources (a refresh records its
queries under the source's name). A connection's URL holds no password: a credential is an
environment variable named as ``${NAME}`` (read where the refresh runs, never stored or
shown), and a URL pointing at the app's own database is refused unless an admin allows it
(``allow_app_database``). A source's SQL is one SELECT (or WITH … SELECT) statement in the
warehouse's own dialect; it is wrapped by the generated queries, never spliced into them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from core.auth import Actor
from core.config import Settings, environment_value, get_settings
from core.data.metric_sources import select_problem
from core.data.reading import MAX_COVARIATES
from core.errors import Conflict, InvalidInput, NotFound, RuleViolation
from core.registry import ExperimentView, update_experiment
from core.registry.fields import MAX_SOURCE_NAME_LENGTH, validation_problems
from core.transactions import transaction
from core.warehouse import definitions, engines
from db import repositories as repo
from db import warehouse_repository as warehouse
from db.models import AssignmentSource, FactSource, WarehouseConnection

SNAKE = r"^[a-z][a-z0-9_]*$"
MAX_URL_LENGTH = 2_000
MAX_SQL_LENGTH = 100_000
"""Characters in a source's SQL."""
MAX_DIMENSIONS = 20
"""Dimension columns an assignment source declares."""
MAX_COVARIATE_COLUMNS = (MAX_COVARIATES - 1) // 2
"""Unit-attribute columns an assignment source declares as covariates: each is two covariates
(its value and its missingness indicator) beside a metric's own pre-period, within the
:data:`~core.data.reading.MAX_COVARIATES` of a metric."""
MAX_FACT_COLUMNS = 50
"""Numeric columns a fact source declares."""
PREVIEW_ROWS = 20
MAX_PREVIEW_ROWS = 1_000
SECRET_PARAMETERS = frozenset({
    "password", "pwd", "passwd", "token", "access_token", "secret", "client_secret",
    "private_key", "private_key_passphrase", "passcode", "api_key", "apikey",
})
"""URL query parameters that hold a credential: their value must be a ``${NAME}``."""
_PLACEHOLDER_START = re.compile(r"\$\{")

Name = Field(min_length=1, max_length=MAX_SOURCE_NAME_LENGTH, pattern=SNAKE)
Sql = Field(min_length=1, max_length=MAX_SQL_LENGTH)
ColumnName = Field(min_length=1, max_length=80, pattern=SNAKE)


# --------------------------------------------------------------------------- input models


class ConnectionFields(BaseModel):
    """A new warehouse connection."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Name
    url: str = Field(
        min_length=1, max_length=MAX_URL_LENGTH,
        description="duckdb:///path/file.duckdb, postgresql://user:${PASSWORD_VAR}@host/db, "
        "spark://local[2], bigquery://project/dataset, snowflake://…, trino://…, "
        "databricks://…; credentials only as ${ENV_VAR} placeholders.")
    allow_app_database: bool = Field(
        default=False, strict=True,
        description="Allow the URL to point at the app's own database (its tables become a "
        "source).")


class ConnectionEdit(BaseModel):
    """What may change in a connection (its name stays: sources refer to it). Left out or
    null: unchanged."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    allow_app_database: bool | None = Field(default=None, strict=True)


COVARIATES_HELP = (
    "Numeric columns of the SQL's result that are unit attributes known before exposure "
    "(tenure, last month's spend, …): every metric of an experiment on the source is "
    "regression-adjusted on them (Lin 2013) beside its own pre-period; each unit's value at "
    "its first exposure counts, and a NULL counts as 0 beside a missingness indicator.")


class AssignmentSourceFields(BaseModel):
    """A new assignment source: SQL returning ``unit_id, timestamp, experiment_key, variant``
    and the declared dimension and covariate columns."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Name
    connection: str = Field(min_length=1, max_length=MAX_SOURCE_NAME_LENGTH,
                            description="The warehouse connection's name.")
    sql: str = Sql
    dimensions: list[str] = Field(
        default_factory=list, max_length=MAX_DIMENSIONS,
        description="Columns of the SQL's result to slice results by (platform, country, …); "
        "each unit's value at its first exposure counts.")
    covariates: list[str] = Field(default_factory=list, max_length=MAX_COVARIATE_COLUMNS,
                                  description=COVARIATES_HELP)


class AssignmentSourceEdit(BaseModel):
    """What may change in an assignment source (its name stays). Left out or null:
    unchanged."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    connection: str | None = Field(default=None, min_length=1,
                                   max_length=MAX_SOURCE_NAME_LENGTH)
    sql: str | None = Field(default=None, min_length=1, max_length=MAX_SQL_LENGTH)
    dimensions: list[str] | None = Field(default=None, max_length=MAX_DIMENSIONS)
    covariates: list[str] | None = Field(default=None, max_length=MAX_COVARIATE_COLUMNS,
                                         description=COVARIATES_HELP)


class FactSourceFields(BaseModel):
    """A new fact source: SQL returning ``unit_id, timestamp`` and the declared numeric
    columns."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Name
    connection: str = Field(min_length=1, max_length=MAX_SOURCE_NAME_LENGTH,
                            description="The warehouse connection's name.")
    sql: str = Sql
    columns: list[str] = Field(
        min_length=1, max_length=MAX_FACT_COLUMNS,
        description="The numeric columns of the SQL's result metrics may aggregate (revenue, "
        "items, …).")


class FactSourceEdit(BaseModel):
    """What may change in a fact source (its name stays); a column a metric uses stays
    declared. Left out or null: unchanged."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    connection: str | None = Field(default=None, min_length=1,
                                   max_length=MAX_SOURCE_NAME_LENGTH)
    sql: str | None = Field(default=None, min_length=1, max_length=MAX_SQL_LENGTH)
    columns: list[str] | None = Field(default=None, min_length=1, max_length=MAX_FACT_COLUMNS)


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class ConnectionView:
    id: int
    name: str
    url: str
    """As stored: ``${NAME}`` placeholders, never a credential."""
    allow_app_database: bool
    sources: tuple[str, ...]
    """The assignment and fact sources that query it."""
    created_by: str
    updated_by: str
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class AssignmentSourceView:
    id: int
    name: str
    connection: str
    sql: str
    dimensions: tuple[str, ...]
    covariates: tuple[str, ...]
    """Numeric unit-attribute columns every metric is regression-adjusted on."""
    experiments: tuple[str, ...]
    """The experiments that read their exposures from it."""
    created_by: str
    updated_by: str
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class FactSourceView:
    id: int
    name: str
    connection: str
    sql: str
    columns: tuple[str, ...]
    metrics: tuple[str, ...]
    """The catalogue metrics computed from it."""
    created_by: str
    updated_by: str
    created_at: datetime | None
    updated_at: datetime | None


def _connection_view(session: Session, row: WarehouseConnection) -> ConnectionView:
    return ConnectionView(
        id=row.id, name=row.name, url=row.url, allow_app_database=row.allow_app_database,
        sources=tuple(warehouse.sources_on_connection(session, connection_id=row.id)),
        created_by=row.created_by, updated_by=row.updated_by, created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _assignment_view(session: Session, row: AssignmentSource,
                     connections: dict[int, str]) -> AssignmentSourceView:
    return AssignmentSourceView(
        id=row.id, name=row.name, connection=connections[row.connection_id], sql=row.sql,
        dimensions=tuple(row.dimensions or ()),
        experiments=tuple(warehouse.experiments_using_assignment_source(
            session, source_id=row.id)),
        covariates=tuple(row.covariates or ()),
        created_by=row.created_by, updated_by=row.updated_by, created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _fact_view(session: Session, row: FactSource, connections: dict[int, str]) -> FactSourceView:
    return FactSourceView(
        id=row.id, name=row.name, connection=connections[row.connection_id], sql=row.sql,
        columns=tuple(row.columns or ()),
        metrics=tuple(warehouse.metrics_on_fact_source(session, source_id=row.id)),
        created_by=row.created_by, updated_by=row.updated_by, created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _names(session: Session, rows: list[Any]) -> dict[int, str]:
    return warehouse.connection_names(
        session, connection_ids=sorted({r.connection_id for r in rows}))


# --------------------------------------------------------------------------- checks


def _validated(model: type[BaseModel], data: Any) -> Any:
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_problems(exc)) from None


def url_problems(url: str, *, allow_app_database: bool = False) -> list[str]:
    """Why a connection URL cannot be stored: an unknown engine, a literal credential (only
    ``${NAME}`` placeholders), a malformed placeholder, or the app's own database without
    ``allow_app_database``; [] when it can."""
    problems: list[str] = []
    if any(c.isspace() or c == "\x00" for c in url):
        return ["url: remove the spaces (and control characters) from the URL"]
    kind = engines.scheme(url)
    if "://" not in url or kind not in engines.ENGINES:
        problems.append(
            f"url: '{kind or url[:20]}' is not a warehouse ExperimentOS connects to; start "
            "it with one of " + ", ".join(sorted(f"{k}://" for k in engines.ENGINES)))
    placeholders = engines.PLACEHOLDER.findall(url)
    if len(_PLACEHOLDER_START.findall(url)) != len(placeholders):
        problems.append("url: write each credential as ${NAME}, NAME an environment variable "
                        "of letters, digits and _ (e.g. ${WAREHOUSE_PASSWORD})")
    credential = "put it in an environment variable and write ${NAME} in its place (e.g. " \
                 "postgresql://analyst:${WAREHOUSE_PASSWORD}@db.internal/analytics): " \
                 "credentials are never stored"
    if "://" in url:
        rest = url.split("://", 1)[1]
        # Everything before the last @ is user information, even a password holding a /.
        userinfo = rest.split("?", 1)[0].rpartition("@")[0]
        query = rest.partition("?")[2]
        password = userinfo.partition(":")[2] if ":" in userinfo else None
        if password and not engines.PLACEHOLDER.fullmatch(password):
            problems.append(f"url: it holds a password; {credential}")
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key.lower() in SECRET_PARAMETERS and value and \
                    not engines.PLACEHOLDER.fullmatch(value):
                problems.append(f"url: its parameter {key} holds a credential; {credential}")
    if not problems and not allow_app_database:
        resolved = engines.PLACEHOLDER.sub(
            lambda m: environment_value(m.group(1)) or m.group(0), url)
        try:
            app_database = engines.is_app_database(resolved)
        except (ValueError, OSError) as exc:  # a port that is no number, an odd path
            return [f"url: it is not a valid URL ({exc})"]
        if app_database:
            problems.append(
                "url: it points at the app's own database; ExperimentOS's tables are never a "
                "source unless an admin allows it (allow_app_database)")
    return problems


def column_problems(columns: list[str], *, field: str, reserved: tuple[str, ...]) -> list[str]:
    """Declared column names: lower_snake_case, unique, none of the ``reserved`` ones."""
    problems = []
    bad = [c for c in columns if not re.fullmatch(SNAKE, c) or len(c) > 80]
    if bad:
        problems.append(f"{field}: write column names in lower_snake_case (at most 80 "
                        f"characters), e.g. revenue (not {', '.join(repr(c) for c in bad)})")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        problems.append(f"{field}: {', '.join(repeated)} declared more than once")
    clash = [c for c in columns if c in reserved]
    if clash:
        problems.append(f"{field}: {', '.join(clash)} {'is' if len(clash) == 1 else 'are'} "
                        f"always returned ({', '.join(reserved)}); declare only the other "
                        "columns")
    return problems


def covariate_problems(covariates: list[str], dimensions: list[str]) -> list[str]:
    """Declared covariate columns: as every column name, none also a dimension, and none
    whose covariate names clash (a column ``a_missing`` beside ``a``, whose missingness
    indicator is named ``cov_a_missing`` too)."""
    problems = column_problems(covariates, field="covariates",
                               reserved=definitions.ASSIGNMENT_COLUMNS)
    both = [c for c in covariates if c in dimensions]
    if both:
        problems.append(f"covariates: {', '.join(both)} {'is' if len(both) == 1 else 'are'} "
                        "declared a dimension too; a column is a dimension (text, to slice "
                        "by) or a covariate (a number, to adjust on), not both")
    names = [n for c in covariates for n in definitions.attribute_names(c)]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        problems.append(f"covariates: {', '.join(clash)} would name two covariates (a column "
                        f"'<a>{definitions.MISSING_SUFFIX}' beside '<a>' clashes with a's "
                        "missingness indicator): rename one in the SQL")
    return problems


def _connection_named(session: Session, name: str, problems: list[str]
                      ) -> WarehouseConnection | None:
    row = warehouse.get_connection(session, name=name)
    if row is None:
        problems.append(f"connection: there is no warehouse connection named '{name}' (an "
                        "admin adds one: python -m core.cli add-connection)")
    return row


def _name_free(session: Session, name: str) -> None:
    kind = warehouse.source_kind_of_name(session, name=name)
    if kind is not None:
        article = "an" if kind == "assignment" else "a"
        raise Conflict(f"name: there is already {article} {kind} source named '{name}' "
                       "(source names are unique across assignment and fact sources): choose "
                       "another")


# --------------------------------------------------------------------------- connections


def list_connections(session: Session) -> list[ConnectionView]:
    with transaction(session):
        return [_connection_view(session, row) for row in warehouse.list_connections(session)]


def _load_connection(session: Session, name: str) -> WarehouseConnection:
    row = warehouse.get_connection(session, name=name)
    if row is None:
        raise NotFound(f"No warehouse connection named '{name}'.")
    return row


def get_connection(session: Session, *, name: str) -> ConnectionView:
    with transaction(session):
        return _connection_view(session, _load_connection(session, name))


def create_connection(session: Session, *, data: dict[str, Any] | ConnectionFields,
                      actor: Actor) -> ConnectionView:
    """Add a warehouse connection (admins only). Audited."""
    actor.require("admin", "add warehouse connections")
    fields: ConnectionFields = _validated(ConnectionFields, data)
    problems = url_problems(fields.url, allow_app_database=fields.allow_app_database)
    if problems:
        raise InvalidInput(problems)
    with transaction(session):
        if warehouse.get_connection(session, name=fields.name) is not None:
            raise Conflict(f"name: there is already a connection named '{fields.name}': "
                           "choose another name")
        row = WarehouseConnection(**fields.model_dump(), created_by=actor.name,
                                  updated_by=actor.name)
        session.add(row)
        session.flush()
        repo.add_audit(session, actor=actor.name, entity_type="warehouse_connection",
                       entity_id=row.id, action="create",
                       changes={k: [None, v] for k, v in fields.model_dump().items()})
        return _connection_view(session, row)


def update_connection(session: Session, *, name: str, changes: dict[str, Any] | ConnectionEdit,
                      actor: Actor) -> ConnectionView:
    """Change a connection's URL or its consent to the app database (admins only). Audited;
    a change that changes nothing writes nothing."""
    actor.require("admin", "change warehouse connections")
    edit: ConnectionEdit = _validated(ConnectionEdit, changes)
    with transaction(session):
        row = _load_connection(session, name)
        after = {"url": row.url, "allow_app_database": row.allow_app_database,
                 **edit.model_dump(exclude_none=True)}
        diff = {k: [getattr(row, k), v] for k, v in after.items() if getattr(row, k) != v}
        if not diff:
            return _connection_view(session, row)
        problems = url_problems(after["url"], allow_app_database=after["allow_app_database"])
        if problems:
            raise InvalidInput(problems)
        for k, (_, v) in diff.items():
            setattr(row, k, v)
        row.updated_by = actor.name
        session.flush()
        repo.add_audit(session, actor=actor.name, entity_type="warehouse_connection",
                       entity_id=row.id, action="update", changes=diff)
        return _connection_view(session, row)


def delete_connection(session: Session, *, name: str, actor: Actor) -> None:
    """Remove a connection no source uses (admins only). Audited."""
    actor.require("admin", "delete warehouse connections")
    with transaction(session):
        row = _load_connection(session, name)
        users = warehouse.sources_on_connection(session, connection_id=row.id)
        if users:
            raise RuleViolation(f"Connection '{name}' is used by the source(s) "
                                f"{', '.join(users)}: delete them or point them at another "
                                "connection first.")
        repo.add_audit(session, actor=actor.name, entity_type="warehouse_connection",
                       entity_id=row.id, action="delete",
                       changes={"name": [row.name, None], "url": [row.url, None]})
        session.delete(row)


def connection_definition(row: WarehouseConnection) -> definitions.Connection:
    """The engine's view of a stored connection."""
    return definitions.Connection(name=row.name, url=row.url,
                                  allow_app_database=row.allow_app_database)


def warehouse_limits(settings: Settings | None = None) -> definitions.Limits:
    """The cost and safety limits of a query in a warehouse, from the settings
    (WAREHOUSE_*)."""
    settings = settings or get_settings()
    return definitions.Limits(
        statement_timeout_seconds=settings.warehouse_statement_timeout_seconds,
        max_result_rows=settings.warehouse_max_result_rows,
        multi_variant_threshold=settings.warehouse_multi_variant_threshold,
        late_data_days=settings.warehouse_late_data_days,
    )


def check_connection(session: Session, *, name: str, actor: Actor) -> str:
    """Connect and run ``SELECT 1`` (editors): a plain-words answer; WarehouseUnavailable
    when it cannot be reached, InvalidInput when it is not usable as defined."""
    actor.require("editor", "test warehouse connections")
    with transaction(session):
        connection = connection_definition(_load_connection(session, name))
    return engines.check_connection(connection, limits=warehouse_limits())


@dataclass(frozen=True)
class SourcePreview:
    """The first rows of a source's SQL, as its warehouse returns them."""

    source: str
    kind: str
    """``assignment`` or ``fact``."""
    sql: str
    """The exact SQL that ran."""
    columns: dict[str, str]
    """Column -> its type in the warehouse (as Ibis names it: string, timestamp, float64…)."""
    rows: list[dict[str, Any]]
    """Plain values (None for NULL)."""
    seconds: float
    problems: tuple[str, ...] = ()
    """What a refresh would refuse in its columns (missing, mistyped), naming the source and
    the column; empty when they are as declared."""


def preview_source(session: Session, *, name: str, actor: Actor,
                   rows: int = PREVIEW_ROWS) -> SourcePreview:
    """The first ``rows`` rows of an assignment or fact source, run in its warehouse (editors:
    they are unit-level rows). InvalidInput naming the source when its SQL fails there;
    WarehouseUnavailable when the warehouse cannot be reached."""
    actor.require("editor", "preview warehouse sources")
    if not 1 <= rows <= MAX_PREVIEW_ROWS:
        raise InvalidInput(f"rows: preview 1 to {MAX_PREVIEW_ROWS} rows (got {rows})")
    with transaction(session):
        kind = warehouse.source_kind_of_name(session, name=name)
        row: AssignmentSource | FactSource | None = (
            warehouse.get_assignment_source(session, name=name) if kind == "assignment"
            else warehouse.get_fact_source(session, name=name))
        if row is None:
            raise NotFound(f"No assignment or fact source named '{name}'.")
        link = warehouse.get_connection_by_id(session, connection_id=row.connection_id)
        assert link is not None
        connection, sql = connection_definition(link), row.sql
        declared = list((row.dimensions if isinstance(row, AssignmentSource) else row.columns)
                        or ())
        covariates = list(row.covariates or ()) if isinstance(row, AssignmentSource) else []
    import ibis  # the expression library; not needed to import this module

    from core.warehouse.compute import schema_problems

    limits = warehouse_limits()
    backend = engines.connect(connection, limits=limits, label=f"preview of {name}")
    try:
        try:
            table = backend.sql(sql)
            schema = {col: str(dtype) for col, dtype in table.schema().items()}
        except Exception as exc:  # noqa: BLE001 - each engine raises its own error types
            raise InvalidInput(f"sql: the SQL of {kind} source '{name}' failed in connection "
                               f"'{connection.name}': {engines.first_line(exc)}") from None
        keys = definitions.ASSIGNMENT_COLUMNS if kind == "assignment" else \
            definitions.FACT_KEY_COLUMNS
        problems = schema_problems(table, what=f"{kind} source '{name}'",
                                   required=[*keys, *declared, *covariates],
                                   numeric=declared if kind == "fact" else covariates)
        text = (f"/* ExperimentOS preview of {kind} source '{name}' */\n"
                + ibis.to_sql(table.limit(rows), dialect=backend.name))
        ran = engines.run(backend, text, timeout=limits.statement_timeout_seconds)
    finally:
        engines.disconnect(backend)
    frame = ran.frame.astype(object).where(ran.frame.notna(), None)
    return SourcePreview(source=name, kind=str(kind), sql=text, columns=schema,
                         rows=frame.to_dict("records"), seconds=ran.seconds,
                         problems=tuple(problems))


# --------------------------------------------------------------------------- sources


def _sql_and_connection(session: Session, *, sql: str, connection: str,
                        problems: list[str]) -> WarehouseConnection | None:
    problem = select_problem(sql, field="sql")
    if problem:
        problems.append(problem)
    return _connection_named(session, connection, problems)


def list_assignment_sources(session: Session) -> list[AssignmentSourceView]:
    with transaction(session):
        rows = warehouse.list_assignment_sources(session)
        names = _names(session, rows)
        return [_assignment_view(session, row, names) for row in rows]


def _load_assignment(session: Session, name: str) -> AssignmentSource:
    row = warehouse.get_assignment_source(session, name=name)
    if row is None:
        raise NotFound(f"No assignment source named '{name}'.")
    return row


def get_assignment_source(session: Session, *, name: str) -> AssignmentSourceView:
    with transaction(session):
        row = _load_assignment(session, name)
        return _assignment_view(session, row, _names(session, [row]))


def create_assignment_source(
    session: Session, *, data: dict[str, Any] | AssignmentSourceFields, actor: Actor
) -> AssignmentSourceView:
    """Add an assignment source (editors). Audited."""
    actor.require("editor", "add assignment sources")
    fields: AssignmentSourceFields = _validated(AssignmentSourceFields, data)
    with transaction(session):
        problems: list[str] = []
        connection = _sql_and_connection(session, sql=fields.sql, connection=fields.connection,
                                         problems=problems)
        problems += column_problems(fields.dimensions, field="dimensions",
                                    reserved=definitions.ASSIGNMENT_COLUMNS)
        problems += covariate_problems(fields.covariates, fields.dimensions)
        if problems:
            raise InvalidInput(problems)
        assert connection is not None
        _name_free(session, fields.name)
        row = AssignmentSource(name=fields.name, connection_id=connection.id,
                               sql=_statement(fields.sql), dimensions=list(fields.dimensions),
                               covariates=list(fields.covariates) or None,
                               created_by=actor.name, updated_by=actor.name)
        session.add(row)
        session.flush()
        repo.add_audit(session, actor=actor.name, entity_type="assignment_source",
                       entity_id=row.id, action="create",
                       changes={"name": [None, row.name], "connection": [None, connection.name],
                                "sql": [None, row.sql], "dimensions": [None, row.dimensions],
                                **({"covariates": [None, row.covariates]} if row.covariates
                                   else {})})
        return _assignment_view(session, row, {connection.id: connection.name})


def _statement(sql: str) -> str:
    """The SQL as stored: one statement, without a trailing semicolon."""
    return sql.strip().rstrip(";").strip()


def _source_edit(session: Session, row: Any, edit: BaseModel, listed: str,
                 reserved: tuple[str, ...]) -> tuple[dict[str, list[Any]], list[str]]:
    """The changes an edit makes to a source, and the problems with them."""
    problems: list[str] = []
    given = edit.model_dump(exclude_none=True)
    names = _names(session, [row])
    diff: dict[str, list[Any]] = {}
    if "connection" in given and given["connection"] != names[row.connection_id]:
        target = _connection_named(session, given["connection"], problems)
        if target is not None:
            diff["connection"] = [names[row.connection_id], target.name]
            row_connection = target.id
            diff["connection_id"] = [row.connection_id, row_connection]
    if "sql" in given and _statement(given["sql"]) != row.sql:
        problem = select_problem(given["sql"], field="sql")
        if problem:
            problems.append(problem)
        diff["sql"] = [row.sql, _statement(given["sql"])]
    if listed in given and list(given[listed]) != list(getattr(row, listed) or []):
        problems += column_problems(list(given[listed]), field=listed, reserved=reserved)
        diff[listed] = [list(getattr(row, listed) or []), list(given[listed])]
    return diff, problems


def _apply_source_edit(session: Session, row: Any, diff: dict[str, list[Any]], actor: Actor,
                       entity_type: str) -> None:
    for k, (_, v) in diff.items():
        if k != "connection":
            setattr(row, k, v)
    row.updated_by = actor.name
    session.flush()
    repo.add_audit(session, actor=actor.name, entity_type=entity_type, entity_id=row.id,
                   action="update",
                   changes={k: v for k, v in diff.items() if k != "connection_id"})


def update_assignment_source(
    session: Session, *, name: str, changes: dict[str, Any] | AssignmentSourceEdit,
    actor: Actor,
) -> AssignmentSourceView:
    """Change an assignment source's connection, SQL, dimensions or covariates (editors).
    Audited; the next refresh of each experiment on it recomputes every day."""
    actor.require("editor", "change assignment sources")
    edit: AssignmentSourceEdit = _validated(AssignmentSourceEdit, changes)
    with transaction(session):
        row = _load_assignment(session, name)
        diff, problems = _source_edit(session, row, edit, "dimensions",
                                      definitions.ASSIGNMENT_COLUMNS)
        covariates = list(row.covariates or ()) if edit.covariates is None else edit.covariates
        if covariates != list(row.covariates or ()) or "dimensions" in diff:
            problems += covariate_problems(
                covariates, diff["dimensions"][1] if "dimensions" in diff
                else list(row.dimensions or ()))
        if covariates != list(row.covariates or ()):
            diff["covariates"] = [row.covariates, covariates or None]
        if problems:
            raise InvalidInput(problems)
        if diff:
            _apply_source_edit(session, row, diff, actor, "assignment_source")
        return _assignment_view(session, row, _names(session, [row]))


def delete_assignment_source(session: Session, *, name: str, actor: Actor) -> None:
    """Remove an assignment source no experiment reads (editors). Audited."""
    actor.require("editor", "delete assignment sources")
    with transaction(session):
        row = _load_assignment(session, name)
        users = warehouse.experiments_using_assignment_source(session, source_id=row.id)
        if users:
            raise RuleViolation(f"Assignment source '{name}' feeds the experiment(s) "
                                f"{', '.join(users)}: detach them first.")
        repo.add_audit(session, actor=actor.name, entity_type="assignment_source",
                       entity_id=row.id, action="delete",
                       changes={"name": [row.name, None], "sql": [row.sql, None]})
        session.delete(row)


def list_fact_sources(session: Session) -> list[FactSourceView]:
    with transaction(session):
        rows = warehouse.list_fact_sources(session)
        names = _names(session, rows)
        return [_fact_view(session, row, names) for row in rows]


def _load_fact(session: Session, name: str) -> FactSource:
    row = warehouse.get_fact_source(session, name=name)
    if row is None:
        raise NotFound(f"No fact source named '{name}'.")
    return row


def get_fact_source(session: Session, *, name: str) -> FactSourceView:
    with transaction(session):
        row = _load_fact(session, name)
        return _fact_view(session, row, _names(session, [row]))


def create_fact_source(
    session: Session, *, data: dict[str, Any] | FactSourceFields, actor: Actor
) -> FactSourceView:
    """Add a fact source (editors). Audited."""
    actor.require("editor", "add fact sources")
    fields: FactSourceFields = _validated(FactSourceFields, data)
    with transaction(session):
        problems: list[str] = []
        connection = _sql_and_connection(session, sql=fields.sql, connection=fields.connection,
                                         problems=problems)
        problems += column_problems(fields.columns, field="columns",
                                    reserved=definitions.FACT_KEY_COLUMNS)
        if problems:
            raise InvalidInput(problems)
        assert connection is not None
        _name_free(session, fields.name)
        row = FactSource(name=fields.name, connection_id=connection.id,
                         sql=_statement(fields.sql), columns=list(fields.columns),
                         created_by=actor.name, updated_by=actor.name)
        session.add(row)
        session.flush()
        repo.add_audit(session, actor=actor.name, entity_type="fact_source", entity_id=row.id,
                       action="create",
                       changes={"name": [None, row.name], "connection": [None, connection.name],
                                "sql": [None, row.sql], "columns": [None, row.columns]})
        return _fact_view(session, row, {connection.id: connection.name})


def update_fact_source(
    session: Session, *, name: str, changes: dict[str, Any] | FactSourceEdit, actor: Actor
) -> FactSourceView:
    """Change a fact source's connection, SQL or columns (editors); a column a metric uses
    stays declared. Audited; the next refresh of each experiment using it recomputes every
    day."""
    actor.require("editor", "change fact sources")
    edit: FactSourceEdit = _validated(FactSourceEdit, changes)
    with transaction(session):
        row = _load_fact(session, name)
        diff, problems = _source_edit(session, row, edit, "columns",
                                      definitions.FACT_KEY_COLUMNS)
        if "columns" in diff:
            used = warehouse.columns_used_on_fact_source(session, source_id=row.id)
            dropped = {c: ms for c, ms in used.items() if c not in diff["columns"][1]}
            problems += [f"columns: {c} is used by the metric(s) {', '.join(ms)}: keep it "
                         "declared" for c, ms in sorted(dropped.items())]
        if problems:
            raise InvalidInput(problems)
        if diff:
            _apply_source_edit(session, row, diff, actor, "fact_source")
        return _fact_view(session, row, _names(session, [row]))


def delete_fact_source(session: Session, *, name: str, actor: Actor) -> None:
    """Remove a fact source no metric is computed from (editors). Audited."""
    actor.require("editor", "delete fact sources")
    with transaction(session):
        row = _load_fact(session, name)
        users = warehouse.metrics_on_fact_source(session, source_id=row.id)
        if users:
            raise RuleViolation(f"Fact source '{name}' feeds the metric(s) {', '.join(users)}: "
                                "it stays while they do.")
        repo.add_audit(session, actor=actor.name, entity_type="fact_source", entity_id=row.id,
                       action="delete",
                       changes={"name": [row.name, None], "sql": [row.sql, None]})
        session.delete(row)


# --------------------------------------------------------------------------- experiments


def attach_experiment(
    session: Session,
    *,
    experiment_id: int,
    assignment_source: str | None,
    experiment_key: str | None,
    expected_version: int,
    actor: Actor,
    reason: str | None = None,
) -> ExperimentView:
    """Read an experiment's exposures from ``assignment_source`` under ``experiment_key``
    (both None: detach it). A registry change like any other: versioned, audited, and part of
    the plan frozen at launch (after it, a change needs a ``reason`` and is a plan
    deviation)."""
    return update_experiment(
        session, experiment_id=experiment_id, expected_version=expected_version, actor=actor,
        reason=reason,
        changes={"assignment_source": assignment_source, "experiment_key": experiment_key},
    )
