"""LiveNode: wire bytes in, effects out, jobs always report back, internal failures retried, content via the store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from chainlab.learning.datasets import encode_dataset
from chainlab.live.driver import FETCH_DATA, FETCH_REQUEST, JOB_ATTEMPTS, LiveNode, RoundClock
from chainlab.live.transport import InMemoryStore, InMemoryTransport
from chainlab.protocols.bagchain import Miner
from chainlab.protocols.bagchain.messages import ModelRequest, to_wire
from chainlab.protocols.bagchain.reasons import Reason
from chainlab.protocols.bagchain.wire import CODEC
from chainlab.protocols.base import Observation
from chainlab.protocols.effects import Compute, Effect, EvaluateEnsemble, FetchData, Get, JobFailed, JobResult, Put
from chainlab.protocols.errors import Refusal
from chainlab.work import executor
from tests.bagchain_net import Experiment, Network, build
from tests.live.test_runner import LIVE


def _driver(
    net: Network, node: Any, records: list[Observation], store: InMemoryStore | None = None, **kw: Any
) -> LiveNode:
    transport = kw.pop("transport", InMemoryTransport(0.0))
    options: dict[str, Any] = {"datasets": net.datasets, "private": None, "hash_trials_per_round": 1, **kw}
    driver = LiveNode(
        node, 0, CODEC, transport, store or InMemoryStore(), RoundClock(0.02), observe=records.append, **options
    )
    transport.register(node.node_id, driver.deliver, driver.serve)
    return driver


def _spy_on_results(node: Miner) -> list[tuple[int, JobResult]]:
    """Every (job, result) the node hears from here on, in order."""
    heard: list[tuple[int, JobResult]] = []
    original = node.on_result

    def spy(job: int, result: JobResult, now: int) -> list[Any]:
        heard.append((job, result))
        return original(job, result, now)

    node.on_result = spy  # type: ignore[method-assign]
    return heard


async def _run_until(
    driver: LiveNode,
    effects: list[Effect],
    done: Callable[[], bool],
    *,
    deliver: tuple[bytes, bytes, float, float] | None = None,
    polls: int = 300,
) -> None:
    """Run the driver, hand it effects (and a message), until done() holds or `polls` polls of 20 ms pass."""
    runner = asyncio.create_task(driver.run())
    await driver.started.wait()
    driver._execute(effects)
    if deliver is not None:
        driver.deliver(*deliver)
    for _ in range(polls):
        if done():
            break
        await asyncio.sleep(0.02)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


def _net() -> Network:
    return build(Experiment.from_mapping({**LIVE, "miners": 1, "validators": 0}))


def test_malformed_bytes_are_counted_dropped_and_reported() -> None:
    async def scenario() -> tuple[list[list[Any]], list[Observation]]:
        net = _net()
        records: list[Observation] = []
        node = _driver(net, net.miners[0], records)
        return [node.deliver(b"attacker", g, 0.001, 0.0) for g in (b"", b"\x09junk", b"\x03\xff\xff\xff")], records

    answers, records = asyncio.run(scenario())
    assert [[a["reason"] for a in answer] for answer in answers] == [[Reason.MALFORMED]] * 3
    assert [r.data["reason"] for r in records if r.event == "rejected"] == [Reason.MALFORMED] * 3


def test_a_valid_message_causes_no_rejection() -> None:
    async def scenario() -> list[Any]:
        net = _net()
        return _driver(net, net.miners[0], []).deliver(net.requester.node_id, to_wire(net.tasks[0]), 0.001, 0.0)

    assert asyncio.run(scenario()) == []


def test_an_internal_failure_is_recorded_retried_and_never_held_against_a_peer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An Evaluate that raises inside the node (a driver bug, a race) is an internal error: retried, no verdict."""
    real = executor.execute
    failures: list[int] = []

    def flaky(worker: Any, op: Any, datasets: Any, train: Any = None, private: Any = None) -> Any:
        if isinstance(op, EvaluateEnsemble) and not failures:
            failures.append(1)
            raise KeyError("injected: a cache entry evicted by another thread")
        return real(worker, op, datasets, train, private)

    monkeypatch.setattr(executor, "execute", flaky)

    async def scenario() -> tuple[list[Observation], list[tuple[int, JobResult]]]:
        net = _net()
        records: list[Observation] = []
        miner = net.miners[0]
        results = _spy_on_results(miner)
        driver = _driver(net, miner, records)
        model = driver.worker().fit_plain(executor.learning_spec(net.tasks[0].train), net.public, 1)
        task = net.tasks[0]
        op = EvaluateEnsemble(((b"k" * 32, model),), task.train, net.test.commitment(), "majority", "accuracy")
        await _run_until(driver, [Compute(999, op)], lambda: any(job == 999 for job, _ in results))
        return records, results

    records, results = asyncio.run(scenario())
    internal = [r for r in records if r.event == "internal_error"]
    assert [(r.data["job"], r.data["attempt"]) for r in internal] == [("EvaluateEnsemble", 1)]
    assert "injected" in str(internal[0].data["error"])
    (result,) = [res for job, res in results if job == 999]
    assert isinstance(result, float) and 0.0 < result <= 1.0  # the retry succeeded and the node got the metric
    assert [r for r in records if r.event == "rejected"] == []


def test_a_job_that_keeps_failing_reaches_the_node_as_job_failed_and_training_is_asked_for_again() -> None:
    async def scenario() -> tuple[list[Observation], list[tuple[int, JobResult]]]:
        net = _net()
        records: list[Observation] = []
        miner = net.miners[0]
        results = _spy_on_results(miner)
        # No data at all: the miner's training fails inside its own driver, every time.
        driver = _driver(net, miner, records, datasets={})
        task = to_wire(net.tasks[0])
        await _run_until(
            driver,
            [],
            lambda: sum(isinstance(r, JobFailed) for _, r in results) >= 2,
            deliver=(net.requester.node_id, task, 0.001, 0.0),
        )
        return records, results

    records, results = asyncio.run(scenario())
    internal = [r for r in records if r.event == "internal_error" and r.data["job"] == "TrainModel"]
    assert [r.data["attempt"] for r in internal][:JOB_ATTEMPTS] == list(range(1, JOB_ATTEMPTS + 1))
    assert sum(isinstance(r, JobFailed) for _, r in results) >= 2  # given up, reported, and asked for again
    assert sum(r.event == "training_started" for r in records) >= 2
    assert [r for r in records if r.event == "rejected"] == []


def test_serve_refuses_unknown_kinds_and_malformed_requests() -> None:
    async def scenario(kind: str, payload: bytes) -> None:
        net = _net()
        await _driver(net, net.miners[0], []).serve(b"peer", kind, payload)

    with pytest.raises(Refusal, match="unknown_fetch_kind"):
        asyncio.run(scenario("weights", b""))
    with pytest.raises(Refusal, match="malformed"):
        asyncio.run(scenario(FETCH_REQUEST, b"\xff\xff"))


def test_a_released_dataset_travels_through_the_store_and_is_checked_against_its_commitment() -> None:
    async def scenario(tamper: bool) -> tuple[bool, list[Observation]]:
        net = _net()
        records: list[Observation] = []
        store = InMemoryStore()
        transport = InMemoryTransport(0.0)
        requester = _driver(net, net.requester, records, store, transport=transport)
        miner = _driver(net, net.miners[0], records, store, transport=transport, datasets={})
        commitment = net.tasks[0].train_commitment  # D_T: the requester serves it from the start
        if tamper:  # the store answers with another dataset under the address the requester hands out
            answer = await requester.serve(b"peer", FETCH_DATA, commitment)
            assert answer is not None
            store._objects[answer.decode()] = encode_dataset(net.validation)
        ok = await miner._work(FetchData(1, net.requester.node_id, commitment))
        assert (commitment in miner.datasets) is ok
        # What the miner read from the store is counted as served by the requester, at its real length.
        fetched = len(encode_dataset(net.validation if tamper else net.public))
        assert miner.wire.sent_by == {net.requester.node_id.hex(): fetched} and miner.wire.served == fetched
        return bool(ok), records

    assert asyncio.run(scenario(tamper=False))[0] is True
    ok, records = asyncio.run(scenario(tamper=True))
    assert ok is False
    assert [r.data["reason"] for r in records if r.event == "rejected"] == ["dataset_commitment_mismatch"]


def test_an_unreleased_dataset_is_refused() -> None:
    async def scenario() -> bytes | None:
        net = _net()
        return await _driver(net, net.requester, []).serve(b"peer", FETCH_DATA, net.tasks[0].validation_commitment)

    assert asyncio.run(scenario()) is None


def test_put_and_get_go_through_the_store_and_an_unknown_address_reads_as_none() -> None:
    async def scenario() -> tuple[JobResult, JobResult, JobResult]:
        net = _net()
        driver = _driver(net, net.miners[0], [])
        address = await driver._work(Put(1, b"contribution"))
        assert isinstance(address, bytes)
        return address, await driver._work(Get(2, address)), await driver._work(Get(3, b"no-such-address"))

    address, found, missing = asyncio.run(scenario())
    assert address and found == b"contribution" and missing is None


def test_what_reaches_a_node_is_counted_by_kind_and_sender_as_the_simulator_counts_it() -> None:
    """A message at its declared size, split as its sender declared; storage traffic at its real length."""

    async def scenario() -> LiveNode:
        net = _net()
        driver = _driver(net, net.miners[0], [])
        driver.deliver(b"\x01" * 32, b"\x09junk", 0.25, 0.2)  # counted even though the node drops it
        driver.deliver(b"\x02" * 32, to_wire(net.tasks[0]), 0.001, 0.0)
        address = await driver._work(Put(1, b"x" * 100))
        assert isinstance(address, bytes)
        await driver._work(Get(2, address))
        await driver._work(Get(3, b"no-such-address"))
        return driver

    driver = asyncio.run(scenario())
    me = driver.node.node_id.hex()
    assert (driver.wire.payload, driver.wire.control, driver.wire.served) == (200_000, 51_000, 200)
    assert driver.wire.sent_by == {"01" * 32: 250_000, "02" * 32: 1_000, me: 200}


def test_an_empty_answer_travels_without_storage_which_keeps_no_empty_object() -> None:
    """A catch-up answer with no blocks encodes to no bytes: served as the empty address, read back as no bytes."""

    class Refusing(InMemoryStore):
        async def put(self, data: bytes) -> str:
            if not data:
                raise AssertionError("storage was asked to keep an empty object")
            return await super().put(data)

    async def scenario() -> bytes | None:
        net = _net()
        store, transport = Refusing(), InMemoryTransport(0.0)
        server = _driver(net, net.miners[0], [], store, transport=transport)
        client = _driver(net, net.requester, [], store, transport=transport)
        server.node.on_request = lambda sender, request, now: b""  # type: ignore[method-assign]
        request = CODEC.encode_request(ModelRequest(b"\x01" * 32, None))
        return await client.fetch(server.node.node_id, FETCH_REQUEST, request)

    assert asyncio.run(scenario()) == b""
