"""api.deps.DatabaseGate: at most `slots` requests of a process hold a database session, of
them at most `read_slots` reads; a request waits on the event loop at most `timeout` seconds in
all, then gets Overloaded (503)."""

from __future__ import annotations

import anyio
import pytest

from api.deps import DatabaseGate
from api.errors import Overloaded


def _run(fn):  # type: ignore[no-untyped-def]
    return anyio.run(fn)


def test_database_gate_reads_take_turns_while_writes_pass() -> None:
    async def main() -> None:
        gate = DatabaseGate(3, timeout=0.2, max_queued=10, read_slots=1)
        first = await gate.enter(read=True)
        assert gate.in_use == 1
        with pytest.raises(Overloaded, match="within 0.2 s"):
            await gate.enter(read=True)  # the one read slot is held
        assert gate.in_use == 1  # the refused read gave back what it took
        writes = [await gate.enter(), await gate.enter()]  # writes use the other slots
        assert gate.in_use == 3
        with pytest.raises(Overloaded):
            await gate.enter()
        for token in writes:
            gate.leave(token)
        gate.leave(first)
        assert gate.in_use == 0
        second = await gate.enter(read=True)  # the read slot is free again
        gate.leave(second)

    _run(main)


def test_database_gate_a_waiting_read_gets_the_slot_when_it_is_given_back() -> None:
    async def main() -> None:
        gate = DatabaseGate(2, timeout=5.0, max_queued=10, read_slots=1)
        held = await gate.enter(read=True)
        got: list[object] = []

        async def reader() -> None:
            got.append(await gate.enter(read=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.sleep(0.05)
            assert not got  # waiting
            gate.leave(held)
        assert len(got) == 1 and gate.in_use == 1
        gate.leave(got[0])

    _run(main)


def test_database_gate_without_read_slots_reads_share_every_slot() -> None:
    async def main() -> None:
        gate = DatabaseGate(2, timeout=0.1, max_queued=10)
        tokens = [await gate.enter(read=True), await gate.enter(read=True)]
        with pytest.raises(Overloaded):
            await gate.enter(read=True)
        for token in tokens:
            gate.leave(token)

    _run(main)


def test_database_gate_a_read_refused_while_the_pool_is_full_gives_back_its_read_slot() -> None:
    async def main() -> None:
        gate = DatabaseGate(2, timeout=0.1, max_queued=10, read_slots=1)
        writes = [await gate.enter(), await gate.enter()]  # the pool is full
        with pytest.raises(Overloaded):
            await gate.enter(read=True)  # took the read slot, then found no connection
        gate.leave(writes.pop())
        read = await gate.enter(read=True)  # its read slot was given back
        assert gate.in_use == 2
        gate.leave(read)
        gate.leave(writes.pop())
        assert gate.in_use == 0

    _run(main)
