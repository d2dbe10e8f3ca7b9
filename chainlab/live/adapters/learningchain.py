"""LearningChain's live adapter: no servicers of its own; results read the observer's chain through its Peer service.

The chain is a protocol request (ChainRequest) answered by the node's on_request, as a peer would fetch it: the
driver publishes the encoded chain to storage and answers with its address, which is read back here.
"""

from __future__ import annotations

from functools import partial

import grpc

from chainlab.ledger import encoding
from chainlab.live.adapters import read_chain
from chainlab.live.driver import LiveNode
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.storage_client import StorageClient
from chainlab.protocols.learningchain.messages import Chain, ChainRequest
from chainlab.protocols.learningchain.wire import CODEC


def register(server: grpc.aio.Server, live: LiveNode) -> list[str]:
    """LearningChain adds no gRPC services: every agent answers ChainRequest through Peer.Serve."""
    return []


async def read_view(plan: NetworkPlan, observer: NodeEntry, storage: StorageClient) -> Chain:
    """The observer's main chain (genesis first), fork count and rejections, as the summary reads them in simulation."""
    return await read_chain(observer, storage, CODEC, ChainRequest(0), partial(encoding.decode, Chain))
