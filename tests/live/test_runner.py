"""The live driver runs the same node objects in real time: 4 miners and a requester for 2 heights."""

from __future__ import annotations

import asyncio
from typing import Any

from chainlab.live.driver import LiveNode, RoundClock
from chainlab.live.runner import run_live
from chainlab.live.transport import InMemoryTransport
from chainlab.protocols.bagchain.messages import from_wire, to_wire
from chainlab.protocols.bagchain.reasons import Reason
from chainlab.scenario import Experiment, Observation, build

LIVE: dict[str, Any] = {
    "name": "live",
    "seed": 5,
    "dataset": "digits",
    "model": {"family": "decision_tree"},
    "metric_min": 0.3,
    "tasks": 2,
    "miners": 4,
    "validators": 1,
    "partition": {"kappa": 0.1, "zeta": 0.2},
    # Rounds of 0.1 s: Phase II leaves a second to fetch and evaluate models even on a loaded 2-core machine.
    "protocol": {"phase1_rounds": 20, "phase2_rounds": 15, "target": "2**250-1", "ensemble_wait_rounds": 10},
    "work": {"hash_trials_per_round": 8},
}


def test_four_miners_and_a_requester_finish_two_heights_in_real_time() -> None:
    exp = Experiment.from_mapping(LIVE)
    net, results = asyncio.run(run_live(exp, round_seconds=0.1, timeout_seconds=90))
    assert [h["height"] for h in results["heights"]] == [1, 2]
    assert results["tips_agree"]
    assert results["rejections"] == {}
    assert all(h["miniblocks_used"] >= 2 for h in results["heights"])
    assert results["ensemble_accuracy"] > 0.5
    assert results["gossip_bytes"] > 0
    finished = net.requester.results()
    assert [r.height for r in finished] == [1, 2]
    assert all(r.winning_ensemble is not None for r in finished)


def test_malformed_bytes_are_counted_and_dropped() -> None:
    async def scenario() -> list[Observation]:
        net = build(Experiment.from_mapping({**LIVE, "miners": 1, "validators": 0}))
        records: list[Observation] = []
        transport = InMemoryTransport(0.0)
        node = LiveNode(
            net.miners[0],
            0,
            transport,
            RoundClock(0.05),
            datasets=net.datasets,
            private=None,
            hash_trials_per_round=1,
            records=records,
        )
        runner = asyncio.create_task(node.run())
        for garbage in (b"", b"\x09junk", b"\x03\xff\xff\xff"):
            transport.broadcast(b"attacker", garbage)
        await asyncio.sleep(0.1)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return records

    rejected = [r for r in asyncio.run(scenario()) if r.event == "rejected"]
    assert [r.data["reason"] for r in rejected] == [Reason.MALFORMED] * 3


def test_wire_round_trip_of_every_message_kind() -> None:
    net = build(Experiment.from_mapping({**LIVE, "miners": 1, "validators": 0}))
    task = net.tasks[0]
    assert from_wire(to_wire(task)) == task
    genesis = net.miners[0].genesis
    assert from_wire(to_wire(genesis)) == genesis


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
        drivers = [
            LiveNode(node, i, transport, RoundClock(0.05), datasets={}, private=None,  # no data: training fails
                     hash_trials_per_round=1, records=records)
            for i, node in enumerate([miner, requester])
        ]  # fmt: skip
        tasks = [asyncio.create_task(d.run()) for d in drivers]
        refused = await transport.request(requester.node_id, "model", b"\x0a\x01x")
        await asyncio.sleep(0.3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert refused is None
        return records, results

    records, results = asyncio.run(scenario())
    assert any(r.event == "job_failed" and r.data["job"] == "Train" for r in records)
    assert (1, None) in results  # the Train job's failure reached the miner as a result
