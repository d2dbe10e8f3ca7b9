"""A small async client of a sidecar's NetemControl service: change links, cut and heal partitions, read stats."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chainlab.live.server import insecure_channel
from chainlab.proto.v1 import netem_pb2, netem_pb2_grpc

DEFAULT_TIMEOUT = 5.0


def _stub(channel: Any) -> Any:
    return netem_pb2_grpc.NetemControlStub(channel)


async def set_link(
    address: str,
    peer: bytes,
    *,
    latency_rounds: float = 1,  # whole rounds; the sidecar refuses a fraction (INVALID_ARGUMENT bad_latency)
    bandwidth_mb_per_round: float = 0.0,
    loss: float = 0.0,
    up: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> netem_pb2.Link:
    """Replace every setting of the sidecar's link to peer (its sending direction); returns the link as set."""
    link = netem_pb2.Link(
        peer=peer, latency_rounds=latency_rounds, bandwidth_mb_per_round=bandwidth_mb_per_round, loss=loss, up=up
    )
    async with insecure_channel(address) as channel:
        reply: netem_pb2.Link = await _stub(channel).SetLink(link, timeout=timeout)
        return reply


async def links(address: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[netem_pb2.Link]:
    """The sidecar's links as they are now."""
    async with insecure_channel(address) as channel:
        reply: netem_pb2.LinksReply = await _stub(channel).Links(netem_pb2.LinksRequest(), timeout=timeout)
        return list(reply.links)


async def partition(address: str, groups: Iterable[Iterable[bytes]], *, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Cut the links between groups of node IDs at one sidecar; returns how many of its links are down.

    Send the same groups to every sidecar (each cuts only its own links): see partition_all.
    """
    request = netem_pb2.PartitionRequest(groups=[netem_pb2.NodeGroup(nodes=list(group)) for group in groups])
    async with insecure_channel(address) as channel:
        reply: netem_pb2.PartitionReply = await _stub(channel).Partition(request, timeout=timeout)
        return int(reply.links_down)


async def heal(address: str, *, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Remove the sidecar's partition; returns how many of its links are still down (disabled by set_link)."""
    async with insecure_channel(address) as channel:
        reply: netem_pb2.PartitionReply = await _stub(channel).Heal(netem_pb2.HealRequest(), timeout=timeout)
        return int(reply.links_down)


async def stats(address: str, *, timeout: float = DEFAULT_TIMEOUT) -> netem_pb2.StatsReply:
    """The sidecar's per-link counters and totals."""
    async with insecure_channel(address) as channel:
        reply: netem_pb2.StatsReply = await _stub(channel).Stats(netem_pb2.StatsRequest(), timeout=timeout)
        return reply


async def partition_all(
    addresses: Iterable[str], groups: Iterable[Iterable[bytes]], *, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, int]:
    """Apply one partition at every sidecar; returns each one's links down."""
    frozen = [list(group) for group in groups]
    return {address: await partition(address, frozen, timeout=timeout) for address in addresses}


async def heal_all(addresses: Iterable[str], *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, int]:
    """Heal every sidecar; returns each one's links still down."""
    return {address: await heal(address, timeout=timeout) for address in addresses}
