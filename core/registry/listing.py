"""Reading experiments: one by id or name, filtered and paginated lists, owners, tags and
status counts."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.errors import InvalidInput, NotFound
from core.registry.fields import ExperimentView, views_from_rows
from core.types import STATUSES, Status
from db import repositories as repo
from db.models import Experiment

SORT_FIELDS: tuple[str, ...] = ("name", "status", "owner", "created_at", "updated_at", "rice_score")


@dataclass(frozen=True)
class Page:
    items: list[ExperimentView]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


def _not_found(experiment_id: int) -> NotFound:
    return NotFound(f"No experiment with id {experiment_id}.")


def load_experiment(session: Session, *, experiment_id: int) -> Experiment:
    """The experiment with its variants and metrics; NotFound without it."""
    exp = repo.get_experiment(session, experiment_id=experiment_id)
    if exp is None:
        raise _not_found(experiment_id)
    return exp


def require_experiment(session: Session, *, experiment_id: int) -> None:
    """NotFound unless the experiment exists (one light query; nothing is loaded)."""
    if not repo.experiment_exists(session, experiment_id=experiment_id):
        raise _not_found(experiment_id)


def get_experiment(session: Session, *, experiment_id: int) -> ExperimentView:
    """The experiment as the app, API and reports see it (three light queries, no ORM graph);
    NotFound without it."""
    views = views_from_rows(*repo.experiment_view_rows(session, experiment_id=experiment_id))
    if not views:
        raise _not_found(experiment_id)
    return views[0]


def get_experiments(session: Session, *, experiment_ids: list[int]) -> list[ExperimentView]:
    """These experiments' views in the order given (missing ones left out): three queries for
    all of them."""
    return views_from_rows(*repo.experiments_view_rows(session, experiment_ids=experiment_ids))


def get_experiment_by_name(session: Session, *, name: str) -> ExperimentView:
    experiment_id = repo.experiment_id_by_name(session, name=name)
    if experiment_id is None:
        raise NotFound(f"No experiment named '{name}'.")
    return get_experiment(session, experiment_id=experiment_id)


@dataclass(frozen=True)
class PageIndex:
    """Which experiments one list page shows, each with the state it was read in."""

    rows: list[repo.PageRow]
    total: int
    page: int
    page_size: int

    @property
    def stamp(self) -> str:
        """Names the page's content: equal stamps, equal pages (every change of an
        experiment moves its version or updated_at; metric and source names never change)."""
        key = repr((self.total, self.page, self.page_size,
                    [(r.id, r.version, r.updated_at.isoformat()) for r in self.rows]))
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def find_experiments(
    session: Session,
    *,
    status: Status | None = None,
    owner: str | None = None,
    tag: str | None = None,
    search: str | None = None,
    include_archived: bool = True,
    sort: str = "updated_at",
    descending: bool = True,
    page: int = 1,
    page_size: int = 50,
) -> PageIndex:
    """The experiments matching every given filter, sorted, one page of them (pages count
    from 1): two index-served queries, no experiment read yet (:func:`read_page`)."""
    if sort not in SORT_FIELDS:
        raise InvalidInput(f"sort: use one of {', '.join(SORT_FIELDS)} (got '{sort}')")
    if page < 1 or not 1 <= page_size <= 500:
        raise InvalidInput("page must be ≥ 1 and page_size between 1 and 500")
    total, rows = repo.list_experiments(
        session, status=status, owner=owner, tag=tag, search=search,
        include_archived=include_archived, sort=sort, descending=descending,
        offset=(page - 1) * page_size, limit=page_size,
    )
    return PageIndex(rows=rows, total=total, page=page, page_size=page_size)


def read_page(session: Session, index: PageIndex) -> Page:
    """The page's experiments as the app and API see them (three queries)."""
    items = get_experiments(session, experiment_ids=[row.id for row in index.rows])
    return Page(items=items, total=index.total, page=index.page, page_size=index.page_size)


def list_experiments(
    session: Session,
    *,
    status: Status | None = None,
    owner: str | None = None,
    tag: str | None = None,
    search: str | None = None,
    include_archived: bool = True,
    sort: str = "updated_at",
    descending: bool = True,
    page: int = 1,
    page_size: int = 50,
) -> Page:
    """Experiments matching every given filter, sorted and paginated (page counts from 1);
    ties go by id in the sort's direction."""
    return read_page(session, find_experiments(
        session, status=status, owner=owner, tag=tag, search=search,
        include_archived=include_archived, sort=sort, descending=descending, page=page,
        page_size=page_size,
    ))


def all_experiments(session: Session, *, status: Status | None = None) -> list[ExperimentView]:
    """Every experiment (no pagination), e.g. for exports and scheduled jobs."""
    return get_experiments(session, experiment_ids=repo.experiment_ids(session, status=status))


def owners(session: Session) -> list[str]:
    return repo.experiment_owners(session)


def tags(session: Session) -> list[str]:
    """Every tag some experiment has, in order."""
    return repo.experiment_tags(session)


def status_counts(session: Session) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    counts.update(repo.experiment_status_counts(session))
    return counts
