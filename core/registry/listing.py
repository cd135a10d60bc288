"""Reading experiments: one by id or name, filtered and paginated lists, owners, tags and
status counts."""

from __future__ import annotations

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
    """Experiments matching every given filter, sorted and paginated (page counts from 1)."""
    if sort not in SORT_FIELDS:
        raise InvalidInput(f"sort: use one of {', '.join(SORT_FIELDS)} (got '{sort}')")
    if page < 1 or not 1 <= page_size <= 500:
        raise InvalidInput("page must be ≥ 1 and page_size between 1 and 500")
    total, ids = repo.list_experiments(
        session, status=status, owner=owner, tag=tag, search=search,
        include_archived=include_archived, sort=sort, descending=descending,
        offset=(page - 1) * page_size, limit=page_size,
    )
    items = get_experiments(session, experiment_ids=ids)
    return Page(items=items, total=total, page=page, page_size=page_size)


def all_experiments(session: Session, *, status: Status | None = None) -> list[ExperimentView]:
    """Every experiment (no pagination), e.g. for exports and scheduled jobs."""
    return get_experiments(session, experiment_ids=repo.experiment_ids(session, status=status))


def owners(session: Session) -> list[str]:
    return repo.experiment_owners(session)


def tags(session: Session) -> list[str]:
    found: set[str] = set()
    for row in repo.experiment_tag_lists(session):
        found.update(row or [])
    return sorted(found)


def status_counts(session: Session) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    counts.update(repo.experiment_status_counts(session))
    return counts
