"""Where the planner computes: threads of its own, never the ones the database routes run on.

The routes that read or write the database are plain functions that FastAPI runs on the
process's worker threads (API_THREADS). Planner requests need no database but can keep a core
busy; a flood of them on those threads would leave every database route waiting. They run
through a :class:`ComputePool` instead (docs/api.md, "Under load and faults"): at most
API_PLANNER_THREADS at once, on threads that are not among API_THREADS. Others wait on the
event loop (holding no thread) up to API_QUEUE_TIMEOUT_SECONDS, at most
API_PLANNER_MAX_QUEUED of them; past that they get 503 with Retry-After at once. Each solve is
bounded in time too (PLANNER_TIME_BUDGET_SECONDS, core.planning: 422 with the reason).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request

from api.deps import DatabaseGate
from core.config import Settings

P = ParamSpec("P")
T = TypeVar("T")


class ComputePool:
    """Runs CPU-only work on at most `threads` threads of its own (module docstring): a call
    takes a slot of a :class:`api.deps.DatabaseGate` sized to the threads (the same bounded
    wait and 503 as a database slot), then runs on a thread limiter of that size."""

    def __init__(self, threads: int, *, timeout: float, max_queued: int, what: str) -> None:
        self.gate = DatabaseGate(threads, timeout=timeout, max_queued=max_queued,
                                 waits_for=f"a {what} thread")
        # A second limiter of the same size for the threads themselves: a call holds a slot
        # before it asks for one, so it never waits here, and never takes one of API_THREADS.
        self._threads = anyio.CapacityLimiter(threads)

    @classmethod
    def planner(cls, settings: Settings) -> ComputePool:
        return cls(settings.api_planner_threads, timeout=settings.api_queue_timeout_seconds,
                   max_queued=settings.api_planner_max_queued, what="planner")

    async def run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` on one of the pool's threads; :class:`Overloaded` when
        none comes free in time or too many calls already wait."""
        token = await self.gate.enter()
        try:
            return await anyio.to_thread.run_sync(
                functools.partial(func, *args, **kwargs), limiter=self._threads
            )
        finally:
            self.gate.leave(token)


async def planner_pool(request: Request) -> ComputePool:
    """The app's planner pool (async: a plain function would take a worker thread)."""
    pool: ComputePool = request.app.state.planner_pool
    return pool


PlannerPool = Annotated[ComputePool, Depends(planner_pool)]
