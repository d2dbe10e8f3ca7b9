"""Protocol-specific gRPC servicers and result readers, loaded by name from a spec's live_adapter.

An adapter module provides:
- ``register(server, live) -> list[str]``: add its servicers for the node `live` drives; their full names;
- ``async read_view(plan, observer, storage) -> object``: the spec's summary input, read from the network.
Generic live code loads it with load() and never imports it.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

import grpc

from chainlab.live.driver import FETCH_REQUEST
from chainlab.live.server import insecure_channel
from chainlab.proto.v1 import netem_pb2, node_pb2_grpc
from chainlab.protocols.base import WireCodec

if TYPE_CHECKING:
    from chainlab.live.driver import LiveNode
    from chainlab.live.plan import NetworkPlan, NodeEntry
    from chainlab.live.storage_client import StorageClient


class LiveAdapter(Protocol):
    """The functions an adapter module defines."""

    def register(self, server: grpc.aio.Server, live: LiveNode) -> list[str]:
        """Add the protocol's servicers for this node; their full service names (for health)."""
        ...

    def read_view(self, plan: NetworkPlan, observer: NodeEntry, storage: StorageClient) -> Awaitable[object]:
        """The protocol's summary input, read over gRPC from the observer and from storage."""
        ...


T = TypeVar("T")

ASK_TIMEOUT_SECONDS = 30.0
READER = b"results-reader"  # a request's origin that is no node, so an answer is never a peer's data grant


async def ask(entry: NodeEntry, storage: StorageClient, request: bytes) -> bytes | None:
    """A protocol request (the codec's bytes) put to one node through its Peer.Serve, as a peer's fetch would be;
    the answer read back from storage, or None if the node refuses or cannot be reached."""
    target = bytes.fromhex(entry.node_id)
    fetch = netem_pb2.FetchRequest(origin=READER, target=target, kind=FETCH_REQUEST, payload=request)
    try:
        async with insecure_channel(entry.listen) as channel:
            reply = await node_pb2_grpc.PeerStub(channel).Serve(fetch, timeout=ASK_TIMEOUT_SECONDS)
        if not reply.found:
            return None
        return await storage.get(bytes(reply.answer).decode("ascii"))
    except (grpc.aio.AioRpcError, UnicodeDecodeError):
        return None


async def read_chain(
    observer: NodeEntry, storage: StorageClient, codec: WireCodec, request: object, decode: Callable[[bytes], T]
) -> T:
    """A protocol's chain as one node serves it: the request put to it with ask(), its answer decoded;
    RuntimeError if the node does not answer."""
    data = await ask(observer, storage, codec.encode_request(request))
    if data is None:
        raise RuntimeError(f"{observer.name} did not serve its chain")
    return decode(data)


def load(module: str) -> LiveAdapter:
    """Import an adapter module by dotted name."""
    return cast(LiveAdapter, importlib.import_module(module))
