"""An in-process transport for the live driver: wire bytes between nodes after real delays."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Deliver = Callable[[bytes, bytes], None]  # (sender ID, wire bytes)
Serve = Callable[[str, bytes], bytes | None]  # (request kind, payload) -> answer


class InMemoryTransport:
    """Every node reaches every other after `delay_seconds`; the gRPC sidecar replaces this in deployments."""

    def __init__(self, delay_seconds: float) -> None:
        self.delay_seconds = delay_seconds
        self._deliver: dict[bytes, Deliver] = {}
        self._serve: dict[bytes, Serve] = {}
        self.bytes_sent = 0

    def register(self, node_id: bytes, deliver: Deliver, serve: Serve) -> None:
        """Attach a node's inbox and its request handler."""
        self._deliver[node_id] = deliver
        self._serve[node_id] = serve

    def broadcast(self, sender: bytes, payload: bytes) -> None:
        """Deliver payload to every other node after the delay."""
        loop = asyncio.get_running_loop()
        for node_id, deliver in self._deliver.items():
            if node_id != sender:
                self.bytes_sent += len(payload)
                loop.call_later(self.delay_seconds, deliver, sender, payload)

    async def request(self, peer: bytes, kind: str, payload: bytes) -> bytes | None:
        """Point-to-point request/response (Fetch); None if the peer is unknown or refuses."""
        await asyncio.sleep(self.delay_seconds)
        serve = self._serve.get(peer)
        return None if serve is None else serve(kind, payload)
