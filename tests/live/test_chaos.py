"""`chainlab netem` chaos by node name, against real sidecars on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console

from chainlab.cli import main
from chainlab.live import chaos
from chainlab.live.netem import control
from chainlab.live.plan import NetworkPlan, NodeEntry
from tests.live.netem.test_sidecar import _id, _net

NAMES = ["miner-0", "miner-1", "miner-2", "requester"]


def _plan(addresses: list[str]) -> NetworkPlan:
    nodes = [
        NodeEntry(name, name.split("-")[0], i if name != "requester" else 0, _id(i).hex(), "-", address, 0, 0)
        for i, (name, address) in enumerate(zip(NAMES, addresses, strict=True))
    ]
    return NetworkPlan({}, 0.02, 0.0, "-", nodes)


def test_partition_heal_set_link_and_stats_by_name(tmp_path: Path) -> None:
    async def run() -> None:
        async with _net(4, [(0, 1), (1, 2), (2, 3)]) as net:
            plan = _plan(net.addresses)
            downs = await chaos.partition(plan, [["miner-0", "miner-1"], ["miner-2", "requester"]])
            assert downs == {"miner-0": 0, "miner-1": 1, "miner-2": 1, "requester": 0}
            assert await chaos.heal(plan) == dict.fromkeys(NAMES, 0)
            await chaos.set_link(plan, "miner-1", "miner-2", latency_rounds=3, bandwidth_mb_per_round=2, loss=0.1,
                                 up=True)  # fmt: skip
            for here, there in ((1, 2), (2, 1)):
                link = {bytes(k.peer): k for k in await control.links(net.addresses[here])}[_id(there)]
                assert (link.latency_rounds, link.bandwidth_mb_per_round, link.loss) == (3, 2, 0.1)
            console = Console(width=200, record=True)
            console.print(await chaos.stats_table(plan))
            text = console.export_text()
            assert "miner-1" in text and "requester" in text and "0.1" in text

    asyncio.run(run())


def test_the_cli_reads_the_plan_and_reports_an_unreachable_network(tmp_path: Path) -> None:
    _plan(["127.0.0.1:9"] * 4).dump(tmp_path / "plan.json")
    assert main(["netem", "--out", str(tmp_path), "heal"]) == 1
