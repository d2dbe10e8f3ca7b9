"""Dynamic batching: concurrent requests for one model share a single call on their stacked rows.

Serving a small batch costs a model call's fixed overhead (a thread hop, input checks, one predict per base
model) more than its rows; stacking the rows of the requests that wait meanwhile pays that once per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Rows = npt.NDArray[Any]


Compute = Callable[[Rows], Rows]


@dataclass
class _Queue:
    waiting: list[tuple[Rows, Compute, asyncio.Future[Rows]]] = field(default_factory=list)
    busy: bool = False


class Batcher:
    """Per key, at most one call in flight; the requests that arrive while it runs go together in the next.

    `run(key, X, compute)` returns compute's output rows for X's rows. compute must depend on the key alone (a
    batch is computed by its oldest request's compute), map n rows to n output rows, and may block: it runs in a
    worker thread. A batch holds at most `max_rows` rows (a single larger request goes alone). An exception
    in compute is raised to every request of that batch; later batches still run.
    """

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.calls = 0  # compute calls made: fewer than requests when batching helps
        self._queues: dict[bytes, _Queue] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def run(self, key: bytes, X: Rows, compute: Compute) -> Rows:
        """compute(X), batched with whatever else waits for the same key."""
        queue = self._queues.setdefault(key, _Queue())
        done: asyncio.Future[Rows] = asyncio.get_running_loop().create_future()
        queue.waiting.append((X, compute, done))
        if not queue.busy:
            queue.busy = True
            drain = asyncio.create_task(self._drain(queue))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await done

    async def _drain(self, queue: _Queue) -> None:
        try:
            while queue.waiting:
                batch = self._take(queue)
                compute = batch[0][1]
                try:
                    self.calls += 1
                    out = await asyncio.to_thread(compute, np.concatenate([x for x, _, _ in batch]))
                except Exception as exc:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                start = 0
                for x, _, done in batch:
                    if not done.done():  # its caller may have gone (a cancelled RPC)
                        done.set_result(out[start : start + len(x)])
                    start += len(x)
        finally:
            queue.busy = False

    def _take(self, queue: _Queue) -> list[tuple[Rows, Compute, asyncio.Future[Rows]]]:
        """The oldest requests up to max_rows rows in all (always at least one)."""
        batch = [queue.waiting.pop(0)]
        rows = len(batch[0][0])
        while queue.waiting and rows + len(queue.waiting[0][0]) <= self.max_rows:
            rows += len(queue.waiting[0][0])
            batch.append(queue.waiting.pop(0))
        return batch
