"""What the API serves from memory: results snapshots and experiment reads, as JSON bytes.

Freshness: before serving a cached document the API reads the experiment's stamp (db.stamps:
its version and updated_at, and its newest snapshot's id) with one light query on a connection
beside the pool, after the request arrived, so a change committed by any process before the
request is seen by it. A cached hit is served by api/fast_reads.py without FastAPI's routing,
a session or a thread; the routes below serve misses and store what they built.

Results: a stored snapshot never changes, so its document is built once per process and then served
as bytes by its id. Where no stamp can be read (an in-memory SQLite database, or tests pointing
the app at their own session), which snapshot is an experiment's latest is checked again when it
is older than API_RESULTS_CACHE_SECONDS (one light query), and forgotten at once when a write
through this process touches the experiment.

Experiments: a read checks the experiment's (version, updated_at) — one light query — and
serves the document built for that stamp, built again only when the experiment changed.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from pydantic import TypeAdapter
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import get_session, release_session, request_session
from api.schemas import ExperimentOut
from core import registry
from core.analysis import results
from db.session import get_engine
from db.stamps import Stamp, StampReader, stamp_reader

MAX_SNAPSHOTS = 256
"""Snapshot documents a process keeps (least recently served dropped first)."""
MAX_EXPERIMENTS = 1024
"""Experiment documents a process keeps (least recently served dropped first)."""
_EXPERIMENT_OUT = TypeAdapter(ExperimentOut)


class Stamps:
    """The process's reader of experiment stamps (db.stamps), opened on first use; none while
    the app's sessions are overridden (tests), since it would read another database."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._reader: StampReader | None = None
        self._opened = False

    def reader(self) -> StampReader | None:
        if self._app.dependency_overrides.get(get_session) is not None:
            return None
        if not self._opened:
            self._reader = stamp_reader(get_engine())
            self._opened = True
        return self._reader

    async def stamp(self, experiment_id: int) -> Stamp | None:
        """The experiment's stamp now; None when it cannot be read (or there is no reader)."""
        reader = self.reader()
        return None if reader is None else await reader.stamp(experiment_id)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None
        self._opened = False


@dataclass(frozen=True)
class Served:
    snapshot_id: int
    body: bytes


class SnapshotCache:
    """The per-process cache behind ``GET /experiments/{id}/results``."""

    def __init__(self, ttl_seconds: float, max_snapshots: int = MAX_SNAPSHOTS) -> None:
        self.ttl = ttl_seconds
        self.max_snapshots = max_snapshots
        self._bodies: OrderedDict[int, bytes] = OrderedDict()
        self._latest: dict[int, tuple[float, int]] = {}
        """Experiment id -> (monotonic time checked, id of its latest snapshot)."""

    def clear(self) -> None:
        self._bodies.clear()
        self._latest.clear()

    def forget(self, experiment_id: object) -> None:
        """Check the experiment's latest snapshot again on its next read."""
        with contextlib.suppress(ValueError):
            self._latest.pop(int(str(experiment_id)), None)

    def body(self, snapshot_id: int) -> bytes | None:
        """The document of snapshot `snapshot_id`, if this process built it (snapshots never
        change)."""
        body = self._bodies.get(snapshot_id)
        if body is not None:
            self._bodies.move_to_end(snapshot_id)
        return body

    def _fresh(self, experiment_id: int) -> Served | None:
        found = self._latest.get(experiment_id)
        if found is None or time.monotonic() - found[0] >= self.ttl:
            return None
        body = self._bodies.get(found[1])
        if body is None:
            return None
        self._bodies.move_to_end(found[1])
        return Served(found[1], body)

    def _keep(self, experiment_id: int, snapshot_id: int, body: bytes, checked: float) -> None:
        self._bodies[snapshot_id] = body
        self._bodies.move_to_end(snapshot_id)
        while len(self._bodies) > self.max_snapshots:
            self._bodies.popitem(last=False)
        if len(self._latest) >= 4 * self.max_snapshots:
            self._latest.clear()
        self._latest[experiment_id] = (checked, snapshot_id)

    async def latest(self, request: Request, *, experiment_id: int) -> Served | None:
        """The experiment's latest snapshot (None: it has none; NotFound: no experiment).

        With stamps (api/fast_reads.py serves the hits), always looked up; else the pointer
        cached for API_RESULTS_CACHE_SECONDS is trusted that long."""
        stamped = request.app.state.stamps.reader() is not None
        served = None if stamped else self._fresh(experiment_id)
        if served is not None:
            return served
        checked = time.monotonic()
        async with request_session(request) as session:
            found = await run_in_threadpool(self._load, session, experiment_id)
        if found is None:
            return None
        self._keep(experiment_id, found.snapshot_id, found.body, checked)
        return found

    def _load(self, session: Session, experiment_id: int) -> Served | None:
        try:
            snapshot_id = results.latest_snapshot_id(session, experiment_id=experiment_id)
            if snapshot_id is None:
                return None
            body = self._bodies.get(snapshot_id)
            if body is not None:
                return Served(snapshot_id, body)
            document = results.latest_snapshot_json(session, experiment_id=experiment_id)
        finally:
            release_session(session)
        if document is None:  # deleted in between: none now
            return None
        # The document names its own snapshot (a newer one may have been stored in between).
        return Served(int(json.loads(document)["snapshot_id"]), document.encode("utf-8"))


@dataclass(frozen=True)
class ExperimentRead:
    version: int
    body: bytes


@dataclass(frozen=True)
class _Cached:
    stamp: tuple[Any, Any]
    """(version, updated_at) as the session read them."""
    read: ExperimentRead
    stamped: tuple[Any, Any] | None
    """(version, updated_at) as db.stamps read them before this was checked; None: unknown."""


class ExperimentCache:
    """The per-process cache behind ``GET /experiments/{id}``, keyed by the experiment's stamp."""

    def __init__(self, max_experiments: int = MAX_EXPERIMENTS) -> None:
        self.max_experiments = max_experiments
        self._bodies: OrderedDict[int, _Cached] = OrderedDict()
        self._lock = threading.Lock()  # reads run in several worker threads at once

    def clear(self) -> None:
        with self._lock:
            self._bodies.clear()

    def served(self, experiment_id: int, stamp: Stamp) -> ExperimentRead | None:
        """The cached read if it was checked against this very stamp (db.stamps), else None."""
        with self._lock:
            found = self._bodies.get(experiment_id)
            if found is None or found.stamped != (stamp.version, stamp.updated_at):
                return None
            self._bodies.move_to_end(experiment_id)
            return found.read

    async def latest(self, request: Request, *, experiment_id: int) -> ExperimentRead:
        """The experiment as the API serialises it; NotFound without it. Its stamp (db.stamps)
        is read first, so a hit on it later is served as what was current then or after."""
        stamp = await request.app.state.stamps.stamp(experiment_id)
        stamped = None if stamp is None else (stamp.version, stamp.updated_at)
        async with request_session(request) as session:
            return await run_in_threadpool(self._read_released, session, experiment_id, stamped)

    def _read_released(
        self, session: Session, experiment_id: int, stamped: tuple[Any, Any] | None
    ) -> ExperimentRead:
        try:
            return self.read(session, experiment_id=experiment_id, stamped=stamped)
        finally:
            release_session(session)

    def read(
        self, session: Session, *, experiment_id: int, stamped: tuple[Any, Any] | None = None
    ) -> ExperimentRead:
        """The experiment as the API serialises it (ExperimentOut); NotFound without it."""
        stamp = registry.experiment_stamp(session, experiment_id=experiment_id)
        with self._lock:
            found = self._bodies.get(experiment_id)
            if found is not None and found.stamp == stamp:
                self._bodies[experiment_id] = _Cached(stamp, found.read, stamped)
                self._bodies.move_to_end(experiment_id)
                return found.read
        view = registry.get_experiment(session, experiment_id=experiment_id)
        read = ExperimentRead(view.version, _EXPERIMENT_OUT.dump_json(
            _EXPERIMENT_OUT.validate_python(view, from_attributes=True), by_alias=True
        ))
        with self._lock:
            self._bodies[experiment_id] = _Cached((view.version, view.updated_at), read, stamped)
            self._bodies.move_to_end(experiment_id)
            while len(self._bodies) > self.max_experiments:
                self._bodies.popitem(last=False)
        return read
