"""What the API serves from memory: results snapshots and experiment reads, as JSON bytes.

Results: a stored snapshot never changes, so its document is built once per process and then served
as bytes, with no session, no thread and no database. Which snapshot is an experiment's latest
does change (a refresh stores a new one), so that is checked again when it is older than
API_RESULTS_CACHE_SECONDS (one light query), and forgotten at once when a write through this
process touches the experiment.

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

from fastapi import Request
from pydantic import TypeAdapter
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import release_session, request_session
from api.schemas import ExperimentOut
from core import registry
from core.analysis import results

MAX_SNAPSHOTS = 256
"""Snapshot documents a process keeps (least recently served dropped first)."""
MAX_EXPERIMENTS = 1024
"""Experiment documents a process keeps (least recently served dropped first)."""
_EXPERIMENT_OUT = TypeAdapter(ExperimentOut)


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
        """The experiment's latest snapshot (None: it has none; NotFound: no experiment)."""
        served = self._fresh(experiment_id)
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


class ExperimentCache:
    """The per-process cache behind ``GET /experiments/{id}``, keyed by the experiment's stamp."""

    def __init__(self, max_experiments: int = MAX_EXPERIMENTS) -> None:
        self.max_experiments = max_experiments
        self._bodies: OrderedDict[int, tuple[Any, ExperimentRead]] = OrderedDict()
        self._lock = threading.Lock()  # reads run in several worker threads at once

    def clear(self) -> None:
        with self._lock:
            self._bodies.clear()

    def read(self, session: Session, *, experiment_id: int) -> ExperimentRead:
        """The experiment as the API serialises it (ExperimentOut); NotFound without it."""
        stamp = registry.experiment_stamp(session, experiment_id=experiment_id)
        with self._lock:
            found = self._bodies.get(experiment_id)
            if found is not None and found[0] == stamp:
                self._bodies.move_to_end(experiment_id)
                return found[1]
        view = registry.get_experiment(session, experiment_id=experiment_id)
        read = ExperimentRead(view.version, _EXPERIMENT_OUT.dump_json(
            _EXPERIMENT_OUT.validate_python(view, from_attributes=True), by_alias=True
        ))
        with self._lock:
            self._bodies[experiment_id] = ((view.version, view.updated_at), read)
            self._bodies.move_to_end(experiment_id)
            while len(self._bodies) > self.max_experiments:
                self._bodies.popitem(last=False)
        return read
