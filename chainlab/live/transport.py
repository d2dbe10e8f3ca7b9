"""How a live node reaches its peers and fetches content: the interfaces, and in-process versions of both."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from chainlab.ledger.hashing import sha256

Deliver = Callable[[bytes, bytes, float, float], object]  # (sender ID, wire bytes, size_mb, payload_mb)
Serve = Callable[[bytes, str, bytes], Awaitable[bytes | None]]  # (sender ID, request kind, payload) -> answer


class Transport(Protocol):
    """Gossip out, and point-to-point requests (Fetch) whose answers are content addresses."""

    def broadcast(self, sender: bytes, payload: bytes, size_mb: float, payload_mb: float) -> None:
        """Flood payload to every other node, its hops charged on the declared size_mb (payload_mb of it model or
        gradient data, which receivers count apart from control); returns at once."""

    def send(self, sender: bytes, peer: bytes, payload: bytes, size_mb: float, payload_mb: float) -> None:
        """Route payload to one peer, charged on size_mb per hop as broadcast's; returns at once (lost if
        unreachable)."""

    async def request(self, sender: bytes, peer: bytes, kind: str, payload: bytes) -> bytes | None:
        """Ask `peer`; None if it is unknown, unreachable or refuses."""


class ContentStore(Protocol):
    """Where fetched objects (model weights, datasets) travel: put returns an address, get reads it back."""

    async def put(self, data: bytes) -> str:
        """Store data; its address."""

    async def get(self, ref: str) -> bytes:
        """The data at an address; raises if it is unknown."""

    async def find(self, ref: str) -> bytes | None:
        """The data at an address; None if the address is malformed or unknown, raises if the store cannot be asked."""


class InMemoryTransport:
    """Every node reaches every other after `delay_seconds`; the netem sidecar replaces this in deployments."""

    def __init__(self, delay_seconds: float) -> None:
        self.delay_seconds = delay_seconds
        self._deliver: dict[bytes, Deliver] = {}
        self._serve: dict[bytes, Serve] = {}
        self.bytes_sent = 0

    def register(self, node_id: bytes, deliver: Deliver, serve: Serve) -> None:
        """Attach a node's inbox and its request handler."""
        self._deliver[node_id] = deliver
        self._serve[node_id] = serve

    def broadcast(self, sender: bytes, payload: bytes, size_mb: float, payload_mb: float) -> None:
        """Deliver payload to every other node after the delay, whatever size_mb (the full network's rule)."""
        loop = asyncio.get_running_loop()
        for node_id, deliver in self._deliver.items():
            if node_id != sender:
                self.bytes_sent += len(payload)
                loop.call_later(self.delay_seconds, deliver, sender, payload, size_mb, payload_mb)

    def send(self, sender: bytes, peer: bytes, payload: bytes, size_mb: float, payload_mb: float) -> None:
        """Deliver payload to peer after the delay, if it is registered."""
        deliver = self._deliver.get(peer)
        if deliver is not None and peer != sender:
            self.bytes_sent += len(payload)
            asyncio.get_running_loop().call_later(self.delay_seconds, deliver, sender, payload, size_mb, payload_mb)

    async def request(self, sender: bytes, peer: bytes, kind: str, payload: bytes) -> bytes | None:
        """Point-to-point request/response (Fetch) after the delay."""
        await asyncio.sleep(self.delay_seconds)
        serve = self._serve.get(peer)
        return None if serve is None else await serve(sender, kind, payload)


class InMemoryStore:
    """Content addressed by SHA-256, in this process; the storage service (IPFS) replaces it in deployments."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}

    async def put(self, data: bytes) -> str:
        """Store data under its hash."""
        ref = sha256(data).hex()
        self._objects[ref] = data
        return ref

    async def get(self, ref: str) -> bytes:
        """The data under ref; KeyError if unknown."""
        return self._objects[ref]

    async def find(self, ref: str) -> bytes | None:
        """The data under ref; None if unknown."""
        return self._objects.get(ref)
