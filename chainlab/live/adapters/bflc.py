"""BFLC's live adapter: no servicers of its own; results read the observer's chain through its Peer service.

The chain is a protocol request (ChainRequest) answered by the node's on_request, exactly as a peer would fetch
it: the node publishes the encoded chain to storage and answers with its address, which is read back here.
"""

from __future__ import annotations

from functools import partial

import grpc

from chainlab.ledger import encoding
from chainlab.live.adapters import read_chain
from chainlab.live.driver import LiveNode
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.storage_client import StorageClient
from chainlab.protocols.bflc.messages import Chain, ChainRequest
from chainlab.protocols.bflc.wire import CODEC


def register(server: grpc.aio.Server, live: LiveNode) -> list[str]:
    """BFLC adds no gRPC services: every participant answers ChainRequest through Peer.Serve."""
    return []


async def read_view(plan: NetworkPlan, observer: NodeEntry, storage: StorageClient) -> Chain:
    """The observer's whole chain (genesis and every round's blocks), as the summary reads it in simulation."""
    return await read_chain(observer, storage, CODEC, ChainRequest(0), partial(encoding.decode, Chain))
