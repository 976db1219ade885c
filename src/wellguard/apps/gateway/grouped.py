"""Blocking work done for many callers at once, as group commit does for writes.

A connect burst means thousands of devices whose records are not held yet, each needing
a registry read. One thread-pool hop and one query per connect costs more in GIL hand-
offs and statement overhead than the reads themselves; here a caller's item joins a
queue, one batch at a time runs in the thread pool, and whatever arrived while it ran
goes in the next batch. Alone, a caller waits for one hop, as before; under a burst the
batches grow with the load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["GroupedCalls"]

T = TypeVar("T")


class GroupedCalls(Generic[T]):
    """``await calls.submit(item)`` returns once ``work`` has run on a batch holding it.

    ``work`` gets the items of one batch (at most ``max_batch``) and runs through
    ``run_blocking``; its exception reaches every caller of that batch. ``on_batch`` is
    told the size of each batch as it starts (metrics).
    """

    def __init__(
        self,
        work: Callable[[list[T]], Any],
        run_blocking: Callable[..., Awaitable[Any]],
        *,
        max_batch: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._work = work
        self._run_blocking = run_blocking
        self._max = max_batch
        self._on_batch = on_batch
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0  # batches run (for tests and metrics)

    async def submit(self, item: T) -> None:
        """Wait until a batch holding ``item`` has run (raising what ``work`` raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append((item, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        waiting: list[tuple[T, asyncio.Future[None]]] = []
        try:
            while self._queue:
                batch = self._queue[: self._max]
                del self._queue[: self._max]
                waiting = [(item, future) for item, future in batch if not future.done()]
                if not waiting:
                    continue
                self.batches += 1
                if self._on_batch is not None:
                    self._on_batch(len(waiting))
                try:
                    await self._run_blocking(self._work, [item for item, _ in waiting])
                except Exception as exc:  # handed to every caller of the batch
                    for _, future in waiting:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in waiting:
                        if not future.done():
                            future.set_result(None)
                waiting = []
        finally:
            self._drainer = None
            # Cancelled (the loop is stopping): nobody is left waiting for ever.
            for _, future in [*waiting, *self._queue]:
                future.cancel()
            self._queue.clear()
