"""No lost updates: concurrent writers race on one experiment on a real PostgreSQL server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.errors import Conflict
from db.migrate import upgrade
from db.models import AuditEntry
from db.session import make_engine, session_factory
from tests.conftest import ADMIN, EDITOR, create_postgres_database, drop_postgres_database

WRITERS = 8


@pytest.fixture
def committed_engine() -> Iterator[Engine]:
    """A database of its own: the writers really commit, so no rolled-back fixture here."""
    url = create_postgres_database("experimentos_race")
    if url is None:
        pytest.skip("no PostgreSQL server (required when CI=true)")
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    drop_postgres_database(url)


def test_registry_concurrent_writers_one_wins_the_rest_conflict(committed_engine: Engine) -> None:
    make = session_factory(committed_engine)
    with make() as session:
        catalogue.create_metric(session, data={"name": "conversion", "kind": "binomial"},
                                actor=ADMIN)
        exp = registry.create_experiment(
            session, data={"name": "Race", "owner": "o", "primary_metric": "conversion"},
            actor=EDITOR,
        )
    barrier = threading.Barrier(WRITERS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        with make() as session:
            # Everyone reads version 1 before anyone writes.
            seen = registry.get_experiment(session, experiment_id=exp.id)
            session.rollback()
            barrier.wait()
            try:
                registry.update_experiment(
                    session, experiment_id=exp.id, changes={"owner": f"writer-{i}"},
                    expected_version=seen.version, actor=EDITOR,
                )
                result = f"won:{i}"
            except Conflict:
                result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    winners = [o for o in outcomes if o.startswith("won")]
    assert len(outcomes) == WRITERS
    assert len(winners) == 1, outcomes
    with make() as session:
        final = registry.get_experiment(session, experiment_id=exp.id)
        updates = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "update")
        )
    assert final.version == 2
    assert final.owner == f"writer-{winners[0].split(':')[1]}"
    assert updates == 1  # the losers wrote no audit entry either


def test_registry_update_race_inside_flush_is_a_conflict(committed_engine: Engine) -> None:
    """Both sessions pass the version check; the database's WHERE version=... decides."""
    make = session_factory(committed_engine)
    with make() as s:
        catalogue.create_metric(s, data={"name": "m", "kind": "mean"}, actor=ADMIN)
        exp = registry.create_experiment(s, data={"name": "Race 2", "owner": "o"}, actor=EDITOR)
    first: Session = make()
    second: Session = make()
    try:
        # second loads the row (version 1) and keeps it in its identity map...
        registry.get_experiment(second, experiment_id=exp.id)
        registry.update_experiment(
            first, experiment_id=exp.id, changes={"owner": "first"}, expected_version=1,
            actor=EDITOR,
        )
        # ...so its own version check passes on the stale copy, but the UPDATE matches no row.
        with pytest.raises(Conflict):
            registry.update_experiment(
                second, experiment_id=exp.id, changes={"owner": "second"},
                expected_version=1, actor=EDITOR,
            )
    finally:
        first.close()
        second.close()
    with make() as s:
        assert registry.get_experiment(s, experiment_id=exp.id).owner == "first"
