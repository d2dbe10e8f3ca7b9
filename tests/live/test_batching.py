"""Dynamic batching: concurrent requests share one call, each gets its own rows, failures reach the batch."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.live.batching import Batcher

Rows = npt.NDArray[Any]


def _double(rows: Rows) -> Rows:
    return rows * 2


def _slow_double(gate: threading.Event) -> Any:
    def compute(rows: Rows) -> Rows:
        gate.wait(5)  # holds the first call until the others have queued behind it
        return rows * 2

    return compute


@settings(deadline=None, max_examples=30)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=12), st.integers(1, 20))
def test_each_request_gets_exactly_its_own_rows(sizes: list[int], max_rows: int) -> None:
    async def scenario() -> list[Rows]:
        batcher = Batcher(max_rows)
        inputs = [np.arange(n) + 100 * k for k, n in enumerate(sizes)]
        return list(await asyncio.gather(*(batcher.run(b"m", x, _double) for x in inputs)))

    outputs = asyncio.run(scenario())
    for k, (n, out) in enumerate(zip(sizes, outputs, strict=True)):
        assert out.tolist() == [2 * (v + 100 * k) for v in range(n)]


def test_requests_that_wait_behind_a_call_share_the_next_one() -> None:
    async def scenario() -> tuple[int, list[Rows]]:
        gate = threading.Event()
        batcher = Batcher(1000)
        first = asyncio.create_task(batcher.run(b"m", np.array([1]), _slow_double(gate)))
        await asyncio.sleep(0.05)  # the first call is in flight
        rest = [asyncio.create_task(batcher.run(b"m", np.array([k]), _double)) for k in range(2, 12)]
        await asyncio.sleep(0.05)
        gate.set()
        outputs = await asyncio.gather(first, *rest)
        return batcher.calls, outputs

    calls, outputs = asyncio.run(scenario())
    assert calls == 2  # the first alone, then the ten that queued behind it together
    assert [int(o[0]) for o in outputs] == [2 * k for k in range(1, 12)]


def test_max_rows_bounds_a_batch_and_keys_do_not_mix() -> None:
    seen: list[int] = []

    def record(rows: Rows) -> Rows:
        seen.append(len(rows))
        return rows

    async def scenario() -> None:
        gate = threading.Event()
        batcher = Batcher(4)
        first = asyncio.create_task(batcher.run(b"a", np.zeros(1), _slow_double(gate)))
        await asyncio.sleep(0.05)
        others = [batcher.run(b"a", np.zeros(3), record) for _ in range(3)]
        other_key = batcher.run(b"b", np.ones(2), _double)
        tasks = [asyncio.create_task(c) for c in (*others, other_key)]
        await asyncio.sleep(0.05)
        gate.set()
        *_, b = await asyncio.gather(first, *tasks)
        assert b.tolist() == [2.0, 2.0]

    asyncio.run(scenario())
    assert seen == [3, 3, 3]  # 3 + 3 > 4: one request per call


def test_a_failing_call_fails_its_batch_and_the_next_batch_still_runs() -> None:
    def broken(rows: Rows) -> Rows:
        raise RuntimeError("model failed")

    async def scenario() -> tuple[list[Any], Rows]:
        batcher = Batcher(100)
        failed = await asyncio.gather(
            *(batcher.run(b"m", np.zeros(2), broken) for _ in range(3)), return_exceptions=True
        )
        return failed, await batcher.run(b"m", np.ones(2), _double)

    failed, later = asyncio.run(scenario())
    assert all(isinstance(f, RuntimeError) for f in failed)
    assert later.tolist() == [2.0, 2.0]


def test_a_cancelled_request_does_not_break_the_batch() -> None:
    async def scenario() -> Rows:
        gate = threading.Event()
        batcher = Batcher(100)
        first = asyncio.create_task(batcher.run(b"m", np.array([1]), _slow_double(gate)))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(batcher.run(b"m", np.array([2]), _double))
        kept = asyncio.create_task(batcher.run(b"m", np.array([3]), _double))
        await asyncio.sleep(0.01)
        gone.cancel()
        gate.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert asyncio.run(scenario()).tolist() == [6]
