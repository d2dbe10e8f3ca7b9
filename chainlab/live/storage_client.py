"""Async client of the storage service: put and get whole objects, streamed in chunks that each fit one message."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import TracebackType

import grpc

from chainlab.live.server import CHUNK_BYTES, STORAGE_MESSAGE_BYTES, insecure_channel
from chainlab.proto.v1 import storage_pb2, storage_pb2_grpc


def chunks(data: bytes, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Consecutive slices of at most `size` bytes that concatenate to `data` (none for empty data)."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


@dataclass(frozen=True)
class ObjectStat:
    """What storage knows about one object."""

    cid: str
    size: int
    pinned: bool


class StorageClient:
    """A connection to the storage service; gRPC errors (NOT_FOUND unknown_cid, ...) propagate as AioRpcError."""

    def __init__(
        self,
        address: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        timeout: float | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        if (address is None) == (channel is None):
            raise ValueError("give exactly one of address and channel")
        self._owns_channel = channel is None
        self.channel = channel if channel is not None else insecure_channel(str(address), STORAGE_MESSAGE_BYTES)
        self.stub = storage_pb2_grpc.StorageStub(self.channel)
        self.timeout = timeout
        self.chunk_bytes = chunk_bytes

    async def put(self, data: bytes, pin: bool = True) -> str:
        """Store an object; returns its CID."""

        async def requests() -> AsyncIterator[storage_pb2.PutChunk]:
            # The contract reads `pin` from the first chunk only.
            first = True
            for piece in chunks(data, self.chunk_bytes):
                yield storage_pb2.PutChunk(data=piece, pin=pin and first)
                first = False

        reply = await self.stub.Put(requests(), timeout=self.timeout)
        return str(reply.cid)

    async def get(self, cid: str) -> bytes:
        """Read a whole object."""
        parts: list[bytes] = []
        call = self.stub.Get(storage_pb2.GetRequest(cid=cid), timeout=self.timeout)
        async for chunk in call:
            parts.append(chunk.data)
        return b"".join(parts)

    async def find(self, cid: str) -> bytes | None:
        """A whole object; None if the CID is malformed or no node holds it, raises if the service cannot answer."""
        try:
            return await self.get(cid)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise

    async def pin(self, cid: str) -> bool:
        """Pin an object the service holds; returns the pinned state (True)."""
        reply = await self.stub.Pin(storage_pb2.PinRequest(cid=cid), timeout=self.timeout)
        return bool(reply.pinned)

    async def unpin(self, cid: str) -> bool:
        """Unpin an object; returns the pinned state (False)."""
        reply = await self.stub.Unpin(storage_pb2.PinRequest(cid=cid), timeout=self.timeout)
        return bool(reply.pinned)

    async def stat(self, cid: str) -> ObjectStat:
        """Size and pinned state of an object."""
        reply = await self.stub.Stat(storage_pb2.StatRequest(cid=cid), timeout=self.timeout)
        return ObjectStat(str(reply.cid), int(reply.size), bool(reply.pinned))

    async def close(self) -> None:
        """Close the channel if this client opened it."""
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> StorageClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
