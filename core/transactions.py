"""The transaction helper every service uses: commit on success, roll back on any error, and
database conflicts as domain errors (:class:`core.errors.Conflict`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from core.errors import Conflict


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """Commit on success, roll back on any error: a service owns its transaction."""
    try:
        yield session
        session.commit()
    except StaleDataError as exc:
        session.rollback()
        raise Conflict(
            "Someone else changed this experiment while you were editing it: "
            "reload it and apply your change again."
        ) from exc
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"The change conflicts with existing data: {exc.orig}") from exc
    except BaseException:
        session.rollback()
        raise
