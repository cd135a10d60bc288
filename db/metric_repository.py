"""Data access for metric data: daily sufficient statistics (whole arms, and per dimension value
for segment drill-down), assignment counts, SQL sources and result snapshots. Keyword-only
arguments, an explicit session; services own the transaction, so nothing here commits.

Upserts use each dialect's ``INSERT ... ON CONFLICT DO UPDATE`` (SQLite >= 3.24 and PostgreSQL),
keyed on the unique constraints of the tables: loading a day again replaces it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    MetaData,
    Table,
    Text,
    bindparam,
    case,
    cast,
    delete,
    distinct,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.stats.capping import AppliedCap
from core.stats.covariates import CovariateSums
from core.stats.metric_stats import COVARIATE_SUMS, RATIO_SUMS, MetricStats
from core.stats.metric_stats import SUM_FIELDS as STAT_FIELDS
from core.stats.quantile import QUANTILE_FIELDS, QuantileStats
from db.models import (
    AppliedCap as AppliedCapRow,
)
from db.models import (
    AssignmentDailyCount,
    AssignmentSliceDailyCount,
    Experiment,
    Metric,
    MetricDailyStat,
    MetricQuantileStat,
    MetricSliceDailyStat,
    MetricSource,
    ResultSnapshot,
    Variant,
)


@dataclass(frozen=True)
class DailyStatRow:
    """One stored row of :class:`MetricDailyStat`: a metric's sums in one variant on one day."""

    variant_id: int
    metric_id: int
    day: date
    stats: MetricStats


@dataclass(frozen=True)
class AssignmentRow:
    variant_id: int
    day: date
    units: int


@dataclass(frozen=True)
class SliceStatRow:
    """One stored row of :class:`MetricSliceDailyStat`: a metric's daily sums in one variant
    over the units with one value of a dimension (e.g. dimension "country", value "DE")."""

    variant_id: int
    metric_id: int
    day: date
    dimension: str
    value: str
    stats: MetricStats


@dataclass(frozen=True)
class SliceAssignmentRow:
    """Units assigned to a variant on a day with one value of a dimension (SRM per value)."""

    variant_id: int
    day: date
    dimension: str
    value: str
    units: int


_COLUMN_OF: dict[str, str] = {
    **{name: name for name in STAT_FIELDS},
    "sum_x": "cov_sum", "sum_x2": "cov_sum_squares", "sum_xy": "cov_sum_products",
}
""":class:`MetricStats` field -> column of the stats tables (the covariate sums keep the names
of their columns, ``cov_*``)."""
_SLICE_FIELDS = tuple(name for name in STAT_FIELDS if name not in COVARIATE_SUMS)
"""The slice table stores no covariate sums."""
if ("n", "sum", "sum_squares", *RATIO_SUMS) != _SLICE_FIELDS:  # replace_slice_stats' writers
    raise RuntimeError(f"the slice sums changed ({_SLICE_FIELDS}): update replace_slice_stats")


def _stat_columns(stats: MetricStats, names: tuple[str, ...] = STAT_FIELDS) -> dict[str, Any]:
    return {_COLUMN_OF[name]: getattr(stats, name) for name in names}


def _covariate_json(stats: MetricStats) -> dict[str, Any] | None:
    """The ``covariate_sums`` column of a record (None without the part)."""
    return None if stats.covariates is None else stats.covariates.to_json()


def _covariates(value: Any) -> CovariateSums | None:
    """The record's covariate part from the stored column (JSON text on some drivers)."""
    if value is None:
        return None
    return CovariateSums.from_json(json.loads(value) if isinstance(value, str) else value)


def _selected(table: Any, names: tuple[str, ...] = STAT_FIELDS) -> list[Any]:
    return [table.c[_COLUMN_OF[name]] for name in names]


def dialect_insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_update`` (SQLite and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"upserts are implemented for SQLite and PostgreSQL, not {dialect}")


def _upsert(session: Session, table: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """Insert or replace ``rows`` on ``keys``. SQLite: one statement executed for every row
    (in process, cheap). PostgreSQL: the rows are copied (``COPY``) into a temporary table
    dropped at commit, then one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` — psycopg2
    sent an ``ON CONFLICT`` statement per row, and multi-row VALUES cost more to compile than
    to run (5,400 daily rows: 1.3 s either way, against 0.08 s in the server)."""
    if not rows:
        return
    stmt = dialect_insert(session, table)
    columns = list(rows[0])
    updates = [c for c in columns if c not in keys]
    if session.get_bind().dialect.name != "postgresql":
        set_ = {c: stmt.excluded[c] for c in updates} | {"loaded_at": func.now()}
        session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=set_), rows)
        return
    staging = Table(f"_eos_{table.name}_{uuid.uuid4().hex[:12]}", MetaData(),
                    *(Column(c.name, c.type) for c in table.columns if c.name in columns),
                    prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
    staging.create(session.connection())
    _bulk_insert(session, staging, columns, [tuple(r[c] for c in columns) for r in rows])
    names = ", ".join(f'"{c}"' for c in columns)
    sets = ", ".join([*(f'"{c}" = EXCLUDED."{c}"' for c in updates), '"loaded_at" = now()'])
    session.connection().exec_driver_sql(
        f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{staging.name}" '
        f'ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {sets}')


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: Any) -> str:
    """One field of PostgreSQL's COPY text format (NULL is ``\\N``; floats round-trip)."""
    if value is None:
        return "\\N"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value).translate(_COPY_ESCAPES)
    return str(value).translate(_COPY_ESCAPES)


def _copy_lines(session: Session, table: Any, columns: Sequence[str], lines: Iterable[str]
                ) -> None:
    """``COPY table (columns) FROM STDIN`` of lines in COPY's text format, in the caller's
    transaction (PostgreSQL)."""
    import io

    buffer = io.StringIO("".join(lines))
    names = ", ".join(f'"{c}"' for c in columns)
    cursor = session.connection().connection.cursor()
    try:
        cursor.copy_expert(f'COPY "{table.name}" ({names}) FROM STDIN', buffer)
    finally:
        cursor.close()


def _bulk_insert(session: Session, table: Any, columns: Sequence[str],
                 rows: Sequence[Sequence[Any]]) -> None:
    """Insert many new rows (omitted columns take their defaults) in the caller's transaction:
    ``COPY ... FROM STDIN`` on PostgreSQL, one prepared ``INSERT`` executed for every row on
    SQLite. Both skip building a parameter dictionary per row and the ORM's statement
    batching: loading a file's 118,800 slice rows took 7.4 s on PostgreSQL and 2.8 s on
    SQLite that way (issue 25; ``bench/bench_load.py``)."""
    if not rows:
        return
    if session.connection().dialect.name == "postgresql":
        _copy_lines(session, table, columns,
                    ("\t".join(map(_copy_field, row)) + "\n" for row in rows))
        return
    dated = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, Date)]
    if dated:  # ISO text, as SQLAlchemy stores a date in SQLite; each day formatted once
        day_text = _day_texts()
        listed = [list(row) for row in rows]
        for row in listed:
            for i in dated:
                row[i] = day_text(row[i])
        rows = [tuple(row) for row in listed]
    _insert_rows(session, table, columns, rows)


def _insert_rows(session: Session, table: Any, columns: Sequence[str],
                 rows: Sequence[Sequence[Any]]) -> None:
    """One prepared ``INSERT`` executed for every row (SQLite; dates already ISO text)."""
    if not rows:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    session.connection().exec_driver_sql(
        f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', rows)


def _day_texts() -> Callable[[date], str]:
    """A day's ISO text, each day formatted once (a file's rows repeat a few days many times)."""
    texts: dict[date, str] = {}

    def text(day: date) -> str:
        return texts.get(day) or texts.setdefault(day, day.isoformat())
    return text


def upsert_daily_stats(
    session: Session, *, experiment_id: int, rows: Sequence[DailyStatRow], source: str
) -> int:
    """Insert or replace daily stats keyed on (experiment, variant, metric, day); returns count."""
    _upsert(
        session,
        MetricDailyStat.__table__,
        ["experiment_id", "variant_id", "metric_id", "day"],
        [
            {"experiment_id": experiment_id, "variant_id": r.variant_id,
             "metric_id": r.metric_id, "day": r.day, **_stat_columns(r.stats),
             "covariate_sums": _covariate_json(r.stats), "source": source}
            for r in rows
        ],
    )
    return len(rows)


@dataclass(frozen=True)
class QuantileStatRow:
    """One stored row of :class:`MetricQuantileStat`: a quantile metric's statistics in one
    variant over all its units."""

    variant_id: int
    metric_id: int
    stats: QuantileStats


def replace_quantile_stats(
    session: Session, *, experiment_id: int, metric_ids: Sequence[int],
    rows: Sequence[QuantileStatRow], source: str,
) -> int:
    """Remove the quantile statistics of ``metric_ids`` and store ``rows`` (a load carrying
    a quantile metric defines it whole: an arm it has no record for keeps none)."""
    session.execute(delete(MetricQuantileStat).where(
        MetricQuantileStat.experiment_id == experiment_id,
        MetricQuantileStat.metric_id.in_(list(metric_ids))))
    return upsert_quantile_stats(session, experiment_id=experiment_id, rows=rows, source=source)


def upsert_quantile_stats(
    session: Session, *, experiment_id: int, rows: Sequence[QuantileStatRow], source: str
) -> int:
    """Insert or replace quantile statistics keyed on (experiment, variant, metric)."""
    _upsert(
        session,
        MetricQuantileStat.__table__,
        ["experiment_id", "variant_id", "metric_id"],
        [
            {"experiment_id": experiment_id, "variant_id": r.variant_id,
             "metric_id": r.metric_id,
             **{name: getattr(r.stats, name) for name in QUANTILE_FIELDS}, "source": source}
            for r in rows
        ],
    )
    return len(rows)


def quantile_stats(session: Session, *, experiment_id: int) -> list[QuantileStatRow]:
    """Every stored quantile-statistics row of an experiment, by metric and variant."""
    table = MetricQuantileStat.__table__
    query = (select(table.c.variant_id, table.c.metric_id,
                    *(table.c[name] for name in QUANTILE_FIELDS))
             .where(table.c.experiment_id == experiment_id)
             .order_by(table.c.metric_id, table.c.variant_id))
    return [QuantileStatRow(vid, mid, QuantileStats(*fields))
            for vid, mid, *fields in session.execute(query)]


def upsert_assignments(
    session: Session, *, experiment_id: int, rows: Sequence[AssignmentRow]
) -> int:
    """Insert or replace assignment counts keyed on (experiment, variant, day)."""
    _upsert(
        session,
        AssignmentDailyCount.__table__,
        ["experiment_id", "variant_id", "day"],
        [
            {"experiment_id": experiment_id, "variant_id": r.variant_id, "day": r.day,
             "units": r.units}
            for r in rows
        ],
    )
    return len(rows)


def delete_daily_stats(
    session: Session, *, experiment_id: int, metric_ids: Sequence[int]
) -> int:
    """Remove every day of the given metrics (before a full reload); returns rows removed."""
    result = session.execute(
        delete(MetricDailyStat).where(
            MetricDailyStat.experiment_id == experiment_id,
            MetricDailyStat.metric_id.in_(list(metric_ids)),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def save_applied_caps(
    session: Session, *, experiment_id: int, caps: dict[int, AppliedCap], source: str
) -> None:
    """Record the cap each capped metric's load applied (metric id -> cap), replacing the
    previous load's."""
    _upsert(session, AppliedCapRow.__table__, ["experiment_id", "metric_id"], [
        {"experiment_id": experiment_id, "metric_id": metric_id, "cap": cap.cap,
         "denominator_cap": cap.denominator_cap, "units": cap.units, "source": source[:200]}
        for metric_id, cap in sorted(caps.items())
    ])


def applied_caps(session: Session, *, experiment_id: int) -> dict[int, AppliedCap]:
    """The cap the latest load applied to each capped metric of the experiment, by metric id."""
    rows = session.execute(
        select(AppliedCapRow.metric_id, AppliedCapRow.cap, AppliedCapRow.denominator_cap,
               AppliedCapRow.units).where(AppliedCapRow.experiment_id == experiment_id))
    return {r.metric_id: AppliedCap(r.cap, r.denominator_cap, r.units) for r in rows}


def delete_assignments(session: Session, *, experiment_id: int) -> int:
    result = session.execute(
        delete(AssignmentDailyCount).where(AssignmentDailyCount.experiment_id == experiment_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def daily_stats(
    session: Session, *, experiment_id: int, through: date | None = None
) -> list[DailyStatRow]:
    """Every stored daily-stat row of an experiment (up to `through`), ordered by day."""
    query = select(
        MetricDailyStat.variant_id, MetricDailyStat.metric_id, MetricDailyStat.day,
        MetricDailyStat.covariate_sums, *_selected(MetricDailyStat.__table__),
    ).where(MetricDailyStat.experiment_id == experiment_id)
    if through is not None:
        query = query.where(MetricDailyStat.day <= through)
    query = query.order_by(
        MetricDailyStat.day, MetricDailyStat.metric_id, MetricDailyStat.variant_id
    )
    return [DailyStatRow(vid, mid, day, MetricStats(
                **dict(zip(STAT_FIELDS, sums, strict=True)), covariates=_covariates(vec)))
            for vid, mid, day, vec, *sums in session.execute(query)]


@dataclass(frozen=True)
class StatTotal:
    """A metric's sums in one variant over every day up to a date, and the first and last day
    with a stored row."""

    variant_id: int
    metric_id: int
    first_day: date
    last_day: date
    stats: MetricStats


def _lacking(table: Any, column: str) -> Any:
    """Days with units but without a part's sums (a part is given whole or not at all)."""
    return func.sum(case((table.c[column].is_(None) & (table.c.n > 0), 1), else_=0))


def _parts(names: tuple[str, ...], sums: Sequence[Any], lacking: int) -> dict[str, Any]:
    known = not lacking and None not in sums
    return {name: float(x) if known else None for name, x in zip(names, sums, strict=True)}


def stat_totals(
    session: Session, *, experiment_id: int, through: date | None = None
) -> list[StatTotal]:
    """Every metric's sums per variant over the days (up to ``through``), added in the
    database, ordered by variant and metric (the table's unique key). Equal to pooling
    :func:`daily_stats` with ``+``, the covariate and ratio parts included: unknown when a day
    with units lacks them (tests/db/test_metric_repository.py)."""
    t = MetricDailyStat.__table__
    cov = tuple(_COLUMN_OF[name] for name in COVARIATE_SUMS)
    ratio = tuple(_COLUMN_OF[name] for name in RATIO_SUMS)
    query = select(
        t.c.variant_id, t.c.metric_id, func.min(t.c.day), func.max(t.c.day), func.sum(t.c.n),
        func.sum(t.c.sum), func.sum(t.c.sum_squares),
        *(func.sum(t.c[c]) for c in cov), _lacking(t, cov[0]),
        *(func.sum(t.c[c]) for c in ratio), _lacking(t, ratio[0]),
        _lacking(t, "covariate_sums"),
        func.sum(case((t.c.covariate_sums.is_not(None), 1), else_=0)),
    ).where(t.c.experiment_id == experiment_id)
    if through is not None:
        query = query.where(t.c.day <= through)
    keys = (t.c.variant_id, t.c.metric_id)
    query = query.group_by(*keys).order_by(*keys)
    out = []
    pooled: list[tuple[int, int]] = []
    for vid, mid, first, last, n, total, squares, *rest in session.execute(query):
        cov_sums, cov_lacking = rest[:3], rest[3]
        ratio_sums, ratio_lacking = rest[4:7], rest[7]
        vec_lacking, vec_given = rest[8], rest[9]
        if not vec_lacking and vec_given:
            pooled.append((vid, mid))
        out.append(StatTotal(vid, mid, _as_date(first), _as_date(last), MetricStats(
            int(n), float(total), float(squares),
            **_parts(COVARIATE_SUMS, cov_sums, cov_lacking),
            **_parts(RATIO_SUMS, ratio_sums, ratio_lacking))))
    if pooled:
        vectors = _covariate_totals(session, experiment_id, through, set(pooled))
        out = [replace(r, stats=replace(r.stats, covariates=vectors[(r.variant_id,
                                                                      r.metric_id)]))
               if (r.variant_id, r.metric_id) in vectors else r for r in out]
    return out


def _covariate_totals(session: Session, experiment_id: int, through: date | None,
                      wanted: set[tuple[int, int]]) -> dict[tuple[int, int], CovariateSums]:
    """The covariate vectors of ``wanted`` (variant, metric) pairs pooled over the days with
    ``+`` (a JSON column is not summed in SQL); only pairs whose every day with units has one
    are asked for."""
    t = MetricDailyStat.__table__
    query = select(t.c.variant_id, t.c.metric_id, t.c.covariate_sums).where(
        t.c.experiment_id == experiment_id, t.c.covariate_sums.is_not(None))
    if through is not None:
        query = query.where(t.c.day <= through)
    out: dict[tuple[int, int], CovariateSums] = {}
    mixed: set[tuple[int, int]] = set()
    for vid, mid, value in session.execute(query.order_by(t.c.day)):
        key = (vid, mid)
        vec = _covariates(value)
        if key not in wanted or vec is None or key in mixed:
            continue
        if key in out and out[key].names != vec.names:
            mixed.add(key)  # days loaded with different covariates: no common regression
            del out[key]
            continue
        out[key] = out[key] + vec if key in out else vec
    return out


def _as_date(value: Any) -> date:
    """A day from an aggregate: SQLite returns min/max of a date column as its text."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def assignments(
    session: Session, *, experiment_id: int, through: date | None = None
) -> list[AssignmentRow]:
    """Assignment counts per variant and day (up to `through`), ordered by day."""
    query = select(
        AssignmentDailyCount.variant_id, AssignmentDailyCount.day, AssignmentDailyCount.units
    ).where(AssignmentDailyCount.experiment_id == experiment_id)
    if through is not None:
        query = query.where(AssignmentDailyCount.day <= through)
    query = query.order_by(AssignmentDailyCount.day, AssignmentDailyCount.variant_id)
    return [AssignmentRow(*row) for row in session.execute(query)]


def replace_slice_stats(
    session: Session,
    *,
    experiment_id: int,
    metric_ids: Sequence[int],
    days: Sequence[date] | None,
    rows: Sequence[SliceStatRow],
    source: str,
) -> int:
    """Replace the slice stats of the given metrics on the given days (None: every day) by
    ``rows``: a day reloaded without a dimension keeps none of its old slices. Returns count."""
    if any(r.stats.has_covariate for r in rows):
        raise ValueError("slice stats carry no covariate sums (the table has no column for them)")
    query = delete(MetricSliceDailyStat).where(
        MetricSliceDailyStat.experiment_id == experiment_id,
        MetricSliceDailyStat.metric_id.in_(list(metric_ids)),
    )
    if days is not None:
        query = query.where(MetricSliceDailyStat.day.in_(list(days)))
    session.execute(query)
    columns = ["experiment_id", "variant_id", "metric_id", "day", "dimension", "value",
               *(_COLUMN_OF[name] for name in _SLICE_FIELDS), "source"]
    if session.connection().dialect.name == "postgresql":
        _copy_lines(session, MetricSliceDailyStat.__table__, columns,
                    _slice_copy_lines(experiment_id, rows, source))
        return len(rows)
    day_text = _day_texts()
    _insert_rows(
        session, MetricSliceDailyStat.__table__, columns,
        [(experiment_id, r.variant_id, r.metric_id, day_text(r.day), r.dimension, r.value,
          r.stats.n, r.stats.sum, r.stats.sum_squares, r.stats.sum_den, r.stats.sum_den_squares,
          r.stats.sum_num_den, source) for r in rows],
    )
    return len(rows)


def _slice_copy_lines(experiment_id: int, rows: Sequence[SliceStatRow], source: str
                      ) -> Iterator[str]:
    """The COPY text lines of slice rows, in :func:`replace_slice_stats`' column order: one
    f-string per row, each day, dimension and value formatted once (a file's slices repeat a
    few of each tens of thousands of times). :func:`_copy_field`'s format, 3x faster."""
    texts: dict[str, str] = {}
    day_text = _day_texts()
    head = f"{experiment_id}\t"
    tail = f"\t{_copy_field(source)}\n"
    for r in rows:
        s = r.stats
        day = day_text(r.day)
        dimension = texts.get(r.dimension) or texts.setdefault(r.dimension,
                                                               _copy_field(r.dimension))
        value = texts.get(r.value) or texts.setdefault(r.value, _copy_field(r.value))
        if s.sum_den is None:
            ratio = "\\N\t\\N\t\\N"
        else:
            ratio = (f"{float(s.sum_den)!r}\t{float(s.sum_den_squares)!r}\t"  # type: ignore[arg-type]
                     f"{float(s.sum_num_den)!r}")  # type: ignore[arg-type]
        yield (f"{head}{r.variant_id}\t{r.metric_id}\t{day}\t{dimension}\t{value}\t{s.n}\t"
               f"{float(s.sum)!r}\t{float(s.sum_squares)!r}\t{ratio}{tail}")


def replace_slice_assignments(
    session: Session,
    *,
    experiment_id: int,
    days: Sequence[date] | None,
    rows: Sequence[SliceAssignmentRow],
) -> int:
    """Replace the per-dimension-value assignment counts of the given days (None: every day)."""
    query = delete(AssignmentSliceDailyCount).where(
        AssignmentSliceDailyCount.experiment_id == experiment_id)
    if days is not None:
        query = query.where(AssignmentSliceDailyCount.day.in_(list(days)))
    session.execute(query)
    _bulk_insert(
        session, AssignmentSliceDailyCount.__table__,
        ["experiment_id", "variant_id", "day", "dimension", "value", "units"],
        [(experiment_id, r.variant_id, r.day, r.dimension, r.value, r.units) for r in rows],
    )
    return len(rows)


def daily_slice_stats(
    session: Session,
    *,
    experiment_id: int,
    through: date | None = None,
    dimension: str | None = None,
) -> list[SliceStatRow]:
    """Per-dimension-value daily stats of an experiment (up to ``through``; one dimension or
    all), ordered by dimension, value, day, metric and variant."""
    t = MetricSliceDailyStat
    query = select(
        t.variant_id, t.metric_id, t.day, t.dimension, t.value,
        *_selected(t.__table__, _SLICE_FIELDS),
    ).where(t.experiment_id == experiment_id)
    if through is not None:
        query = query.where(t.day <= through)
    if dimension is not None:
        query = query.where(t.dimension == dimension)
    query = query.order_by(t.dimension, t.value, t.day, t.metric_id, t.variant_id)
    return [SliceStatRow(vid, mid, day, dimension, value,
                         MetricStats(**dict(zip(_SLICE_FIELDS, sums, strict=True))))
            for vid, mid, day, dimension, value, *sums in session.execute(query)]


def slice_assignments(
    session: Session,
    *,
    experiment_id: int,
    through: date | None = None,
    dimension: str | None = None,
) -> list[SliceAssignmentRow]:
    """Units per variant, day and dimension value (up to ``through``), ordered like
    :func:`daily_slice_stats`."""
    t = AssignmentSliceDailyCount
    query = select(t.variant_id, t.day, t.dimension, t.value, t.units).where(
        t.experiment_id == experiment_id)
    if through is not None:
        query = query.where(t.day <= through)
    if dimension is not None:
        query = query.where(t.dimension == dimension)
    query = query.order_by(t.dimension, t.value, t.day, t.variant_id)
    return [SliceAssignmentRow(*row) for row in session.execute(query)]


@dataclass(frozen=True)
class SliceTotalRow:
    """A metric's sums in one variant over the units with one value of a dimension, every day
    up to a date added (segment drill-down never reads the day)."""

    variant_id: int
    metric_id: int
    dimension: str
    value: str
    stats: MetricStats


def slice_stat_totals(
    session: Session,
    *,
    experiment_id: int,
    through: date | None = None,
    dimension: str | None = None,
) -> list[SliceTotalRow]:
    """Per-dimension-value stats summed over the days (up to ``through``) in the database: one
    row per dimension, value, metric and variant, in that order (the order of the table's
    unique key, so the database reads it in order). Equal to pooling :func:`daily_slice_stats`
    day by day with ``+``, the ratio sums included: unknown when a day with units lacks them
    (tests/db/test_metric_repository.py)."""
    t = MetricSliceDailyStat.__table__
    ratio = tuple(name for name in _SLICE_FIELDS if name in RATIO_SUMS)
    lacking = _lacking(t, "sum_den")
    query = select(
        t.c.variant_id, t.c.metric_id, t.c.dimension, t.c.value, func.sum(t.c.n),
        func.sum(t.c.sum), func.sum(t.c.sum_squares),
        *(func.sum(t.c[_COLUMN_OF[name]]) for name in ratio), lacking,
    ).where(t.c.experiment_id == experiment_id)
    if through is not None:
        query = query.where(t.c.day <= through)
    if dimension is not None:
        query = query.where(t.c.dimension == dimension)
    keys = (t.c.dimension, t.c.value, t.c.metric_id, t.c.variant_id)
    query = query.group_by(*keys).order_by(*keys)
    out = []
    for vid, mid, dim, value, n, total, squares, *parts, missing in session.execute(query):
        out.append(SliceTotalRow(vid, mid, dim, value, MetricStats(
            int(n), float(total), float(squares), **_parts(ratio, parts, missing))))
    return out


def slice_assignment_totals(
    session: Session,
    *,
    experiment_id: int,
    through: date | None = None,
    dimension: str | None = None,
) -> list[SliceAssignmentRow]:
    """Units per variant and dimension value summed over the days up to ``through`` (``day``
    is the last day counted), ordered by dimension, value and variant."""
    t = AssignmentSliceDailyCount
    keys = (t.dimension, t.value, t.variant_id)
    query = select(t.variant_id, func.max(t.day), t.dimension, t.value, func.sum(t.units)).where(
        t.experiment_id == experiment_id)
    if through is not None:
        query = query.where(t.day <= through)
    if dimension is not None:
        query = query.where(t.dimension == dimension)
    query = query.group_by(*keys).order_by(*keys)
    return [SliceAssignmentRow(vid, day, dim, value, int(units))
            for vid, day, dim, value, units in session.execute(query)]


def dimensions(session: Session, *, experiment_id: int) -> list[str]:
    """The dimensions an experiment has slice stats for, sorted."""
    t = MetricSliceDailyStat
    return list(session.scalars(
        select(t.dimension).where(t.experiment_id == experiment_id).distinct()
        .order_by(t.dimension)
    ))


def count_daily_stats(session: Session, *, experiment_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(MetricDailyStat)
            .where(MetricDailyStat.experiment_id == experiment_id)
        )
        or 0
    )


def metric_has_data(session: Session, *, metric_id: int) -> bool:
    """Whether any experiment has daily statistics stored for the metric."""
    return session.scalar(
        select(MetricDailyStat.id).where(MetricDailyStat.metric_id == metric_id).limit(1)
    ) is not None


def assigned_units_per_experiment(session: Session) -> list[tuple[str, str, Any, int]]:
    """Per experiment with assignment counts: (name, target segment, units assigned over every
    variant and day, days with assignments)."""
    rows = session.execute(
        select(
            Experiment.name,
            Experiment.target_segment,
            func.sum(AssignmentDailyCount.units),
            func.count(distinct(AssignmentDailyCount.day)),
        )
        .join(AssignmentDailyCount, AssignmentDailyCount.experiment_id == Experiment.id)
        .group_by(Experiment.id, Experiment.name, Experiment.target_segment)
    ).all()
    return [(name, segment, units, days) for name, segment, units, days in rows]


def control_stats_per_metric_and_segment(
    session: Session,
) -> list[tuple[str, str, str, MetricStats]]:
    """The control arms' pooled sums (n, sum, sum_squares) per (metric, kind, target segment),
    over every experiment and day."""
    rows = session.execute(
        select(
            Metric.name,
            Metric.kind,
            Experiment.target_segment,
            func.sum(MetricDailyStat.n),
            func.sum(MetricDailyStat.sum),
            func.sum(MetricDailyStat.sum_squares),
        )
        .join(Variant, Variant.id == MetricDailyStat.variant_id)
        .join(Experiment, Experiment.id == MetricDailyStat.experiment_id)
        .join(Metric, Metric.id == MetricDailyStat.metric_id)
        .where(Variant.position == 0)
        .group_by(Metric.name, Metric.kind, Experiment.target_segment)
    ).all()
    return [(metric, kind, segment, MetricStats(int(n or 0), float(s or 0), float(ss or 0)))
            for metric, kind, segment, n, s, ss in rows]


def get_metric_source(session: Session, *, experiment_id: int) -> MetricSource | None:
    return session.scalar(select(MetricSource).where(MetricSource.experiment_id == experiment_id))


def save_metric_source(
    session: Session, *, experiment_id: int, url: str | None, query: str, updated_by: str
) -> MetricSource:
    """Create or replace the SQL source of an experiment."""
    source = get_metric_source(session, experiment_id=experiment_id)
    if source is None:
        source = MetricSource(experiment_id=experiment_id, url=url, query=query,
                              updated_by=updated_by)
        session.add(source)
    else:
        source.url, source.query, source.updated_by = url, query, updated_by
    session.flush()
    return source


def add_snapshot(
    session: Session,
    *,
    experiment_id: int,
    computed_by: str,
    computed_at: Any,
    as_of: date | None,
    data_through: date | None,
    fingerprint: str,
    payload: dict[str, Any],
) -> ResultSnapshot:
    snapshot = ResultSnapshot(
        experiment_id=experiment_id,
        computed_by=computed_by,
        computed_at=computed_at,
        as_of=as_of,
        data_through=data_through,
        fingerprint=fingerprint,
        payload=payload,
    )
    session.add(snapshot)
    session.flush()
    return snapshot


def snapshot_id_with_fingerprint(
    session: Session, *, experiment_id: int, fingerprint: str
) -> int | None:
    """The id of the experiment's first snapshot with this input fingerprint, if any."""
    found: int | None = session.scalar(
        select(ResultSnapshot.id)
        .where(ResultSnapshot.experiment_id == experiment_id,
               ResultSnapshot.fingerprint == fingerprint)
        .order_by(ResultSnapshot.id)
        .limit(1)
    )
    return found


def latest_snapshot(session: Session, *, experiment_id: int) -> ResultSnapshot | None:
    return session.scalar(
        select(ResultSnapshot)
        .where(ResultSnapshot.experiment_id == experiment_id)
        .order_by(ResultSnapshot.computed_at.desc(), ResultSnapshot.id.desc())
        .limit(1)
    )


_SNAPSHOTS = ResultSnapshot.__table__
_LATEST_DOCUMENT = (
    select(
        _SNAPSHOTS.c.id,
        _SNAPSHOTS.c.computed_by,
        cast(_SNAPSHOTS.c.payload, Text).label("document"),
    )
    .where(_SNAPSHOTS.c.experiment_id == bindparam("experiment_id"))
    .order_by(_SNAPSHOTS.c.computed_at.desc(), _SNAPSHOTS.c.id.desc())
    .limit(1)
)


@dataclass(frozen=True)
class StoredDocument:
    """The newest snapshot's row, its payload as the JSON text stored (not parsed)."""

    snapshot_id: int
    computed_by: str
    document: str


def latest_snapshot_document(session: Session, *, experiment_id: int) -> StoredDocument | None:
    """The newest snapshot's payload as stored, without parsing it (what the API serves)."""
    row = session.execute(_LATEST_DOCUMENT, {"experiment_id": experiment_id}).first()
    return None if row is None else StoredDocument(*row)


def snapshots(
    session: Session, *, experiment_id: int, limit: int | None = None
) -> list[ResultSnapshot]:
    """Snapshots of an experiment, newest first."""
    query = (
        select(ResultSnapshot)
        .where(ResultSnapshot.experiment_id == experiment_id)
        .order_by(ResultSnapshot.computed_at.desc(), ResultSnapshot.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))
