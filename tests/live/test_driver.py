"""LiveNode: wire bytes in, effects out, jobs always report back, content travels through the store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chainlab.learning.datasets import encode_dataset
from chainlab.live.driver import BadRequest, LiveNode, RoundClock
from chainlab.live.transport import InMemoryStore, InMemoryTransport
from chainlab.protocols.bagchain.reasons import Reason
from chainlab.protocols.effects import FetchDataset
from chainlab.scenario import Experiment, Network, Observation, build
from tests.live.test_runner import LIVE


def _driver(
    net: Network, node: Any, records: list[Observation], store: InMemoryStore | None = None, **kw: Any
) -> LiveNode:
    transport = kw.pop("transport", InMemoryTransport(0.0))
    options: dict[str, Any] = {"datasets": net.datasets, "private": None, "hash_trials_per_round": 1, **kw}
    driver = LiveNode(node, 0, transport, store or InMemoryStore(), RoundClock(0.05), observe=records.append, **options)
    transport.register(node.node_id, driver.deliver, driver.serve)
    return driver


def test_malformed_bytes_are_counted_dropped_and_reported() -> None:
    async def scenario() -> tuple[list[list[Any]], list[Observation]]:
        net = build(Experiment.from_mapping({**LIVE, "miners": 1, "validators": 0}))
        records: list[Observation] = []
        node = _driver(net, net.miners[0], records)
        return [node.deliver(b"attacker", g) for g in (b"", b"\x09junk", b"\x03\xff\xff\xff")], records

    answers, records = asyncio.run(scenario())
    assert [[a["reason"] for a in answer] for answer in answers] == [[Reason.MALFORMED]] * 3
    assert [r.data["reason"] for r in records if r.event == "rejected"] == [Reason.MALFORMED] * 3


def test_a_valid_message_causes_no_rejection() -> None:
    async def scenario() -> list[Any]:
        net = build(Experiment.from_mapping({**LIVE, "miners": 1, "validators": 0}))
        from chainlab.protocols.bagchain.messages import to_wire

        return _driver(net, net.miners[0], []).deliver(net.requester.node_id, to_wire(net.tasks[0]))

    assert asyncio.run(scenario()) == []


def test_a_failing_job_is_reported_to_the_node_and_asking_the_requester_for_a_model_is_refused() -> None:
    async def scenario() -> tuple[list[Observation], list[tuple[int, object]]]:
        net = build(Experiment.from_mapping({**LIVE, "miners": 1, "validators": 0}))
        records: list[Observation] = []
        transport = InMemoryTransport(0.0)
        miner, requester = net.miners[0], net.requester
        results: list[tuple[int, object]] = []
        original = miner.on_result

        def spy(job: int, result: object, now: int) -> list[Any]:
            results.append((job, result))
            return original(job, result, now)

        miner.on_result = spy  # type: ignore[method-assign]
        # No data at all: the miner's training fails.
        drivers = [_driver(net, node, records, transport=transport, datasets={}) for node in (miner, requester)]
        tasks = [asyncio.create_task(d.run()) for d in drivers]
        refused = await transport.request(miner.node_id, requester.node_id, "model", b"\x0a\x01x")
        await asyncio.sleep(0.3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert refused is None
        return records, results

    records, results = asyncio.run(scenario())
    assert any(r.event == "job_failed" and r.data["job"] == "Train" for r in records)
    assert (1, None) in results  # the Train job's failure reached the miner as a result


def test_serve_refuses_unknown_kinds_and_malformed_requests() -> None:
    async def scenario(kind: str, payload: bytes) -> None:
        net = build(Experiment.from_mapping({**LIVE, "miners": 1, "validators": 0}))
        await _driver(net, net.miners[0], []).serve(kind, payload)

    with pytest.raises(BadRequest, match="unknown_fetch_kind"):
        asyncio.run(scenario("weights", b""))
    with pytest.raises(BadRequest, match="malformed"):
        asyncio.run(scenario("model", b"\xff\xff"))


def test_a_released_dataset_travels_through_the_store_and_is_checked_against_its_commitment() -> None:
    async def scenario(tamper: bool) -> tuple[bool, list[Observation]]:
        net = build(Experiment.from_mapping({**LIVE, "miners": 1, "validators": 0}))
        records: list[Observation] = []
        store = InMemoryStore()
        transport = InMemoryTransport(0.0)
        requester = _driver(net, net.requester, records, store, transport=transport)
        miner = _driver(net, net.miners[0], records, store, transport=transport, datasets={})
        commitment = net.tasks[0].train_commitment  # D_T: the requester serves it from the start
        if tamper:  # the store answers with another dataset under the address the requester hands out
            answer = await requester.serve("dataset", commitment)
            assert answer is not None
            store._objects[answer.decode()] = encode_dataset(net.validation)
        ok = await miner._work(FetchDataset(1, net.requester.node_id, commitment))
        assert (commitment in miner.datasets) is ok
        return bool(ok), records

    assert asyncio.run(scenario(tamper=False))[0] is True
    ok, records = asyncio.run(scenario(tamper=True))
    assert ok is False
    assert [r.data["reason"] for r in records if r.event == "rejected"] == ["dataset_commitment_mismatch"]


def test_an_unreleased_dataset_is_refused() -> None:
    async def scenario() -> bytes | None:
        net = build(Experiment.from_mapping({**LIVE, "miners": 1, "validators": 0}))
        return await _driver(net, net.requester, []).serve("dataset", net.tasks[0].validation_commitment)

    assert asyncio.run(scenario()) is None
