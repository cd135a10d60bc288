"""Experiment stamps read beside the session pool: what the API checks before serving a cached read.

A :class:`Stamp` is what changes whenever an experiment's document or its latest results do:
the experiment's ``(version, updated_at)`` and the id of its newest results snapshot. The API
reads one per cached request, after the request arrived, so whatever any process committed
before it is seen (api/fast_reads.py). Reading it costs no session, no pool slot and no thread:

* SQLite (:class:`SqliteStamps`): one indexed query on a read-only connection of the process's
  own, on the event loop. It never waits for a lock (busy timeout 0): while another process
  commits, the answer is "cannot tell" and the request takes the ordinary path.
* PostgreSQL (:class:`PostgresStamps`): one non-blocking psycopg2 connection driven by the event
  loop. Stamps asked for while a query is in flight are answered together by the next query
  (``WHERE id = ANY(...)``), sent after they were asked for, so a process never has more than
  one stamp query in flight, whatever the concurrency.

Both answer None ("cannot tell now": no such experiment, the database busy or down) instead of
raising; the caller then goes the ordinary way (sessions, the pool gate, the 503 mapping).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Engine

STAMP_TIMEOUT_SECONDS = 2.0
"""Longest a PostgreSQL stamp query (or connecting for one) may take before it counts as failed."""
logger = logging.getLogger(__name__)
APPLICATION_NAME = "experimentos-api-stamps"
"""How the PostgreSQL stamp connection shows in pg_stat_activity (one per API process)."""
RECONNECT_SECONDS = 1.0
"""After PostgreSQL failed to answer, how long stamps answer None before connecting again."""

# The experiment's stamp and its newest snapshot, ordered as db.metric_repository._LATEST_ID.
_SELECT = (
    "SELECT e.id, e.version, e.updated_at, "
    "(SELECT s.id FROM result_snapshots s WHERE s.experiment_id = e.id "
    "ORDER BY s.computed_at DESC, s.id DESC LIMIT 1) "
    "FROM experiments e WHERE e.id "
)
_SQLITE_QUERY = _SELECT + "= ?"
_POSTGRES_STATEMENT = "experimentos_stamps"
_POSTGRES_PREPARE = f"PREPARE {_POSTGRES_STATEMENT}(integer[]) AS {_SELECT}= ANY($1)"
_POSTGRES_QUERY = f"EXECUTE {_POSTGRES_STATEMENT}(%s)"


class Stamp(NamedTuple):
    version: int
    updated_at: Any
    """As the driver returns it: compare stamps only with stamps from the same reader."""
    snapshot_id: int | None
    """The newest results snapshot's id; None without one."""


class StampReader(Protocol):
    async def stamp(self, experiment_id: int) -> Stamp | None: ...

    def close(self) -> None: ...


def stamp_reader(engine: Engine) -> StampReader | None:
    """A reader for `engine`'s database; None for an in-memory SQLite one (no other connection
    sees it)."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or url.query.get("mode") == "memory":
            return None
        return SqliteStamps(database)
    cargs, cparams = engine.dialect.create_connect_args(url)
    cparams.setdefault("application_name", APPLICATION_NAME)
    return PostgresStamps(*cargs, **cparams)


class SqliteStamps:
    """Stamps from a read-only SQLite connection, used on the event loop only."""

    def __init__(self, path: str) -> None:
        self._uri = Path(path).resolve().as_uri() + "?mode=ro"
        self._connection: sqlite3.Connection | None = None

    async def stamp(self, experiment_id: int) -> Stamp | None:
        return self.read(experiment_id)

    def read(self, experiment_id: int) -> Stamp | None:
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(
                    self._uri, uri=True, timeout=0, isolation_level=None,
                    check_same_thread=False,
                )
            # fetchall() runs the statement to its end, so no lock outlives the call.
            rows = self._connection.execute(_SQLITE_QUERY, (experiment_id,)).fetchall()
        except sqlite3.Error:  # locked by a committing writer, file gone, ...: cannot tell
            self.close()
            return None
        if not rows:
            return None
        _, version, updated_at, snapshot_id = rows[0]
        return Stamp(version, updated_at, snapshot_id)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class PostgresStamps:
    """Stamps from one non-blocking psycopg2 connection, batched, on one event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs
        self._connection: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[int, list[asyncio.Future[Stamp | None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._failing = False
        """Whether the last attempt failed (logged once per run of failures)."""

    async def stamp(self, experiment_id: int) -> Stamp | None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests start one per client): start over
            self.close()
            self._loop = loop
        if self._connection is None and loop.time() < self._retry_at:
            return None
        answer: asyncio.Future[Stamp | None] = loop.create_future()
        self._waiting.setdefault(experiment_id, []).append(answer)
        if self._task is None:
            self._task = loop.create_task(self._answer_all())
        return await answer

    async def _answer_all(self) -> None:
        batch: dict[int, list[asyncio.Future[Stamp | None]]] = {}
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                found = await self._query(sorted(batch))
                for experiment_id, answers in batch.items():
                    stamp = None if found is None else found.get(experiment_id)
                    for answer in answers:
                        if not answer.done():
                            answer.set_result(stamp)
                batch = {}
        finally:
            if self._task is asyncio.current_task():
                self._task = None
                _answer_none(batch)
                waiting, self._waiting = self._waiting, {}
                _answer_none(waiting)

    async def _query(self, experiment_ids: list[int]) -> dict[int, Stamp] | None:
        import psycopg2

        try:
            connection = self._connection or await self._connect()
            if connection is None:
                return None
            cursor = connection.cursor()
            cursor.execute(_POSTGRES_QUERY, (experiment_ids,))
            await self._ready(connection)
            rows = cursor.fetchall()
        except (psycopg2.Error, OSError, TimeoutError) as exc:
            self._drop()
            self._failed(exc)
            return None
        self._failing = False
        return {row[0]: Stamp(row[1], row[2], row[3]) for row in rows}

    async def _connect(self) -> Any:
        import psycopg2

        assert self._loop is not None
        if self._loop.time() < self._retry_at:
            return None
        connection = None
        try:
            connection = psycopg2.connect(*self._args, **self._kwargs, async_=True)
            await self._ready(connection)
            cursor = connection.cursor()  # held: psycopg2 needs it until the query is done
            cursor.execute(_POSTGRES_PREPARE)
            await self._ready(connection)
        except (psycopg2.Error, OSError, TimeoutError) as exc:
            if connection is not None:
                connection.close()
            self._retry_at = self._loop.time() + RECONNECT_SECONDS
            self._failed(exc)
            return None
        self._connection = connection
        return connection

    async def _ready(self, connection: Any) -> None:
        """Drive `connection` (connecting, or its query) until done; TimeoutError past the
        deadline."""
        import psycopg2
        from psycopg2 import extensions as ext

        loop = self._loop
        assert loop is not None
        async with asyncio.timeout(STAMP_TIMEOUT_SECONDS):
            while True:
                state = connection.poll()
                if state == ext.POLL_OK:
                    return
                woken: asyncio.Future[None] = loop.create_future()

                def wake(woken: asyncio.Future[None] = woken) -> None:
                    if not woken.done():
                        woken.set_result(None)

                descriptor = connection.fileno()
                if state == ext.POLL_READ:
                    loop.add_reader(descriptor, wake)
                    try:
                        await woken
                    finally:
                        loop.remove_reader(descriptor)
                elif state == ext.POLL_WRITE:
                    loop.add_writer(descriptor, wake)
                    try:
                        await woken
                    finally:
                        loop.remove_writer(descriptor)
                else:
                    raise psycopg2.OperationalError(f"unexpected poll state {state}")

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            logger.warning("Reading experiment stamps from PostgreSQL failed (%s: %s); cached "
                           "reads take the ordinary path until it answers again",
                           type(exc).__name__, exc)
        self._failing = True

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None
        if self._loop is not None:
            self._retry_at = self._loop.time() + RECONNECT_SECONDS

    def close(self) -> None:
        """Close the connection; stamps still awaited are answered None."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        task, self._task = self._task, None
        waiting, self._waiting = self._waiting, {}
        with contextlib.suppress(RuntimeError):  # they belong to an event loop now closed
            if task is not None:
                task.cancel()
            _answer_none(waiting)


def _answer_none(waiting: dict[int, list[asyncio.Future[Stamp | None]]]) -> None:
    for answers in waiting.values():
        for answer in answers:
            if not answer.done():
                answer.set_result(None)
