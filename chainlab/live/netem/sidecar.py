"""The netem sidecar's gRPC servicers: flooding with de-duplication, Fetch routing and run-time link control.

A gossip hop is delayed by the simulator's hop rule on the message's declared size (links.LinkTable.hops),
turned into seconds at round_seconds per round.

A sidecar never crashes on a peer: every outgoing call has a timeout, and every failure is counted and logged.

With a KernelShaper (opt-in, kernel.py) every change of the links is also enforced in the kernel: bandwidth by
htb, loss and cut links by iptables; latency stays with the user-space scheduler here. The kernel's commands run
in a worker thread, one change at a time, so that relays waiting out their delay are not held up.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Coroutine
from typing import Any

import grpc

from chainlab.ledger.hashing import short
from chainlab.live import metrics
from chainlab.live.errors import KIND_OF, Refusal, internal, invalid, not_found, unavailable
from chainlab.live.netem.kernel import KernelShaper, KernelShapingError, desired_state
from chainlab.live.netem.links import DEFAULT_DEDUP_CAPACITY, DedupCache, LinkState, LinkTable
from chainlab.live.netem.topology import LinkSpec, Topology
from chainlab.live.server import insecure_channel
from chainlab.network import links as network_links
from chainlab.network.links import whole_rounds
from chainlab.network.wire_bytes import check_payload
from chainlab.proto.v1 import netem_pb2, netem_pb2_grpc, node_pb2_grpc

log = logging.getLogger("chainlab.netem")

DEFAULT_CALL_TIMEOUT = 5.0
SERVICE_NAMES = ("chainlab.v1.NetemNode", "chainlab.v1.NetemPeer", "chainlab.v1.NetemControl")

# Refusals read "reason: detail"; gRPC's own errors ("failed to connect to all addresses; ...") are not reasons.
_REASON = re.compile(r"^[a-z][a-z0-9_]*$")


def reason_of(exc: grpc.aio.AioRpcError, default: str) -> str:
    """The reason a chainlab service named in its error details, or default when the error is gRPC's own."""
    head = (exc.details() or "").split(":", 1)[0].strip()
    return head if _REASON.match(head) else default


class Sidecar:
    """One node's sidecar: its link table, de-duplication cache, channels and in-flight relays."""

    def __init__(
        self,
        me: bytes,
        topology: Topology,
        node_address: str,
        *,
        round_seconds: float,
        seed: int = 0,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        dedup_capacity: int = DEFAULT_DEDUP_CAPACITY,
        kernel: KernelShaper | None = None,
    ) -> None:
        self.me = me
        self.topology = topology
        self.node_address = node_address
        self.round_seconds = round_seconds
        self.call_timeout = call_timeout
        self.table = LinkTable(me, topology, seed=seed)
        self.dedup = DedupCache(dedup_capacity)
        self.delivered = 0
        self.duplicates = 0
        self.rejections: collections.Counter[str] = collections.Counter()
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        for peer in self.table.links:
            self._show_link(peer)
        self.kernel = kernel
        self._kernel_lock = asyncio.Lock()
        if kernel is not None:
            kernel.apply(desired_state(self.table, round_seconds))  # a started shaper; errors are the caller's

    # --- wiring -------------------------------------------------------------------------------------

    def register(self, server: grpc.aio.Server) -> list[str]:
        """Add the three servicers to server; returns their full names (for health)."""
        netem_pb2_grpc.add_NetemNodeServicer_to_server(NodeServicer(self), server)
        netem_pb2_grpc.add_NetemPeerServicer_to_server(PeerServicer(self), server)
        netem_pb2_grpc.add_NetemControlServicer_to_server(ControlServicer(self), server)
        return list(SERVICE_NAMES)

    async def close(self) -> None:
        """Cancel relays still waiting out their delay and close every channel."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
        if self.kernel is not None:
            async with self._kernel_lock:
                await asyncio.to_thread(self.kernel.stop)

    def _channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            self._channels[address] = insecure_channel(address)
        return self._channels[address]

    def _peer(self, node: bytes) -> Any:
        return netem_pb2_grpc.NetemPeerStub(self._channel(self.topology.address(node)))

    def _node(self) -> Any:
        return node_pb2_grpc.PeerStub(self._channel(self.node_address))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        # The set keeps a strong reference: asyncio only holds weak ones to running tasks.
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _show_link(self, peer: bytes) -> None:
        metrics.NETEM_LINK_UP.labels(short(peer)).set(1 if self.table.links[peer].up else 0)

    async def enforce(self, action: str) -> None:
        """Bring the kernel's rules to the links as they are now (kernel shaping only); a failure is ours: INTERNAL."""
        if self.kernel is None:
            return
        async with self._kernel_lock:
            desired = desired_state(self.table, self.round_seconds)  # read on the loop: the table is not thread-safe
            try:
                await asyncio.to_thread(self.kernel.apply, desired)
            except KernelShapingError as exc:
                metrics.NETEM_KERNEL_FAILURES.labels(action).inc()
                log.error("kernel rules not applied", extra={"action": action, "error": str(exc)})
                raise internal("kernel_shaping_failed", str(exc)) from None

    # --- gossip -------------------------------------------------------------------------------------

    def _flood(self, envelope: netem_pb2.Envelope, exclude: tuple[bytes, ...]) -> int:
        """Schedule a relay of envelope on every up link but the excluded ones; returns how many were scheduled."""
        size = len(envelope.payload)
        plan, dropped = self.table.send_plan(envelope.message_id, envelope.size_mb, size, exclude)
        for peer in dropped:
            metrics.NETEM_MESSAGES.labels(short(peer), "dropped").inc()
        for peer, rounds in plan:
            metrics.NETEM_MESSAGES.labels(short(peer), "sent").inc()
            metrics.NETEM_BYTES.labels(short(peer)).inc(size)
            self._spawn(self._relay_later(peer, envelope, rounds * self.round_seconds))
        return len(plan)

    async def _relay_later(self, peer: bytes, envelope: netem_pb2.Envelope, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self._peer(peer).Relay(envelope, timeout=self.call_timeout)
        except grpc.aio.AioRpcError as exc:
            self._relay_failed(peer, envelope, exc.code().name)
        except Exception as exc:  # e.g. a bad address in the topology file: still the peer's failure, not ours
            self._relay_failed(peer, envelope, type(exc).__name__)

    def _relay_failed(self, peer: bytes, envelope: netem_pb2.Envelope, why: str) -> None:
        self.table.links[peer].counters.messages_dropped += 1
        metrics.NETEM_MESSAGES.labels(short(peer), "failed").inc()
        log.warning("relay failed", extra={"peer": short(peer), "message_id": short(envelope.message_id), "error": why})

    async def broadcast(self, request: netem_pb2.BroadcastRequest) -> netem_pb2.BroadcastReply:
        """Flood the own node's message to every neighbour; a payload broadcast twice goes out once."""
        _check_size(request.size_mb, request.payload_mb)
        message_id = network_links.message_id(self.me, request.payload)
        if not self.dedup.add(message_id):
            return netem_pb2.BroadcastReply(message_id=message_id, neighbours=0)
        envelope = netem_pb2.Envelope(
            message_id=message_id,
            origin=self.me,
            payload=request.payload,
            hops=0,
            relayed_by=self.me,
            size_mb=request.size_mb,
            payload_mb=request.payload_mb,
        )
        return netem_pb2.BroadcastReply(message_id=message_id, neighbours=self._flood(envelope, ()))

    async def relay(self, envelope: netem_pb2.Envelope) -> netem_pb2.RelayReply:
        """A neighbour's gossip: drop a duplicate, else forward it on the other links and deliver it to the node."""
        link = self.table.links.get(envelope.relayed_by)
        if link is None:
            raise invalid("not_a_neighbour", envelope.relayed_by.hex())
        # The ID is the de-duplication key: one that does not match its content could suppress a real message.
        if envelope.message_id != _message_id(envelope.origin, envelope.target, envelope.payload):
            raise invalid("bad_message_id")
        _check_size(envelope.size_mb, envelope.payload_mb)
        peer = short(envelope.relayed_by)
        if not self.dedup.add(envelope.message_id):
            link.counters.duplicates_received += 1
            self.duplicates += 1
            metrics.NETEM_MESSAGES.labels(peer, "duplicate").inc()
            return netem_pb2.RelayReply(duplicate=True)
        link.counters.messages_received += 1
        if envelope.target:
            await self._route(envelope)
            return netem_pb2.RelayReply(duplicate=False)
        forward = netem_pb2.Envelope(
            message_id=envelope.message_id,
            origin=envelope.origin,
            payload=envelope.payload,
            hops=envelope.hops + 1,
            relayed_by=self.me,
            size_mb=envelope.size_mb,
            payload_mb=envelope.payload_mb,
        )
        # Neither the neighbour it came from nor its origin needs it back.
        self._flood(forward, (envelope.relayed_by, envelope.origin))
        await self._deliver(envelope, peer)
        return netem_pb2.RelayReply(duplicate=False)

    async def send(self, request: netem_pb2.SendRequest) -> netem_pb2.SendReply:
        """Route the own node's message to one target, hop by hop; a message it cannot route now is lost."""
        _check_size(request.size_mb, request.payload_mb)
        if request.target == self.me:
            raise invalid("send_to_self")
        # Keyed as the simulator keys a Send, so both draw the same hop times for the same message.
        message_id = _message_id(self.me, request.target, request.payload)
        self.dedup.add(message_id)
        envelope = netem_pb2.Envelope(
            message_id=message_id,
            origin=self.me,
            payload=request.payload,
            hops=0,
            relayed_by=self.me,
            size_mb=request.size_mb,
            payload_mb=request.payload_mb,
            target=request.target,
        )
        return netem_pb2.SendReply(message_id=message_id, routed=await self._route(envelope))

    async def _route(self, envelope: netem_pb2.Envelope) -> bool:
        """Deliver an addressed envelope here, or pass it to the next hop on the shortest up route to its target."""
        target = envelope.target
        if target == self.me:
            await self._deliver(envelope, short(envelope.relayed_by))
            return True
        route = self.table.route(target) if target in self.topology.nodes else None
        if route is None or not route.path:
            metrics.NETEM_MESSAGES.labels(short(target), "unroutable").inc()
            return False
        hop = route.path[0]
        forward = netem_pb2.Envelope(
            message_id=envelope.message_id,
            origin=envelope.origin,
            payload=envelope.payload,
            hops=envelope.hops + (0 if envelope.relayed_by == self.me else 1),
            relayed_by=self.me,
            size_mb=envelope.size_mb,
            payload_mb=envelope.payload_mb,
            target=target,
        )
        others = [peer for peer in self.table.links if peer != hop]
        plan, dropped = self.table.send_plan(forward.message_id, forward.size_mb, len(forward.payload), others)
        for peer in dropped:
            metrics.NETEM_MESSAGES.labels(short(peer), "dropped").inc()
        for peer, rounds in plan:
            metrics.NETEM_MESSAGES.labels(short(peer), "sent").inc()
            metrics.NETEM_BYTES.labels(short(peer)).inc(len(forward.payload))
            self._spawn(self._relay_later(peer, forward, rounds * self.round_seconds))
        return bool(plan)

    async def _deliver(self, envelope: netem_pb2.Envelope, peer: str) -> None:
        try:
            await self._node().Deliver(envelope, timeout=self.call_timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                reason = reason_of(exc, "invalid")
                self.rejections[reason] += 1
                metrics.NETEM_NODE_REJECTIONS.labels(reason).inc()
                log.info("node rejected a message", extra={"message_id": short(envelope.message_id), "reason": reason})
            else:
                self._undelivered(envelope, peer, exc.code().name)
            return
        except Exception as exc:  # a broken node address must not take the relay down with it
            self._undelivered(envelope, peer, type(exc).__name__)
            return
        self.delivered += 1
        metrics.NETEM_MESSAGES.labels(peer, "delivered").inc()

    def _undelivered(self, envelope: netem_pb2.Envelope, peer: str, why: str) -> None:
        # The node never had it (not serving yet, or restarting): a resent copy must reach it, not be dropped as
        # a duplicate of a message it never saw.
        self.dedup.forget(envelope.message_id)
        metrics.NETEM_MESSAGES.labels(peer, "undelivered").inc()
        log.warning("delivery to the node failed", extra={"message_id": short(envelope.message_id), "error": why})

    # --- point to point -----------------------------------------------------------------------------

    async def fetch(self, request: netem_pb2.FetchRequest) -> netem_pb2.FetchReply:
        """Carry the own node's request to the target's sidecar along the shortest up route, and the answer back.

        Unlike gossip, a fetch is charged its real bytes over the route, with no draws and no loss (see
        Route.rounds for how that relates to the simulator's fetch_rounds).
        """
        target = request.target
        if target not in self.topology.nodes:
            metrics.NETEM_FETCHES.labels("unknown_peer").inc()
            raise not_found("unknown_peer", target.hex())
        if target == self.me:
            raise invalid("fetch_to_self")
        route = self.table.route(target)
        if route is None:
            metrics.NETEM_FETCHES.labels("unreachable").inc()
            raise unavailable("unreachable", target.hex())
        outgoing = netem_pb2.FetchRequest(origin=self.me, target=target, kind=request.kind, payload=request.payload)
        await asyncio.sleep(route.delay_seconds(outgoing.ByteSize(), self.round_seconds))
        try:
            reply: netem_pb2.FetchReply = await self._peer(target).Answer(outgoing, timeout=self.call_timeout)
        except grpc.aio.AioRpcError as exc:
            metrics.NETEM_FETCHES.labels("failed").inc()
            raise _passed_on(exc, "peer_down") from None
        await asyncio.sleep(route.delay_seconds(reply.ByteSize(), self.round_seconds))
        metrics.NETEM_FETCHES.labels("answered").inc()
        return reply

    async def answer(self, request: netem_pb2.FetchRequest) -> netem_pb2.FetchReply:
        """A fetch addressed to the own node, whose delay the caller has already waited: ask the node."""
        if request.target != self.me:
            raise invalid("wrong_target", request.target.hex())
        try:
            reply: netem_pb2.FetchReply = await self._node().Serve(request, timeout=self.call_timeout)
        except grpc.aio.AioRpcError as exc:
            raise _passed_on(exc, "node_down") from None
        return reply

    # --- control ------------------------------------------------------------------------------------

    def _link_message(self, peer: bytes, state: LinkState) -> netem_pb2.Link:
        return netem_pb2.Link(
            peer=peer,
            latency_rounds=state.spec.latency_rounds,
            bandwidth_mb_per_round=state.spec.bandwidth_mb_per_round,
            loss=state.spec.loss,
            up=state.up,
        )

    def set_link(self, link: netem_pb2.Link) -> netem_pb2.Link:
        """Replace this sidecar's settings of its link to link.peer (its sending direction); returns the result."""
        if link.peer not in self.table.links:
            raise not_found("unknown_link", link.peer.hex())
        try:
            spec = LinkSpec(whole_rounds(link.latency_rounds), link.bandwidth_mb_per_round, link.loss)
        except ValueError as exc:
            field = str(exc).split(" ", 1)[0]
            reason = {"latency_rounds": "bad_latency", "bandwidth_mb_per_round": "bad_bandwidth"}.get(field, "bad_loss")
            raise invalid(reason, str(exc)) from None
        state = self.table.set_link(link.peer, spec, link.up)
        self._show_link(link.peer)
        log.info("link set", extra={"peer": short(link.peer), **spec.to_mapping(), "up": state.up})
        return self._link_message(link.peer, state)

    def links(self) -> netem_pb2.LinksReply:
        """Every link of this sidecar as it is now."""
        return netem_pb2.LinksReply(
            links=[self._link_message(peer, state) for peer, state in sorted(self.table.links.items())]
        )

    def partition(self, request: netem_pb2.PartitionRequest) -> netem_pb2.PartitionReply:
        """Cut the links between the groups (replacing an earlier partition); returns this sidecar's links down."""
        groups = [list(group.nodes) for group in request.groups]
        for node in (node for group in groups for node in group):
            if node not in self.topology.nodes:
                raise invalid("unknown_node", node.hex())
        try:
            down = self.table.partition(groups)
        except ValueError as exc:
            raise invalid("overlapping_groups", str(exc)) from None
        for peer in self.table.links:
            self._show_link(peer)
        log.info("partitioned", extra={"groups": len(groups), "links_down": down})
        return netem_pb2.PartitionReply(links_down=down)

    def heal(self) -> netem_pb2.PartitionReply:
        """Remove the partition; links disabled with SetLink stay down."""
        down = self.table.heal()
        for peer in self.table.links:
            self._show_link(peer)
        log.info("healed", extra={"links_down": down})
        return netem_pb2.PartitionReply(links_down=down)

    def stats(self) -> netem_pb2.StatsReply:
        """Per-link counters, the hop delays applied per link, and the totals of deliveries and duplicates."""
        links = []
        for peer, state in sorted(self.table.links.items()):
            c = state.counters
            links.append(
                netem_pb2.LinkStats(
                    peer=peer,
                    messages_sent=c.messages_sent,
                    bytes_sent=c.bytes_sent,
                    messages_dropped=c.messages_dropped,
                    messages_received=c.messages_received,
                    duplicates_received=c.duplicates_received,
                    link=self._link_message(peer, state),
                    hop_delays=[
                        netem_pb2.HopDelay(size_mb=size_mb, rounds=rounds, messages=count)
                        for (size_mb, rounds), count in sorted(c.hop_delays.items())
                    ],
                    last_hop_rounds=c.last_hop_rounds,
                    recent_hops=[
                        netem_pb2.HopRecord(message_id=m, size_mb=size_mb, rounds=rounds)
                        for m, size_mb, rounds in c.recent_hops
                    ],
                )
            )
        return netem_pb2.StatsReply(node=self.me, links=links, delivered=self.delivered, duplicates=self.duplicates)


def _message_id(origin: bytes, target: bytes, payload: bytes) -> bytes:
    """A gossip message's ID, or an addressed Send's (keyed on its target too, as the simulator keys it)."""
    return network_links.message_id(origin, b"send:" + target + payload if target else payload)


def _check_size(size_mb: float, payload_mb: float) -> None:
    """A declared size the hop rule can charge, with a payload share of it, else INVALID_ARGUMENT bad_size."""
    try:
        check_payload(size_mb, payload_mb)
    except ValueError as exc:
        raise invalid("bad_size", str(exc)) from None


def _passed_on(exc: grpc.aio.AioRpcError, default: str) -> Refusal:
    """A far end's error as a refusal of ours: its own refusals keep their code and reason; the rest are outages."""
    code = exc.code()
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
        return Refusal(KIND_OF[code], reason_of(exc, "refused"), exc.details() or "")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return unavailable("timeout", exc.details() or "")
    return unavailable(reason_of(exc, default), exc.details() or "")


class NodeServicer(netem_pb2_grpc.NetemNodeServicer):
    """NetemNode: what the sidecar's own node calls."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    async def Broadcast(
        self, request: netem_pb2.BroadcastRequest, context: grpc.aio.ServicerContext
    ) -> netem_pb2.BroadcastReply:
        """Flood a message."""
        return await self.sidecar.broadcast(request)

    async def Send(self, request: netem_pb2.SendRequest, context: grpc.aio.ServicerContext) -> netem_pb2.SendReply:
        """Route the own node's message to its target."""
        return await self.sidecar.send(request)

    async def Fetch(self, request: netem_pb2.FetchRequest, context: grpc.aio.ServicerContext) -> netem_pb2.FetchReply:
        """Ask another node, point to point."""
        return await self.sidecar.fetch(request)


class PeerServicer(netem_pb2_grpc.NetemPeerServicer):
    """NetemPeer: what neighbouring sidecars call."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    async def Relay(self, request: netem_pb2.Envelope, context: grpc.aio.ServicerContext) -> netem_pb2.RelayReply:
        """Take a neighbour's gossip."""
        return await self.sidecar.relay(request)

    async def Answer(self, request: netem_pb2.FetchRequest, context: grpc.aio.ServicerContext) -> netem_pb2.FetchReply:
        """Answer a fetch addressed to the own node."""
        return await self.sidecar.answer(request)


class ControlServicer(netem_pb2_grpc.NetemControlServicer):
    """NetemControl: chaos at run time."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    async def SetLink(self, request: netem_pb2.Link, context: grpc.aio.ServicerContext) -> netem_pb2.Link:
        """Change one link."""
        reply = self.sidecar.set_link(request)
        await self.sidecar.enforce("set_link")
        return reply

    async def Links(self, request: netem_pb2.LinksRequest, context: grpc.aio.ServicerContext) -> netem_pb2.LinksReply:
        """List the links."""
        return self.sidecar.links()

    async def Partition(
        self, request: netem_pb2.PartitionRequest, context: grpc.aio.ServicerContext
    ) -> netem_pb2.PartitionReply:
        """Cut the network into groups."""
        reply = self.sidecar.partition(request)
        await self.sidecar.enforce("partition")
        return reply

    async def Heal(self, request: netem_pb2.HealRequest, context: grpc.aio.ServicerContext) -> netem_pb2.PartitionReply:
        """Remove the partition."""
        reply = self.sidecar.heal()
        await self.sidecar.enforce("heal")
        return reply

    async def Stats(self, request: netem_pb2.StatsRequest, context: grpc.aio.ServicerContext) -> netem_pb2.StatsReply:
        """Per-link counters."""
        return self.sidecar.stats()
