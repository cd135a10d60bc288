"""Data access: small queries with keyword-only arguments and an explicit session.

Services (in core) own the transaction; nothing here commits.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import InstrumentedAttribute, Session, joinedload

from db.models import (
    ApiKey,
    AssignmentSource,
    AuditEntry,
    Experiment,
    ExperimentMetric,
    ExperimentTag,
    Metric,
    ReportArtifact,
    Variant,
)


def get_experiment(session: Session, *, experiment_id: int) -> Experiment | None:
    """The experiment with its variants and metrics, in one query (joined, not one per
    collection as the relationships load by default)."""
    return session.scalars(
        select(Experiment)
        .where(Experiment.id == experiment_id)
        .options(joinedload(Experiment.variants), joinedload(Experiment.metric_links))
    ).unique().one_or_none()


_EXPERIMENTS = Experiment.__table__
_VARIANTS = Variant.__table__
_LINKS = ExperimentMetric.__table__
_METRICS = Metric.__table__
_PRIMARY = _METRICS.alias("primary_metric")
_ASSIGNMENT = AssignmentSource.__table__
_VIEW = select(
    *_EXPERIMENTS.c, _PRIMARY.c.name.label("primary_metric"),
    _ASSIGNMENT.c.name.label("assignment_source"),
).select_from(
    _EXPERIMENTS.outerjoin(_PRIMARY, _PRIMARY.c.id == _EXPERIMENTS.c.primary_metric_id)
    .outerjoin(_ASSIGNMENT, _ASSIGNMENT.c.id == _EXPERIMENTS.c.assignment_source_id)
)
_VIEW_VARIANTS = select(
    _VARIANTS.c.experiment_id, _VARIANTS.c.name, _VARIANTS.c.weight
).order_by(_VARIANTS.c.experiment_id, _VARIANTS.c.position)
_VIEW_LINKS = (
    select(_LINKS.c.experiment_id, _LINKS.c.role, _LINKS.c.margin, _METRICS.c.name)
    .join_from(_LINKS, _METRICS, _METRICS.c.id == _LINKS.c.metric_id)
    .order_by(_LINKS.c.experiment_id, _LINKS.c.metric_id)
)
_ONE_ID = _EXPERIMENTS.c.id == bindparam("experiment_id")
_VIEW_ONE = (
    _VIEW.where(_ONE_ID),
    _VIEW_VARIANTS.where(_VARIANTS.c.experiment_id == bindparam("experiment_id")),
    _VIEW_LINKS.where(_LINKS.c.experiment_id == bindparam("experiment_id")),
)
_VIEW_MANY = (
    _VIEW.where(_EXPERIMENTS.c.id.in_(bindparam("experiment_ids", expanding=True))),
    _VIEW_VARIANTS.where(
        _VARIANTS.c.experiment_id.in_(bindparam("experiment_ids", expanding=True))),
    _VIEW_LINKS.where(_LINKS.c.experiment_id.in_(bindparam("experiment_ids", expanding=True))),
)
"""The experiment view's three reads, built once with bound parameters (SQLAlchemy's compiled
cache serves them): the experiment rows (every column, the primary metric's name as
``primary_metric`` and the assignment source's as ``assignment_source``), their variants
(experiment_id, name, weight; by position) and their guardrail and secondary metrics
(experiment_id, role, margin, name; by metric id)."""

_IDS_PER_QUERY = 500
"""Ids bound to one IN list (well under SQLite's limit on bound parameters)."""

ViewRow = Row[*tuple[Any, ...]]
ViewRows = tuple[Sequence[ViewRow], Sequence[ViewRow], Sequence[ViewRow]]
"""(experiment rows, variant rows, metric link rows) as :data:`_VIEW_ONE` reads them."""


def experiment_view_rows(session: Session, *, experiment_id: int) -> ViewRows:
    """The rows of one experiment's view: ([experiment], variants, links); all empty without
    it."""
    params = {"experiment_id": experiment_id}
    experiments = session.execute(_VIEW_ONE[0], params).all()
    if not experiments:
        return [], [], []
    return (experiments, session.execute(_VIEW_ONE[1], params).all(),
            session.execute(_VIEW_ONE[2], params).all())


def experiments_view_rows(session: Session, *, experiment_ids: Sequence[int]) -> ViewRows:
    """The rows of these experiments' views, three queries per batch of ids: experiments in
    the order of `experiment_ids` (missing ones left out), then variants and links grouped by
    experiment."""
    experiments: list[ViewRow] = []
    variants: list[ViewRow] = []
    links: list[ViewRow] = []
    for start in range(0, len(experiment_ids), _IDS_PER_QUERY):
        params = {"experiment_ids": list(experiment_ids[start:start + _IDS_PER_QUERY])}
        experiments += session.execute(_VIEW_MANY[0], params).all()
        variants += session.execute(_VIEW_MANY[1], params).all()
        links += session.execute(_VIEW_MANY[2], params).all()
    rank = {experiment_id: i for i, experiment_id in enumerate(experiment_ids)}
    experiments.sort(key=lambda row: rank[row.id])
    return experiments, variants, links


def experiment_exists(session: Session, *, experiment_id: int) -> bool:
    """Whether the experiment exists, without loading it."""
    found = session.scalar(select(Experiment.id).where(Experiment.id == experiment_id))
    return found is not None


class PageRow(NamedTuple):
    """One experiment of a list page: what identifies its stored state (every change of an
    experiment moves its ``updated_at``; a change through the registry also its version)."""

    id: int
    version: int
    updated_at: Any


def like_escape(text: str) -> str:
    """`text` for a LIKE pattern with ``escape="\\"``: its ``%`` and ``_`` match themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_TAGS = ExperimentTag.__table__
_LIKE_ESCAPE = "\\"
_WORD_INDEX = "experiments_search"
"""SQLite's FTS5 trigram table over the searched columns (migration 0018), where it exists."""
_WORD_INDEX_MIN_LENGTH = 3
"""A trigram index finds substrings of three characters or more."""


_WORD_INDEXED: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def _word_index(session: Session) -> bool:
    """Whether SQLite's word-search table exists (a build without FTS5 has none), looked up
    once per engine: the schema is migrated before an engine serves the listing."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    if engine not in _WORD_INDEXED:
        _WORD_INDEXED[engine] = session.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": _WORD_INDEX}).first() is not None
    return _WORD_INDEXED[engine]


@functools.lru_cache(maxsize=256)
def _listing_statements(
    *, status: bool, owner: bool, tag: bool, search: bool, indexed_search: bool = False,
    exclude_archived: bool, sort: str,
    descending: bool, sqlite: bool,
) -> tuple[Select[int], Select[int, int, Any]]:
    """The registry list's count and page queries for one combination of filters and sort,
    built once with bound parameters (SQLAlchemy's compiled cache then serves them). Each
    WHERE term is one an index serves (migration 0009): the status and lower(owner) indexes,
    experiment_tags' tag index, and on PostgreSQL the trigram indexes of the searched
    columns; the sort key's index gives the order."""
    e = _EXPERIMENTS.c
    terms: list[ColumnElement[bool]] = []
    if status:
        terms.append(e.status == bindparam("status"))
    if owner:
        terms.append(func.lower(e.owner) == bindparam("owner"))
    if tag:
        tagged = select(_TAGS.c.experiment_id).where(_TAGS.c.tag == bindparam("tag"))
        # PostgreSQL: "= ANY(ARRAY(...))" reads the tag's rows by primary key and sorts
        # them (6.5 ms for 1,864 of 100,000 experiments); with "IN" its planner walks the
        # sort key's index probing every row's tags instead (15 ms), as the count reads them
        # anyway. SQLite reads the IN list by primary key already.
        terms.append(e.id.in_(tagged) if sqlite
                     else e.id == func.any(func.array(tagged.scalar_subquery())))
    if search:
        if indexed_search:
            # SQLite: the candidates from the trigram table (it folds case at least as
            # widely as lower()), then the LIKE below decides, so the answers are the scan's.
            words = table(_WORD_INDEX, literal_column("rowid"))
            terms.append(e.id.in_(select(words.c.rowid).where(
                literal_column(_WORD_INDEX).op("MATCH")(bindparam("phrase")))))
        pattern: Any = bindparam("pattern")
        terms.append(or_(*(func.lower(searched).like(pattern, escape=_LIKE_ESCAPE)
                           for searched in (e.name, e.hypothesis, e.learnings))))
    column = e[sort]
    order = (column.desc(), e.id.desc()) if descending else (column.asc(), e.id.asc())
    count = select(func.count()).select_from(_EXPERIMENTS).where(*terms)
    page = select(e.id, e.version, e.updated_at).where(*terms)
    if exclude_archived:
        count = count.where(e.archived_at.is_(None))
        # On SQLite the page must not read the archived_at index (the count should): its
        # statistics take "IS NULL" for a selective equality, so it would read nearly every
        # row through that index, then sort them all (183 ms at 100,000 experiments), where
        # the sort key's index finds the page's 50 at once (0.2 ms). coalesce(x, x) is x to
        # everyone but SQLite's planner; PostgreSQL's would misjudge it the other way.
        page = page.where(func.coalesce(e.archived_at, e.archived_at).is_(None) if sqlite
                          else e.archived_at.is_(None))
    page = page.order_by(*order).offset(bindparam("offset")).limit(bindparam("limit"))
    return count, page


def list_experiments(
    session: Session,
    *,
    status: str | None = None,
    owner: str | None = None,
    tag: str | None = None,
    search: str | None = None,
    include_archived: bool = True,
    sort: str = "updated_at",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[PageRow]]:
    """How many experiments match every given filter, and one page of them as (id, version,
    updated_at) rows. `sort` names a column; ties go by id in the same direction, so a
    descending page is the ascending order reversed and both read one index."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    word = search.strip().lower() if search else ""
    # An owner's rows are few (its index finds them): the LIKE over those beats reading
    # every match of the word from the trigram table (0.6 ms against 3-7 ms at 100,000).
    indexed_search = (sqlite and not owner and len(word) >= _WORD_INDEX_MIN_LENGTH
                      and _word_index(session))
    count, page = _listing_statements(
        status=bool(status), owner=bool(owner), tag=bool(tag), search=bool(search),
        indexed_search=indexed_search, exclude_archived=not include_archived, sort=sort,
        descending=descending, sqlite=sqlite,
    )
    params: dict[str, Any] = {"offset": offset, "limit": limit}
    if status:
        params["status"] = status
    if owner:
        params["owner"] = owner.strip().lower()
    if tag:
        params["tag"] = tag.strip()
    if search:
        params["pattern"] = f"%{like_escape(word)}%"
    if indexed_search:
        params["phrase"] = '"' + word.replace('"', '""') + '"'  # FTS5: one quoted phrase
    total = session.execute(count, params).scalar_one()
    return total, [PageRow(*row) for row in session.execute(page, params)]


def _distinct(session: Session, column: InstrumentedAttribute[str]) -> list[str]:
    """The distinct values of an indexed column, in order, by one index probe per value (a
    recursive "loose index scan"): neither database skips through an index for DISTINCT, and
    reading every entry costs as much as the table has rows."""
    found = select(func.min(column).label("value")).cte("found", recursive=True)
    found = found.union_all(
        select(select(func.min(column)).where(column > found.c.value).scalar_subquery())
        .where(found.c.value.is_not(None))
    )
    return list(session.scalars(select(found.c.value).where(found.c.value.is_not(None))))


def experiment_owners(session: Session) -> list[str]:
    """Every owner, in order (one index probe per owner)."""
    return _distinct(session, Experiment.owner)


def experiment_tags(session: Session) -> list[str]:
    """Every tag in use, in order (one index probe per tag)."""
    return _distinct(session, ExperimentTag.tag)


def experiment_status_counts(session: Session) -> dict[str, int]:
    """Experiments per status (statuses without one are absent)."""
    rows = session.execute(select(Experiment.status, func.count()).group_by(Experiment.status))
    return {status: n for status, n in rows}


def experiment_ids(session: Session, *, status: str | None = None) -> list[int]:
    """Ids of the experiments (in `status`, when given), by id."""
    query = select(Experiment.id).order_by(Experiment.id)
    if status:
        query = query.where(Experiment.status == status)
    return list(session.scalars(query))


def running_experiment_schedules(session: Session) -> list[tuple[int, Any, int | None]]:
    """(id, actual_start, refresh_every_days) of every running experiment that has started, by
    id."""
    rows = session.execute(
        select(Experiment.id, Experiment.actual_start, Experiment.refresh_every_days)
        .where(Experiment.status == "running", Experiment.actual_start.is_not(None))
        .order_by(Experiment.id)
    ).all()
    return [(exp_id, started, every) for exp_id, started, every in rows]


def experiment_id_by_name(session: Session, *, name: str) -> int | None:
    return session.scalar(
        select(Experiment.id).where(func.lower(Experiment.name) == name.strip().lower())
    )


def experiment_names(session: Session, *, experiment_ids: Sequence[int]) -> dict[int, str]:
    """Id -> name of the experiments among ``experiment_ids`` that exist."""
    wanted = sorted(set(experiment_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(Experiment.id, Experiment.name).where(Experiment.id.in_(wanted)))
    return {exp_id: name for exp_id, name in rows}


def metric_ids_by_name(session: Session, *, names: list[str]) -> dict[str, int]:
    wanted = [n for n in names if n]
    if not wanted:
        return {}
    rows = session.execute(select(Metric.name, Metric.id).where(Metric.name.in_(wanted)))
    return {name: metric_id for name, metric_id in rows}


def list_metrics(session: Session) -> list[Metric]:
    return list(session.scalars(select(Metric).order_by(Metric.name)))


def get_metric_by_name(session: Session, *, name: str) -> Metric | None:
    return session.scalar(select(Metric).where(Metric.name == name))


def add_audit(
    session: Session,
    *,
    actor: str,
    entity_type: str,
    entity_id: int,
    action: str,
    changes: dict[str, Any],
    reason: str | None = None,
    is_deviation: bool = False,
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor,
        entity_type=entity_type,
        entity_id=entity_id,
        action=action,
        changes=changes,
        reason=reason,
        is_deviation=is_deviation,
    )
    session.add(entry)
    return entry


def audit_entries(
    session: Session,
    *,
    entity_type: str | None = None,
    entity_id: int | None = None,
    deviations_only: bool = False,
) -> list[AuditEntry]:
    query = select(AuditEntry)
    if entity_type:
        query = query.where(AuditEntry.entity_type == entity_type)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    if deviations_only:
        query = query.where(AuditEntry.is_deviation.is_(True))
    return list(session.scalars(query.order_by(AuditEntry.id)))


# --------------------------------------------------------------------------- API keys


def api_key_by_name(session: Session, *, name: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.name == name))


def api_key_by_hash(session: Session, *, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def api_keys(session: Session) -> list[ApiKey]:
    """Every API key, by name."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.name)))


# --------------------------------------------------------------------------- report artifacts


def report_artifacts(
    session: Session, *, experiment_id: int | None = None
) -> list[tuple[ReportArtifact, str]]:
    """Recorded reports with their experiment's name, newest first (of one experiment, or
    all)."""
    query = select(ReportArtifact, Experiment.name).join(
        Experiment, Experiment.id == ReportArtifact.experiment_id)
    if experiment_id is not None:
        query = query.where(ReportArtifact.experiment_id == experiment_id)
    query = query.order_by(ReportArtifact.created_at.desc(), ReportArtifact.id.desc())
    return [(row, name) for row, name in session.execute(query)]


def get_report_artifact(session: Session, *, report_id: int) -> ReportArtifact | None:
    return session.get(ReportArtifact, report_id)
