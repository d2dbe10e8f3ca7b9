import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest

from chainlab.ledger.hashing import sha256
from chainlab.live.errors import invalid, unavailable
from chainlab.live.netem import control
from chainlab.live.netem.sidecar import Sidecar
from chainlab.live.netem.topology import LinkSpec, from_edges
from chainlab.live.server import bind, insecure_channel, new_server, running_server
from chainlab.network.links import hop_rounds, message_id
from chainlab.proto.v1 import netem_pb2, netem_pb2_grpc, node_pb2, node_pb2_grpc

ROUND = 0.02  # seconds per round: small, so every test is quick
WAIT = 3.0  # bound on every wait


def _id(i: int) -> bytes:
    return bytes([i + 1]) * 32


class FakeNode(node_pb2_grpc.PeerServicer):
    """Records deliveries with their arrival time; answers fetches; may refuse everything, or be not started yet
    for its first `unavailable` deliveries (as a node whose server is up before its protocol loop)."""

    def __init__(self, reject: bool = False, unavailable: int = 0) -> None:
        self.reject = reject
        self.unavailable = unavailable
        self.got: list[tuple[float, netem_pb2.Envelope]] = []

    async def Deliver(self, request: netem_pb2.Envelope, context: grpc.aio.ServicerContext) -> node_pb2.DeliverReply:
        if self.unavailable > 0:
            self.unavailable -= 1
            raise unavailable("not_started", "test")
        if self.reject:
            raise invalid("bad_block", "test")
        self.got.append((asyncio.get_running_loop().time(), request))
        return node_pb2.DeliverReply()

    async def Serve(self, request: netem_pb2.FetchRequest, context: grpc.aio.ServicerContext) -> netem_pb2.FetchReply:
        return netem_pb2.FetchReply(found=True, answer=b"cid-of-" + request.payload)

    def payloads(self) -> list[bytes]:
        return [envelope.payload for _, envelope in self.got]


@dataclass
class Net:
    nodes: list[FakeNode]
    sidecars: list[Sidecar]
    addresses: list[str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _net(
    n: int,
    edges: list[tuple[int, int]],
    spec: LinkSpec | None = None,
    *,
    rejecting: tuple[int, ...] = (),
    starting: tuple[int, ...] = (),
    dead_nodes: tuple[int, ...] = (),
    dead_sidecars: tuple[int, ...] = (),
) -> AsyncIterator[Net]:
    """n fake nodes and their sidecars on 127.0.0.1; a dead node or sidecar is an address nobody listens on."""
    nodes = [FakeNode(reject=i in rejecting, unavailable=1 if i in starting else 0) for i in range(n)]
    async with contextlib.AsyncExitStack() as stack:
        node_addresses = []
        for i, node in enumerate(nodes):
            if i in dead_nodes:
                node_addresses.append(f"127.0.0.1:{_free_port()}")
                continue

            def register(server: grpc.aio.Server, node: FakeNode = node) -> list[str]:
                node_pb2_grpc.add_PeerServicer_to_server(node, server)
                return ["chainlab.v1.Peer"]

            running = await stack.enter_async_context(running_server("fake-node", "127.0.0.1:0", register))
            node_addresses.append(f"127.0.0.1:{running.port}")
        servers = [new_server("netem") for _ in range(n)]
        ports = [bind(server, "127.0.0.1:0") for server in servers]
        addresses = [f"127.0.0.1:{_free_port() if i in dead_sidecars else port}" for i, port in enumerate(ports)]
        topology = from_edges(
            {_id(i): addresses[i] for i in range(n)}, [(_id(a), _id(b)) for a, b in edges], spec=spec or LinkSpec()
        )
        sidecars = [
            Sidecar(_id(i), topology, node_addresses[i], round_seconds=ROUND, seed=1, call_timeout=2.0)
            for i in range(n)
        ]
        try:
            for i, (server, sidecar) in enumerate(zip(servers, sidecars, strict=True)):
                sidecar.register(server)
                if i not in dead_sidecars:
                    await server.start()
            yield Net(nodes, sidecars, addresses)
        finally:
            for sidecar in sidecars:
                await sidecar.close()
            for server in servers:
                await server.stop(0)


async def _until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def _broadcast(
    net: Net, i: int, payload: bytes, size_mb: float = 0.01, payload_mb: float = 0.0
) -> netem_pb2.BroadcastReply:
    async with insecure_channel(net.addresses[i]) as channel:
        reply: netem_pb2.BroadcastReply = await netem_pb2_grpc.NetemNodeStub(channel).Broadcast(
            netem_pb2.BroadcastRequest(payload=payload, size_mb=size_mb, payload_mb=payload_mb), timeout=WAIT
        )
        return reply


async def _fetch(net: Net, i: int, target: bytes, payload: bytes = b"model-7") -> netem_pb2.FetchReply:
    async with insecure_channel(net.addresses[i]) as channel:
        request = netem_pb2.FetchRequest(origin=_id(i), target=target, kind="model", payload=payload)
        reply: netem_pb2.FetchReply = await netem_pb2_grpc.NetemNodeStub(channel).Fetch(request, timeout=WAIT)
        return reply


RING = [(0, 1), (1, 2), (2, 3), (3, 0)]
LINE = [(0, 1), (1, 2), (2, 3)]


def test_a_broadcast_reaches_every_other_node_exactly_once() -> None:
    async def run() -> None:
        async with _net(4, RING) as net:
            reply = await _broadcast(net, 0, b"block-1", payload_mb=0.004)
            assert reply.message_id == message_id(_id(0), b"block-1") == sha256(_id(0) + b"block-1")
            assert reply.neighbours == 2
            await _until(lambda: all(net.nodes[i].got for i in (1, 2, 3)))
            # Let the ring's second copies arrive and be recognised as duplicates.
            await _until(lambda: sum(s.duplicates for s in net.sidecars) >= 1)
            await asyncio.sleep(4 * ROUND)
            assert [len(node.got) for node in net.nodes] == [0, 1, 1, 1]
            assert net.nodes[2].got[0][1].hops == 1
            assert net.nodes[1].got[0][1].origin == _id(0)
            # The declared size and its payload share travel with the message, across relays too.
            assert (net.nodes[2].got[0][1].size_mb, net.nodes[2].got[0][1].payload_mb) == (0.01, 0.004)
            stats = await control.stats(net.addresses[0])
            assert stats.node == _id(0)
            assert {link.peer: link.messages_sent for link in stats.links} == {_id(1): 1, _id(3): 1}
            assert all(link.bytes_sent == len(b"block-1") for link in stats.links)
            totals = [await control.stats(a) for a in net.addresses]
            assert sum(s.delivered for s in totals) == 3
            assert sum(s.duplicates for s in totals) == sum(s.duplicates for s in net.sidecars) >= 1
            # The same payload broadcast again is the same message: it goes nowhere.
            assert (await _broadcast(net, 0, b"block-1")).neighbours == 0

    asyncio.run(run())


def test_a_partition_stops_gossip_crossing_and_heal_restores_it() -> None:
    async def run() -> None:
        async with _net(4, LINE) as net:
            downs = await control.partition_all(net.addresses, [[_id(0), _id(1)], [_id(2), _id(3)]])
            assert downs == {net.addresses[0]: 0, net.addresses[1]: 1, net.addresses[2]: 1, net.addresses[3]: 0}
            await _broadcast(net, 0, b"during")
            await _until(lambda: bool(net.nodes[1].got))
            await asyncio.sleep(5 * ROUND)
            assert not net.nodes[2].got and not net.nodes[3].got
            stats = await control.stats(net.addresses[1])
            assert {link.peer: link.messages_dropped for link in stats.links}[_id(2)] == 1
            assert {link.peer: link.link.up for link in stats.links} == {_id(0): True, _id(2): False}
            assert await control.heal_all(net.addresses) == {a: 0 for a in net.addresses}
            await _broadcast(net, 0, b"after")
            await _until(lambda: net.nodes[3].payloads() == [b"after"])
            assert net.nodes[2].payloads() == [b"after"]

    asyncio.run(run())


def test_the_hop_delay_is_charged_on_the_declared_size_not_the_payload() -> None:
    async def run() -> None:
        async with _net(2, [(0, 1)], LinkSpec(latency_rounds=0, bandwidth_mb_per_round=0.5)) as net:
            big = await _broadcast(net, 0, bytes(60_000), size_mb=0.0)
            await _until(lambda: len(net.nodes[1].got) == 1)
            small = await _broadcast(net, 0, b"key block", size_mb=6.0)
            await _until(lambda: len(net.nodes[1].got) == 2)
            (link,) = (await control.stats(net.addresses[0])).links
            spec = [LinkSpec(latency_rounds=0, bandwidth_mb_per_round=0.5)]
            expected = {
                (0.0, hop_rounds(1, big.message_id, spec, 0.0)[0]),
                (6.0, hop_rounds(1, small.message_id, spec, 6.0)[0]),
            }
            assert {(h.size_mb, h.rounds) for h in link.hop_delays} == expected
            assert (0.0, 1) in expected  # 60 kB of wire bytes declared as nothing: the minimum of one round
            assert link.last_hop_rounds == hop_rounds(1, small.message_id, spec, 6.0)[0]
            assert link.bytes_sent == 60_000 + len(b"key block")

    asyncio.run(run())


def test_a_lossy_link_drops_and_counts() -> None:
    async def run() -> None:
        async with _net(2, [(0, 1)]) as net:
            link = await control.set_link(net.addresses[0], _id(1), latency_rounds=0, loss=1.0)
            assert link.loss == 1.0 and link.up
            for i in range(20):
                await _broadcast(net, 0, b"m%d" % i)
            await asyncio.sleep(3 * ROUND)
            assert net.nodes[1].got == []
            stats = await control.stats(net.addresses[0])
            assert stats.links[0].messages_dropped == 20
            assert stats.links[0].messages_sent == 0

    asyncio.run(run())


def test_fetch_crosses_two_hops_and_fails_across_a_partition() -> None:
    async def run() -> None:
        async with _net(4, LINE) as net:
            reply = await _fetch(net, 0, _id(2))
            assert reply.found and reply.answer == b"cid-of-model-7"
            await control.partition_all(net.addresses, [[_id(0)], [_id(1), _id(2), _id(3)]])
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _fetch(net, 0, _id(2))
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert (caught.value.details() or "").startswith("unreachable")
            await control.heal_all(net.addresses)
            assert (await _fetch(net, 0, _id(3))).found

    asyncio.run(run())


def test_fetch_refuses_unknown_targets_and_reports_a_dead_target_node() -> None:
    async def run() -> None:
        async with _net(3, [(0, 1), (1, 2)], dead_nodes=(2,)) as net:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _fetch(net, 0, b"\x77" * 32)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            assert (caught.value.details() or "").startswith("unknown_peer")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _fetch(net, 0, _id(2))
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert (caught.value.details() or "").startswith("node_down")

    asyncio.run(run())


def test_bad_set_link_is_invalid_argument_with_a_reason_and_changes_nothing() -> None:
    async def run() -> None:
        async with _net(2, [(0, 1)]) as net:
            cases = [  # (latency_rounds, bandwidth_mb_per_round, loss) -> reason
                ((-1.0, 0.0, 0.0), "bad_latency"),
                ((1.0, 0.0, 1.5), "bad_loss"),
                ((0.5, 0.0, 0.0), "bad_latency"),
                ((1.0, 0.0, -0.1), "bad_loss"),
                ((1.0, float("inf"), 0.0), "bad_bandwidth"),
            ]
            for (latency, bandwidth, loss), reason in cases:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await control.set_link(
                        net.addresses[0], _id(1), latency_rounds=latency, bandwidth_mb_per_round=bandwidth, loss=loss
                    )
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert (caught.value.details() or "").startswith(reason)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await control.set_link(net.addresses[0], _id(0))
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            (link,) = await control.links(net.addresses[0])
            assert (link.peer, link.latency_rounds, link.loss, link.up) == (_id(1), 1.0, 0.0, True)
            down = await control.set_link(net.addresses[0], _id(1), up=False)
            assert not down.up
            assert (await _broadcast(net, 0, b"x")).neighbours == 0

    asyncio.run(run())


def test_a_node_rejection_is_counted_and_gossip_goes_on() -> None:
    async def run() -> None:
        async with _net(3, [(0, 1), (1, 2)], rejecting=(1,)) as net:
            await _broadcast(net, 0, b"bad")
            await _until(lambda: bool(net.nodes[2].got))
            await _until(lambda: net.sidecars[1].rejections["bad_block"] == 1)
            assert (await control.stats(net.addresses[1])).delivered == 0

    asyncio.run(run())


def test_a_dead_neighbour_is_counted_not_raised() -> None:
    async def run() -> None:
        async with _net(3, [(0, 1), (0, 2)], dead_sidecars=(2,)) as net:
            assert (await _broadcast(net, 0, b"hello")).neighbours == 2
            await _until(lambda: bool(net.nodes[1].got))
            await _until(lambda: net.sidecars[0].table.link(_id(2)).counters.messages_dropped == 1)
            assert (await _broadcast(net, 0, b"again")).neighbours == 2

    asyncio.run(run())


def test_relays_from_strangers_or_with_forged_ids_are_refused() -> None:
    async def run() -> None:
        async with _net(2, [(0, 1)]) as net, insecure_channel(net.addresses[1]) as channel:
            stub = netem_pb2_grpc.NetemPeerStub(channel)
            forged = netem_pb2.Envelope(message_id=b"\x00" * 32, origin=_id(0), payload=b"p", relayed_by=_id(0))
            stranger = netem_pb2.Envelope(
                message_id=message_id(_id(0), b"p"), origin=_id(0), payload=b"p", relayed_by=b"\x55" * 32
            )
            negative = netem_pb2.Envelope(
                message_id=message_id(_id(0), b"p"), origin=_id(0), payload=b"p", relayed_by=_id(0), size_mb=-1.0
            )
            oversold = netem_pb2.Envelope(
                message_id=message_id(_id(0), b"p"), origin=_id(0), payload=b"p", relayed_by=_id(0), size_mb=1.0,
                payload_mb=1.5,
            )  # fmt: skip
            cases = (
                (forged, "bad_message_id"),
                (stranger, "not_a_neighbour"),
                (negative, "bad_size"),
                (oversold, "bad_size"),
            )
            for envelope, reason in cases:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.Relay(envelope, timeout=WAIT)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert (caught.value.details() or "").startswith(reason)
            assert net.nodes[1].got == []
            for size_mb, payload_mb in ((float("nan"), 0.0), (1.0, -0.5), (1.0, float("inf"))):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await _broadcast(net, 0, b"q", size_mb=size_mb, payload_mb=payload_mb)
                assert (caught.value.details() or "").startswith("bad_size")
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await _send(net, 0, _id(1), b"q", size_mb=size_mb, payload_mb=payload_mb)
                assert (caught.value.details() or "").startswith("bad_size")

    asyncio.run(run())


def test_partition_with_unknown_or_overlapping_nodes_is_refused() -> None:
    async def run() -> None:
        async with _net(2, [(0, 1)]) as net:
            for groups, reason in (([[b"\x66" * 32]], "unknown_node"), ([[_id(0)], [_id(0), _id(1)]], "overlapping")):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await control.partition(net.addresses[0], groups)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert (caught.value.details() or "").startswith(reason)

    asyncio.run(run())


async def _send(
    net: Net, i: int, target: bytes, payload: bytes, size_mb: float = 0.01, payload_mb: float = 0.0
) -> netem_pb2.SendReply:
    async with insecure_channel(net.addresses[i]) as channel:
        reply: netem_pb2.SendReply = await netem_pb2_grpc.NetemNodeStub(channel).Send(
            netem_pb2.SendRequest(target=target, payload=payload, size_mb=size_mb, payload_mb=payload_mb), timeout=WAIT
        )
        return reply


def test_a_send_crosses_the_route_to_its_target_only() -> None:
    async def run() -> None:
        async with _net(4, LINE) as net:
            reply = await _send(net, 0, _id(3), b"update-1")
            assert reply.routed
            # Keyed as the simulator keys a Send, so both draw the same hop times.
            assert reply.message_id == message_id(_id(0), b"send:" + _id(3) + b"update-1")
            await _until(lambda: bool(net.nodes[3].got))
            await asyncio.sleep(4 * ROUND)
            assert [len(node.got) for node in net.nodes] == [0, 0, 0, 1]
            envelope = net.nodes[3].got[0][1]
            assert (envelope.origin, envelope.target, envelope.hops) == (_id(0), _id(3), 2)
            assert (envelope.size_mb, envelope.payload_mb) == (0.01, 0.0)

    asyncio.run(run())


def test_a_resent_copy_reaches_a_node_that_was_not_listening_the_first_time() -> None:
    """A node not started yet misses a message; the same bytes sent again (a resend) are delivered, not dropped as
    a duplicate of what it never had. A copy of a delivered message is still a duplicate."""

    async def run() -> None:
        async with _net(2, [(0, 1)], starting=(1,)) as net:
            await _send(net, 0, _id(1), b"update-1")
            await _until(lambda: net.nodes[1].unavailable == 0)
            await asyncio.sleep(4 * ROUND)
            assert net.nodes[1].got == []
            await _send(net, 0, _id(1), b"update-1")
            await _until(lambda: len(net.nodes[1].got) == 1)
            await _send(net, 0, _id(1), b"update-1")
            await asyncio.sleep(4 * ROUND)
            assert len(net.nodes[1].got) == 1 and net.sidecars[1].duplicates == 1

    asyncio.run(run())


def test_a_send_across_a_partition_is_lost_and_a_send_to_self_refused() -> None:
    async def run() -> None:
        async with _net(3, LINE[:2]) as net:
            await control.partition_all(net.addresses, [[_id(0)], [_id(1), _id(2)]])
            assert not (await _send(net, 0, _id(2), b"update-2")).routed
            assert not (await _send(net, 0, b"\x09" * 32, b"to-a-stranger")).routed
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _send(net, 0, _id(0), b"to-me")
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            await asyncio.sleep(4 * ROUND)
            assert all(not node.got for node in net.nodes)

    asyncio.run(run())
