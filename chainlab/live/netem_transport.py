"""The node side of the netem sidecar: a Transport whose gossip and fetches go through the node's own sidecar."""

from __future__ import annotations

import asyncio
import logging

import grpc

from chainlab.live import metrics
from chainlab.live.server import insecure_channel
from chainlab.proto.v1 import netem_pb2, netem_pb2_grpc

log = logging.getLogger("chainlab.transport")

CALL_TIMEOUT_SECONDS = 30.0


class SidecarTransport:
    """Broadcast and Fetch through the sidecar at `address`; failures are logged and counted, never raised."""

    def __init__(self, address: str, timeout_seconds: float = CALL_TIMEOUT_SECONDS) -> None:
        self.address = address
        self.timeout = timeout_seconds
        self._channel = insecure_channel(address)
        self._stub = netem_pb2_grpc.NetemNodeStub(self._channel)
        self._pending: set[asyncio.Task[None]] = set()

    def broadcast(self, sender: bytes, payload: bytes, size_mb: float, payload_mb: float) -> None:
        """Hand payload to the sidecar, which floods it charging the declared size_mb per hop; returns at once."""
        task = asyncio.get_running_loop().create_task(self._broadcast(payload, size_mb, payload_mb))
        self._pending.add(task)  # keep a reference until done, or the task may be collected mid-flight
        task.add_done_callback(self._pending.discard)

    async def _broadcast(self, payload: bytes, size_mb: float, payload_mb: float) -> None:
        request = netem_pb2.BroadcastRequest(payload=payload, size_mb=size_mb, payload_mb=payload_mb)
        try:
            await self._stub.Broadcast(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            metrics.GOSSIP_MESSAGES.labels("failed").inc()
            log.warning("broadcast failed", extra={"code": exc.code().name, "details": exc.details()})
            return
        metrics.GOSSIP_MESSAGES.labels("out").inc()
        metrics.GOSSIP_BYTES.labels("out").inc(len(payload))

    def send(self, sender: bytes, peer: bytes, payload: bytes, size_mb: float, payload_mb: float) -> None:
        """Hand a point-to-point message to the sidecar, which routes it to peer; returns at once."""
        task = asyncio.get_running_loop().create_task(self._send(peer, payload, size_mb, payload_mb))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, peer: bytes, payload: bytes, size_mb: float, payload_mb: float) -> None:
        request = netem_pb2.SendRequest(target=peer, payload=payload, size_mb=size_mb, payload_mb=payload_mb)
        try:
            reply = await self._stub.Send(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            metrics.GOSSIP_MESSAGES.labels("failed").inc()
            log.warning("send failed", extra={"peer": peer.hex()[:16], "code": exc.code().name})
            return
        metrics.GOSSIP_MESSAGES.labels("out" if reply.routed else "unroutable").inc()
        metrics.GOSSIP_BYTES.labels("out").inc(len(payload))

    async def request(self, sender: bytes, peer: bytes, kind: str, payload: bytes) -> bytes | None:
        """Fetch through the sidecar; None when the peer refuses or cannot be reached."""
        request = netem_pb2.FetchRequest(origin=sender, target=peer, kind=kind, payload=payload)
        try:
            reply = await self._stub.Fetch(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            log.info("fetch failed", extra={"peer": peer.hex()[:16], "fetch": kind, "code": exc.code().name})
            return None
        return bytes(reply.answer) if reply.found else None

    async def close(self) -> None:
        """Finish outstanding broadcasts (briefly) and close the channel."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=2.0)
        await self._channel.close()
