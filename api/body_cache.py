"""A bounded, process-local cache of serialized response bodies, keyed by a stamp that names
their content (so an entry is never stale: changed content has another stamp)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable


class BodyCache:
    """Least recently used bodies up to `max_bytes` in all; thread-safe (routes run in
    worker threads). A body larger than a quarter of the cap is served but not kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get_or_make(self, stamp: str, make: Callable[[], bytes]) -> bytes:
        """The body kept for `stamp`, else ``make()``'s (kept for next time)."""
        with self._lock:
            body = self._bodies.get(stamp)
            if body is not None:
                self._bodies.move_to_end(stamp)
                return body
        body = make()  # outside the lock: two threads may both make it, and get equal bodies
        if len(body) <= self.max_bytes // 4:
            with self._lock:
                if stamp not in self._bodies:
                    self._bodies[stamp] = body
                    self._size += len(body)
                    while self._size > self.max_bytes:
                        _, dropped = self._bodies.popitem(last=False)
                        self._size -= len(dropped)
        return body

    def clear(self) -> None:
        with self._lock:
            self._bodies.clear()
            self._size = 0

    def __len__(self) -> int:
        return len(self._bodies)
