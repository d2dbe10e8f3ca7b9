"""Run a protocol network in real time in one process, over the in-memory transport and store."""

from __future__ import annotations

import asyncio
import time

from chainlab.learning.worker import Worker
from chainlab.live.driver import LiveNode, RoundClock
from chainlab.live.transport import InMemoryStore, InMemoryTransport
from chainlab.network.wire_bytes import wire_total
from chainlab.protocols.base import Observation
from chainlab.scenarios import registry
from chainlab.scenarios.base import Deployment
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.results import Results, assemble, internal_errors_by_node, rejections_by_node


async def run_live(
    exp: Experiment, *, round_seconds: float, delay_rounds: float = 1.0, timeout_seconds: float = 120.0
) -> tuple[Deployment, Results]:
    """Run until the spec says the network is finished (or the timeout); the deployment and its results."""
    started = time.perf_counter()
    spec = registry.get(exp.protocol_name)
    deployment = spec.build(exp)
    records: list[Observation] = []
    clock = RoundClock(round_seconds)
    transport = InMemoryTransport(delay_rounds * round_seconds)
    store = InMemoryStore()
    drivers = []
    for i, (slot, node) in enumerate(zip(deployment.slots, deployment.nodes, strict=True)):
        held = [deployment.data[name] for name in deployment.holdings.get(slot.name, ())]
        private = deployment.private.get(slot.name)
        driver = LiveNode(
            node,
            i,
            spec.codec,
            transport,
            store,
            clock,
            datasets={d.commitment(): d for d in held},
            private=deployment.data[private] if private else None,
            hash_trials_per_round=exp.work.hash_trials_per_round,
            observe=records.append,
        )
        # Importing the model family's code takes seconds the first time: pay it before the clock matters.
        spec.warm_up(exp, driver.worker(), held)
        transport.register(slot.node_id, driver.deliver, driver.serve)
        drivers.append(driver)
    clock.epoch = time.time()
    tasks = [asyncio.create_task(d.run()) for d in drivers]
    finished = False
    try:
        deadline = time.perf_counter() + timeout_seconds
        while time.perf_counter() < deadline and not finished:
            finished = spec.finished(exp, [node.status() for node in deployment.nodes])
            await asyncio.sleep(round_seconds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    worker = Worker()
    observer = spec.observer(deployment.slots)
    watched = deployment.nodes[deployment.slots.index(observer)]
    protocol_results = spec.summarise(exp, spec.sim_view(watched, deployment.by_name()), deployment.data, worker)
    results = assemble(
        exp,
        driver="live-in-process",
        statuses={s.name: n.status() for s, n in zip(deployment.slots, deployment.nodes, strict=True)},
        observer=observer.name,
        rejections=rejections_by_node(records, [s.name for s in deployment.slots]),
        internal_errors=internal_errors_by_node(records, [s.name for s in deployment.slots]),
        protocol_results=protocol_results,
        truncated=not finished,
        rounds=clock.now(),
        wall_seconds=time.perf_counter() - started,
        ml_seconds=worker.ml_seconds + sum(d.ml_seconds for d in drivers),
        round_seconds=round_seconds,
        wire_bytes=wire_total([d.wire for d in drivers], len(drivers)),
    )
    results["gossip_bytes"] = transport.bytes_sent
    return deployment, results
