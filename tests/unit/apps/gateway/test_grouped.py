"""Blocking work for many callers at once: batches form under load, errors reach callers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from wellguard.apps.gateway.grouped import GroupedCalls


class Pool:
    """``run_blocking`` on a real thread, holding each batch until the test lets it go."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def work(self, items: list[int]) -> None:
        self.gate.wait(5)
        self.batches.append(list(items))
        if -1 in items:
            raise ValueError("bad item")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def start_held_batch(calls: GroupedCalls[int], pool: Pool) -> asyncio.Task[None]:
    """A first caller whose batch (``[0]``) runs until the test opens ``pool.gate``."""
    pool.gate.clear()
    first = asyncio.create_task(calls.submit(0))
    await settle()
    return first


def test_one_caller_alone_gets_a_batch_of_its_own() -> None:
    async def main() -> None:
        pool = Pool()
        calls = GroupedCalls(pool.work, pool.run_blocking)
        await calls.submit(1)
        await calls.submit(2)
        assert pool.batches == [[1], [2]]
        assert calls.batches == 2

    asyncio.run(main())


def test_callers_arriving_during_a_batch_share_the_next_one() -> None:
    async def main() -> None:
        pool = Pool()
        sizes: list[int] = []
        calls = GroupedCalls(pool.work, pool.run_blocking, max_batch=3, on_batch=sizes.append)
        first = await start_held_batch(calls, pool)
        rest = [asyncio.create_task(calls.submit(i)) for i in range(1, 6)]
        await settle()
        pool.gate.set()
        await asyncio.gather(first, *rest)
        assert pool.batches == [[0], [1, 2, 3], [4, 5]]
        assert sizes == [1, 3, 2]

    asyncio.run(main())


def test_an_error_reaches_every_caller_of_its_batch_and_no_other() -> None:
    async def main() -> None:
        pool = Pool()
        calls = GroupedCalls(pool.work, pool.run_blocking)
        first = await start_held_batch(calls, pool)
        same = [asyncio.create_task(calls.submit(i)) for i in (-1, 7)]
        await settle()
        pool.gate.set()
        await first
        for task in same:
            with pytest.raises(ValueError, match="bad item"):
                await task
        await calls.submit(8)  # the queue still works
        assert pool.batches[-1] == [8]

    asyncio.run(main())


def test_a_caller_that_gave_up_is_left_out_of_the_batch() -> None:
    async def main() -> None:
        pool = Pool()
        calls = GroupedCalls(pool.work, pool.run_blocking)
        first = await start_held_batch(calls, pool)
        gone = asyncio.create_task(calls.submit(1))
        kept = asyncio.create_task(calls.submit(2))
        await settle()
        gone.cancel()
        await settle()
        pool.gate.set()
        await asyncio.gather(first, kept)
        assert pool.batches == [[0], [2]]

    asyncio.run(main())


def test_stopping_the_drainer_cancels_the_waiting_callers() -> None:
    async def main() -> None:
        pool = Pool()
        pool.gate.clear()
        calls = GroupedCalls(pool.work, pool.run_blocking)
        waiting = [asyncio.create_task(calls.submit(i)) for i in range(3)]
        await settle()
        drainer = calls._drainer
        assert drainer is not None
        drainer.cancel()
        pool.gate.set()
        for task in waiting:
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupedCalls(Pool().work, Pool().run_blocking, max_batch=0)
