"""Bytes on the wire by kind, one definition for both drivers: results.json's `wire_bytes`."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from chainlab.network.links import check_size

K = TypeVar("K", bound=Hashable)  # how a node is named: its index in the simulator, its hex ID live


@dataclass
class WireBytes(Generic[K]):
    """Bytes delivered over the network, one copy per receiving node: model or gradient payload, control, and
    the answers served to point-to-point requests (models, datasets' grants, blocks for catch-up) and the content
    moved to or from storage (Put, Get).

    A message is counted at its declared size (the size its hops are charged on, the same in sim and live); an
    answer or stored object at its real length. sent_by attributes each byte to the node that sent or served it.
    """

    payload: int = 0
    control: int = 0
    served: int = 0
    sent_by: dict[K, int] = field(default_factory=dict)

    def count(self, sender: K, size_mb: float, payload_mb: float, copies: int) -> None:
        """A message of size_mb (payload_mb of it payload) delivered to copies receivers; ValueError for a payload
        that is not a share of the size (check_payload)."""
        payload = round(check_payload(size_mb, payload_mb) * 1e6) * copies
        total = round(size_mb * 1e6) * copies
        self.payload += payload
        self.control += max(0, total - payload)
        self.sent_by[sender] = self.sent_by.get(sender, 0) + total

    def count_served(self, server: K, size: int) -> None:
        """An answer of size bytes to a point-to-point request, or content of size bytes to or from storage."""
        self.served += size
        self.sent_by[server] = self.sent_by.get(server, 0) + size

    def add(self, other: WireBytes[K]) -> None:
        """Add another tally's counts to this one (live: every node's own, summed at read-out)."""
        self.payload += other.payload
        self.control += other.control
        self.served += other.served
        for sender, size in other.sent_by.items():
            self.sent_by[sender] = self.sent_by.get(sender, 0) + size

    def summary(self, nodes: int) -> dict[str, float | int]:
        """results.json's `wire_bytes`: the totals by kind, the mean per node and the most one node sent."""
        total = self.payload + self.control + self.served
        return {
            "payload": self.payload,
            "control": self.control,
            "served": self.served,
            "total": total,
            "per_node_mean": total / nodes if nodes else 0.0,
            "per_node_max": max(self.sent_by.values(), default=0),
        }


def check_payload(size_mb: float, payload_mb: float) -> float:
    """A message's declared payload in MB: finite, >= 0 and at most its declared size_mb (checked too)."""
    size = check_size(size_mb)
    if not (math.isfinite(payload_mb) and 0.0 <= payload_mb <= size):
        raise ValueError(f"payload must be a finite number of MB in [0, size {size}], got {payload_mb!r}")
    return float(payload_mb)


def wire_total(tallies: Iterable[WireBytes[K]], nodes: int) -> dict[str, float | int]:
    """results.json's `wire_bytes` from each node's own tally of what reached it (the live driver's)."""
    total: WireBytes[K] = WireBytes()
    for tally in tallies:
        total.add(tally)
    return total.summary(nodes)
