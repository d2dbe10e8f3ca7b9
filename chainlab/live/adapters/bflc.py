"""BFLC's live adapter: no servicers of its own; results read the observer's chain through its Peer service.

The chain is a protocol request (ChainRequest) answered by the node's on_request, exactly as a peer would fetch
it: the node publishes the encoded chain to storage and answers with its address, which is read back here.
"""

from __future__ import annotations

import grpc

from chainlab.ledger import encoding
from chainlab.live.driver import FETCH_REQUEST, LiveNode
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.server import insecure_channel
from chainlab.live.storage_client import StorageClient
from chainlab.proto.v1 import netem_pb2, node_pb2_grpc
from chainlab.protocols.bflc.messages import Chain, ChainRequest
from chainlab.protocols.bflc.wire import CODEC

CALL_TIMEOUT_SECONDS = 30.0
READER = b"results-reader"  # the request's origin: not a node, so the answer is never a peer's data grant


def register(server: grpc.aio.Server, live: LiveNode) -> list[str]:
    """BFLC adds no gRPC services: every participant answers ChainRequest through Peer.Serve."""
    return []


async def read_view(plan: NetworkPlan, observer: NodeEntry, storage: StorageClient) -> Chain:
    """The observer's whole chain (genesis and every round's blocks), as the summary reads it in simulation."""
    request = netem_pb2.FetchRequest(
        origin=READER,
        target=bytes.fromhex(observer.node_id),
        kind=FETCH_REQUEST,
        payload=CODEC.encode_request(ChainRequest(0)),
    )
    async with insecure_channel(observer.listen) as channel:
        reply = await node_pb2_grpc.PeerStub(channel).Serve(request, timeout=CALL_TIMEOUT_SECONDS)
    if not reply.found:
        raise RuntimeError(f"{observer.name} did not serve its chain")
    data = await storage.get(bytes(reply.answer).decode("ascii"))
    chain: Chain = encoding.decode(Chain, data)
    return chain
