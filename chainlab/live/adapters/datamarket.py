"""The marketplace's live adapter: no servicers of its own; results read the observer's chain through Peer.Serve.

The chain is a protocol request (ChainRequest) answered by the node's on_request, exactly as a catching-up peer
fetches it; the node publishes the encoded chain to storage and answers with its address, which is read back here.
"""

from __future__ import annotations

from functools import partial

import grpc

from chainlab.ledger import encoding
from chainlab.live.adapters import read_chain
from chainlab.live.driver import LiveNode
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.storage_client import StorageClient
from chainlab.protocols.datamarket.contract import addresses
from chainlab.protocols.datamarket.messages import Chain, ChainRequest
from chainlab.protocols.datamarket.wire import CODEC
from chainlab.scenarios.datamarket.summary import MarketView


def register(server: grpc.aio.Server, live: LiveNode) -> list[str]:
    """The marketplace adds no gRPC services: every full node answers ChainRequest through Peer.Serve."""
    return []


async def read_view(plan: NetworkPlan, observer: NodeEntry, storage: StorageClient) -> MarketView:
    """The observer's whole chain, as the summary reads it in simulation."""
    chain: Chain = await read_chain(observer, storage, CODEC, ChainRequest(0), partial(encoding.decode, Chain))
    # The content its transactions name (sample files, models, the test set), read back from the storage service.
    named = addresses(tx for block in chain.blocks for tx in block.txs)
    return MarketView(chain, {a: await storage.find(a.decode("ascii")) for a in named})
