"""Protocol-specific gRPC servicers and result readers, loaded by name from a spec's live_adapter.

An adapter module provides:
- ``register(server, live) -> list[str]``: add its servicers for the node `live` drives; their full names;
- ``async read_view(plan, observer, storage) -> object``: the spec's summary input, read from the network.
Generic live code loads it with load() and never imports it.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol, cast

import grpc

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


def load(module: str) -> LiveAdapter:
    """Import an adapter module by dotted name."""
    return cast(LiveAdapter, importlib.import_module(module))
