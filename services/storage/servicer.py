"""The gRPC Storage servicer: decode, call the IPFS backend off the event loop, answer or refuse with a reason."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import grpc

from chainlab.live import metrics
from chainlab.live.errors import Refusal, internal, invalid, not_found, not_ready, unavailable
from chainlab.live.ipfs import (
    BackendUnavailable,
    BadCid,
    IpfsBackend,
    NotAFile,
    PinnedIndirectly,
    StorageError,
    UnknownCid,
    parse_cid,
)
from chainlab.live.server import CHUNK_BYTES
from chainlab.proto.v1 import storage_pb2, storage_pb2_grpc

log = logging.getLogger("chainlab.storage")

SERVICE_NAME = "chainlab.v1.Storage"
DEFAULT_MAX_OBJECT_BYTES = 1024**3

T = TypeVar("T")


def refusal(exc: StorageError) -> Refusal:
    """The gRPC refusal for a backend error, carrying its reason."""
    if isinstance(exc, BadCid | NotAFile):
        return invalid(exc.reason, exc.detail)
    if isinstance(exc, UnknownCid):
        return not_found(exc.reason, exc.detail)
    if isinstance(exc, PinnedIndirectly):
        return not_ready(exc.reason, exc.detail)
    if isinstance(exc, BackendUnavailable):
        return unavailable(exc.reason, exc.detail)
    return internal(exc.reason, exc.detail)


class StorageServicer(storage_pb2_grpc.StorageServicer):
    """chainlab.v1.Storage over one IPFS backend; objects are bounded by max_object_bytes, enforced as they stream,
    and chunks both ways by chunk_bytes."""

    def __init__(
        self, backend: IpfsBackend, max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES, chunk_bytes: int = CHUNK_BYTES
    ) -> None:
        self.backend = backend
        self.max_object_bytes = max_object_bytes
        self.chunk_bytes = chunk_bytes
        self._pinned: set[str] = set()

    async def _backend(self, fn: Callable[..., T], *args: object) -> T:
        # Kubo calls block (disk, cgo, HTTP); a thread keeps the event loop serving other calls meanwhile.
        try:
            return await asyncio.to_thread(fn, *args)
        except StorageError as exc:
            raise refusal(exc) from exc

    def _cid(self, text: str) -> str:
        try:
            return parse_cid(text)
        except BadCid as exc:
            raise refusal(exc) from exc

    def _set_pinned(self, cid: str, pinned: bool) -> None:
        if pinned:
            self._pinned.add(cid)
        else:
            self._pinned.discard(cid)
        metrics.STORAGE_PINNED.set(len(self._pinned))

    async def Put(
        self, request_iterator: AsyncIterator[storage_pb2.PutChunk], context: grpc.aio.ServicerContext
    ) -> storage_pb2.PutReply:
        """Collect the streamed chunks (refusing a chunk over chunk_bytes, and the object as soon as it outgrows the
        limit), then add it."""
        buffer = bytearray()
        pin: bool | None = None
        async for chunk in request_iterator:
            if pin is None:
                pin = chunk.pin
            # Its own reason: a client that ignores the chunking contract, not an object too big to store.
            if len(chunk.data) > self.chunk_bytes:
                raise invalid("chunk_too_large", f"a chunk of {len(chunk.data)} bytes > {self.chunk_bytes}")
            if len(buffer) + len(chunk.data) > self.max_object_bytes:
                raise invalid("object_too_large", f"more than {self.max_object_bytes} bytes")
            buffer += chunk.data
        if not buffer:
            raise invalid("empty_object", "an object needs at least one byte")
        cid = await self._backend(self.backend.add, bytes(buffer), bool(pin))
        if pin:
            self._set_pinned(cid, True)
        metrics.STORAGE_BYTES.labels("put").inc(len(buffer))
        metrics.STORAGE_OBJECTS.labels("put").inc()
        log.info("put", extra={"cid": cid, "size": len(buffer), "pinned": bool(pin)})
        return storage_pb2.PutReply(cid=cid, size=len(buffer))

    async def Get(
        self, request: storage_pb2.GetRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[storage_pb2.Chunk]:
        """Stream an object back in chunks of at most chunk_bytes."""
        cid = self._cid(request.cid)
        data = await self._backend(self.backend.cat, cid)
        view = memoryview(data)
        for start in range(0, len(view), self.chunk_bytes):
            yield storage_pb2.Chunk(data=bytes(view[start : start + self.chunk_bytes]))
        metrics.STORAGE_BYTES.labels("get").inc(len(data))
        metrics.STORAGE_OBJECTS.labels("get").inc()

    async def Pin(self, request: storage_pb2.PinRequest, context: grpc.aio.ServicerContext) -> storage_pb2.PinReply:
        """Pin an object this node holds."""
        cid = self._cid(request.cid)
        await self._backend(self.backend.pin, cid)
        self._set_pinned(cid, True)
        metrics.STORAGE_OBJECTS.labels("pin").inc()
        return storage_pb2.PinReply(cid=cid, pinned=True)

    async def Unpin(self, request: storage_pb2.PinRequest, context: grpc.aio.ServicerContext) -> storage_pb2.PinReply:
        """Unpin an object this node holds (it stays until the node's garbage collection)."""
        cid = self._cid(request.cid)
        await self._backend(self.backend.unpin, cid)
        self._set_pinned(cid, False)
        metrics.STORAGE_OBJECTS.labels("unpin").inc()
        return storage_pb2.PinReply(cid=cid, pinned=False)

    async def Stat(self, request: storage_pb2.StatRequest, context: grpc.aio.ServicerContext) -> storage_pb2.StatReply:
        """Size and pinned state of an object this node holds."""
        cid = self._cid(request.cid)
        size, pinned = await self._backend(self.backend.stat, cid)
        metrics.STORAGE_OBJECTS.labels("stat").inc()
        return storage_pb2.StatReply(cid=cid, size=size, pinned=pinned)


def registrar(servicer: StorageServicer) -> Callable[[grpc.aio.Server], list[str]]:
    """The `register` callback of running_server for this servicer."""

    def register(server: grpc.aio.Server) -> list[str]:
        storage_pb2_grpc.add_StorageServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    return register
