"""Run a scenario in real time, in one process, over the in-memory transport."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chainlab.learning.worker import Worker
from chainlab.live.driver import LiveNode, RoundClock
from chainlab.live.transport import InMemoryStore, InMemoryTransport
from chainlab.mlwork import learning_spec
from chainlab.scenario import Experiment, Network, Observation, build, summarise


async def run_live(
    exp: Experiment, *, round_seconds: float, delay_rounds: float = 1.0, timeout_seconds: float = 120.0
) -> tuple[Network, dict[str, Any]]:
    """Run until every miner's tip holds all tasks (or the timeout); returns the network and its summary."""
    started = time.perf_counter()
    net = build(exp)
    # Importing the model family's code takes seconds the first time: pay it before the clock starts.
    spec = exp.model_spec()
    Worker().fit_plain(learning_spec(spec), net.public, exp.seed)
    records: list[Observation] = []
    clock = RoundClock(round_seconds)
    transport = InMemoryTransport(delay_rounds * round_seconds)
    store = InMemoryStore()
    q = int(exp.get("work", {}).get("hash_trials_per_round", 1))
    drivers = []
    for i, node in enumerate(net.nodes):
        # D_T is public from the start; D_V and D_E stay with the requester until it releases them.
        held = net.datasets if node is net.requester else {net.public.commitment(): net.public}
        driver = LiveNode(
            node,
            i,
            transport,
            store,
            clock,
            datasets=held,
            private=net.private.get(i),
            hash_trials_per_round=q,
            observe=records.append,
        )
        transport.register(node.node_id, driver.deliver, driver.serve)
        drivers.append(driver)
    tasks = [asyncio.create_task(d.run()) for d in drivers]
    try:
        deadline = time.perf_counter() + timeout_seconds
        while time.perf_counter() < deadline:
            if all(m.chain.tip.height >= exp.tasks for m in net.miners) and _settled(net):
                break
            await asyncio.sleep(round_seconds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    worker = Worker()
    results = summarise(exp, net, records, worker)
    results["wall_seconds"] = time.perf_counter() - started
    results["ml_seconds"] = worker.ml_seconds + sum(d.worker.ml_seconds for d in drivers)
    results["round_seconds"] = round_seconds
    results["gossip_bytes"] = transport.bytes_sent
    return net, results


def _settled(net: Network) -> bool:
    """Every node, validators included, agrees on the tip."""
    return len({n.tip.hash for n in [*net.miners, *net.validators]}) == 1
