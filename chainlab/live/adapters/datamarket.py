"""The marketplace's live adapter: no servicers of its own; results read the observer's chain through Peer.Serve.

The chain is a protocol request (ChainRequest) answered by the node's on_request, exactly as a catching-up peer
fetches it; the node publishes the encoded chain to storage and answers with its address, which is read back here.
"""

from __future__ import annotations

import grpc

from chainlab.ledger import encoding
from chainlab.live.adapters import ask
from chainlab.live.driver import LiveNode
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.storage_client import StorageClient
from chainlab.protocols.datamarket.messages import Chain, ChainRequest
from chainlab.protocols.datamarket.wire import CODEC
from chainlab.scenarios.datamarket.summary import MarketView


def register(server: grpc.aio.Server, live: LiveNode) -> list[str]:
    """The marketplace adds no gRPC services: every full node answers ChainRequest through Peer.Serve."""
    return []


async def read_view(plan: NetworkPlan, observer: NodeEntry, storage: StorageClient) -> MarketView:
    """The observer's whole chain, as the summary reads it in simulation."""
    data = await ask(observer, storage, CODEC.encode_request(ChainRequest(0)))
    if data is None:
        raise RuntimeError(f"{observer.name} did not serve its chain")
    chain: Chain = encoding.decode(Chain, data)
    return MarketView(chain)
