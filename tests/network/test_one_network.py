"""One config, one network: the simulator's model and the live sidecars' topology hold the same links and hops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from chainlab.live.netem import control
from chainlab.live.netem.links import LinkTable
from chainlab.live.netem.sidecar import Sidecar
from chainlab.live.netem.topology import Topology, link_key, topology_for
from chainlab.live.server import bind, insecure_channel, new_server, running_server
from chainlab.network.config import NetworkConfig
from chainlab.network.links import LinkSpec, message_id
from chainlab.proto.v1 import netem_pb2, netem_pb2_grpc, node_pb2_grpc
from chainlab.sim.network import FullyConnected, TopologyNetwork, build_network
from tests.live.netem.test_sidecar import FakeNode

SEED = 3
N = 7
# Node IDs deliberately not in sorted order: vertex i is the i-th node of the deployment order, not the i-th ID.
IDS = [bytes([(7 * i + 3) % 11 + 1]) * 32 for i in range(N)]
CONFIGS = {
    "full": NetworkConfig(kind="full", delay_rounds=4),
    "erdos_renyi": NetworkConfig(kind="erdos_renyi", avg_degree=2.5, bandwidth_mb=0.5, hop_delay_rounds=1, loss=0.1),
    "topology": NetworkConfig(kind="topology", edges=((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 0))),
}
# The paper's sizes: a Key Block counts 6 MB, a MiniBlock 2 MB; a small message 0.01 MB.
SIZES = {"key block": 6.0, "miniblock": 2.0, "small": 0.01}


def _both(config: NetworkConfig) -> tuple[FullyConnected | TopologyNetwork, Topology]:
    nodes = [(node, f"sidecar-{i}:7100") for i, node in enumerate(IDS)]
    return build_network(config, N, SEED), topology_for(config, nodes, SEED)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_sim_and_live_have_the_same_links_on_the_same_node_ids(kind: str) -> None:
    sim, live = _both(CONFIGS[kind])
    assert live.vertices == tuple(IDS)
    sim_links = {link_key(IDS[u], IDS[v]): spec for (u, v), spec in sim.links.items()}
    assert sim_links == dict(live.links)
    assert live.vertex_edges() == list(sim.links)  # the same draw order


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("size", sorted(SIZES))
def test_sim_and_every_sidecar_apply_the_same_hop_rounds_to_the_same_message(kind: str, size: str) -> None:
    sim, live = _both(CONFIGS[kind])
    tables = {node: LinkTable(node, live, seed=SEED) for node in IDS}
    seen: set[int | None] = set()
    for k in range(10):
        mid = message_id(IDS[k % N], b"wire bytes %d" % k)
        sim_hops = sim.hops(mid, SIZES[size])
        for (u, v), hop in sim_hops.items():
            # Both ends of a link draw the same: a message lost one way is lost the other way too.
            assert tables[IDS[u]].hops(mid, SIZES[size])[IDS[v]] == hop
            assert tables[IDS[v]].hops(mid, SIZES[size])[IDS[u]] == hop
        seen |= set(sim_hops.values())
    if kind == "full":
        assert seen == {4}  # the constant delay, whatever the size
    elif size == "small":
        # One round of transfer plus the hop delay (or lost).
        assert seen <= {1 + CONFIGS[kind].hop_delay_rounds, None}
    elif kind == "erdos_renyi" and size == "key block":
        assert None in seen and max(h for h in seen if h is not None) >= 12


@contextlib.asynccontextmanager
async def _sidecars(
    config: NetworkConfig, n: int, round_seconds: float
) -> AsyncIterator[tuple[list[FakeNode], list[str]]]:
    """n fake nodes behind real sidecars on 127.0.0.1, wired by topology_for(config)."""
    nodes = [FakeNode() for _ in range(n)]
    async with contextlib.AsyncExitStack() as stack:
        node_addresses = []
        for node in nodes:

            def register(server: grpc.aio.Server, node: FakeNode = node) -> list[str]:
                node_pb2_grpc.add_PeerServicer_to_server(node, server)
                return ["chainlab.v1.Peer"]

            running = await stack.enter_async_context(running_server("fake-node", "127.0.0.1:0", register))
            node_addresses.append(f"127.0.0.1:{running.port}")
        servers = [new_server("netem") for _ in range(n)]
        addresses = [f"127.0.0.1:{bind(server, '127.0.0.1:0')}" for server in servers]
        topology = topology_for(config, list(zip(IDS[:n], addresses, strict=True)), SEED)
        sidecars = [
            Sidecar(IDS[i], topology, node_addresses[i], round_seconds=round_seconds, seed=SEED, call_timeout=2.0)
            for i in range(n)
        ]
        try:
            for server, sidecar in zip(servers, sidecars, strict=True):
                sidecar.register(server)
                await server.start()
            yield nodes, addresses
        finally:
            for sidecar in sidecars:
                await sidecar.close()
            for server in servers:
                await server.stop(0)


async def _until_delivered(nodes: Sequence[FakeNode], count: int) -> None:
    for _ in range(2000):
        if all(len(node.got) >= count for node in nodes):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not delivered")


def test_a_sidecar_applies_the_simulators_hop_rounds_to_a_declared_six_mb_message() -> None:
    # A line 0 - 1 - 2 at 0.5 MB per round: counted in rounds through Stats, never by the clock.
    config = NetworkConfig(kind="topology", edges=((0, 1), (1, 2)), bandwidth_mb=0.5)
    sim = build_network(config, 3, SEED)
    assert isinstance(sim, TopologyNetwork)

    async def run() -> None:
        async with _sidecars(config, 3, round_seconds=0.002) as (nodes, addresses):
            for k, size in enumerate((6.0, 2.0, 0.01)):
                payload = b"block %d" % k
                async with insecure_channel(addresses[0]) as channel:
                    request = netem_pb2.BroadcastRequest(payload=payload, size_mb=size)
                    reply = await netem_pb2_grpc.NetemNodeStub(channel).Broadcast(request, timeout=5)
                assert reply.message_id == message_id(IDS[0], payload)
                await _until_delivered(nodes[1:], k + 1)
                hops = sim.hops(reply.message_id, size)
                applied = [(await control.stats(address)).links for address in addresses[:2]]
                first = {link.peer: link.last_hop_rounds for link in applied[0]}[IDS[1]]
                second = {link.peer: link.last_hop_rounds for link in applied[1]}[IDS[2]]
                assert (first, second) == (hops[(0, 1)], hops[(1, 2)])
                # The simulator's delivery round at the far end is the sum of the hops the sidecars applied.
                assert sim.broadcast(0, size, 0, reply.message_id)[2] == first + second
            key_blocks = [h for h in applied[0][0].hop_delays if h.size_mb == 6.0]
            assert len(key_blocks) == 1 and key_blocks[0].messages == 1 and key_blocks[0].rounds >= 7

    asyncio.run(run())


def test_the_full_networks_sidecars_deliver_in_the_constant_delay() -> None:
    config = NetworkConfig(kind="full", delay_rounds=2)
    sim = build_network(config, 3, SEED)

    async def run() -> None:
        async with _sidecars(config, 3, round_seconds=0.002) as (nodes, addresses):
            async with insecure_channel(addresses[0]) as channel:
                request = netem_pb2.BroadcastRequest(payload=b"kb", size_mb=6.0)
                reply = await netem_pb2_grpc.NetemNodeStub(channel).Broadcast(request, timeout=5)
            await _until_delivered(nodes[1:], 1)
            links = (await control.stats(addresses[0])).links
            assert {link.last_hop_rounds for link in links} == {2}
            assert set(sim.broadcast(0, 6.0, 0, reply.message_id).values()) == {2}
            assert links[0].link.bandwidth_mb_per_round == 0.0
            assert LinkSpec(latency_rounds=int(links[0].link.latency_rounds)) == config.link_spec()

    asyncio.run(run())
