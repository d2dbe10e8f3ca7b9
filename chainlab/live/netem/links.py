"""The sidecar's pure logic: link delays, seeded loss, partitions, de-duplication, counters and Fetch routes.

No I/O and no clock: the sidecar asks this module what to do and when, then does it.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from chainlab.ledger.hashing import sha256
from chainlab.live.netem.topology import LinkSpec, Topology, check_link_values

# Sizes are in decimal megabytes, the unit of the papers' block sizes.
BYTES_PER_MB = 1_000_000
DEFAULT_DEDUP_CAPACITY = 65_536


def transfer_rounds(spec: LinkSpec, size_bytes: int) -> float:
    """Rounds a message of size_bytes takes on a link: latency plus size over bandwidth (0: unlimited)."""
    if size_bytes < 0:
        raise ValueError(f"size must be >= 0 bytes, got {size_bytes}")
    rounds = spec.latency_rounds
    if spec.bandwidth_mb_per_round > 0:
        rounds += size_bytes / BYTES_PER_MB / spec.bandwidth_mb_per_round
    return rounds


def delay_seconds(spec: LinkSpec, size_bytes: int, round_seconds: float) -> float:
    """Wall-clock delay of a message of size_bytes on a link."""
    return transfer_rounds(spec, size_bytes) * round_seconds


class LossDraws:
    """Seeded loss decisions; each sidecar mixes its node ID into the seed so sidecars do not drop in lockstep."""

    def __init__(self, seed: int, node: bytes = b"") -> None:
        mixed = sha256(seed.to_bytes(16, "big", signed=True), node)
        self._rng = random.Random(int.from_bytes(mixed[:8], "big"))

    def lost(self, loss: float) -> bool:
        """Whether this message is lost on a link with the given loss probability."""
        # Draw even for loss 0, so that changing one link's loss does not shift every later draw.
        return self._rng.random() < loss


class DedupCache:
    """The message IDs seen most recently, at most capacity of them (the oldest are forgotten first)."""

    def __init__(self, capacity: int = DEFAULT_DEDUP_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def add(self, message_id: bytes) -> bool:
        """Record message_id; True if it is new, False if it was seen (and still remembered)."""
        if message_id in self._seen:
            self._seen.move_to_end(message_id)
            return False
        self._seen[message_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)


@dataclass
class LinkCounters:
    """What crossed one link, from this sidecar's side."""

    messages_sent: int = 0
    bytes_sent: int = 0
    messages_dropped: int = 0
    messages_received: int = 0
    duplicates_received: int = 0


@dataclass
class LinkState:
    """One of this sidecar's links: its current spec, whether an operator set it up, whether a partition cut it."""

    spec: LinkSpec
    enabled: bool = True
    partitioned: bool = False
    counters: LinkCounters = field(default_factory=LinkCounters)

    @property
    def up(self) -> bool:
        """Whether the link carries messages now."""
        return self.enabled and not self.partitioned


@dataclass(frozen=True)
class Route:
    """A point-to-point path: the nodes after the source, total latency and bottleneck bandwidth (0: unlimited)."""

    path: tuple[bytes, ...]
    latency_rounds: float
    bandwidth_mb_per_round: float

    def delay_seconds(self, size_bytes: int, round_seconds: float) -> float:
        """Wall-clock time to move size_bytes along the route."""
        return delay_seconds(
            LinkSpec(latency_rounds=self.latency_rounds, bandwidth_mb_per_round=self.bandwidth_mb_per_round),
            size_bytes,
            round_seconds,
        )


def partition_groups(groups: Iterable[Iterable[bytes]]) -> dict[bytes, int]:
    """Each listed node's group number; a node listed in two groups is an error."""
    group: dict[bytes, int] = {}
    for index, members in enumerate(groups, start=1):
        for node in members:
            if group.get(node, index) != index:
                raise ValueError(f"node {node.hex()} is listed in more than one partition group")
            group[node] = index
    return group


def cut(group: Mapping[bytes, int], a: bytes, b: bytes) -> bool:
    """Whether a partition separates a and b: both listed, in different groups (unlisted nodes keep their links)."""
    return a in group and b in group and group[a] != group[b]


class LinkTable:
    """This sidecar's view of the network: its own links (changeable at run time) and the rest of the topology."""

    def __init__(self, me: bytes, topology: Topology, *, seed: int = 0) -> None:
        if me not in topology.nodes:
            raise ValueError(f"node {me.hex()} is not in the topology")
        self.me = me
        self.topology = topology
        self.links: dict[bytes, LinkState] = {peer: LinkState(spec) for peer, spec in topology.neighbours(me).items()}
        self.groups: dict[bytes, int] = {}
        self.loss = LossDraws(seed, me)

    def link(self, peer: bytes) -> LinkState:
        """The link to peer; KeyError if peer is not a neighbour."""
        return self.links[peer]

    def up_neighbours(self, exclude: bytes | None = None) -> list[bytes]:
        """Neighbours whose link is up, in a fixed (sorted) order so seeded loss draws are reproducible."""
        return sorted(peer for peer, state in self.links.items() if state.up and peer != exclude)

    def set_link(self, peer: bytes, spec: LinkSpec, enabled: bool) -> LinkState:
        """Replace the spec of the link to peer and enable or disable it; KeyError if peer is not a neighbour."""
        check_link_values(spec.latency_rounds, spec.bandwidth_mb_per_round, spec.loss)
        state = self.links[peer]
        state.spec = replace(spec)
        state.enabled = enabled
        return state

    def partition(self, groups: Iterable[Iterable[bytes]]) -> int:
        """Cut every link between different groups (replacing any earlier partition); returns own links down."""
        self.groups = partition_groups(groups)
        for peer, state in self.links.items():
            state.partitioned = cut(self.groups, self.me, peer)
        return self.links_down()

    def heal(self) -> int:
        """Remove the partition; links an operator disabled stay down. Returns own links still down."""
        self.groups = {}
        for state in self.links.values():
            state.partitioned = False
        return self.links_down()

    def links_down(self) -> int:
        """How many of this sidecar's links are down."""
        return sum(1 for state in self.links.values() if not state.up)

    def send_plan(
        self, size_bytes: int, round_seconds: float, exclude: Iterable[bytes] = ()
    ) -> tuple[list[tuple[bytes, float]], list[bytes]]:
        """Which neighbours get a message after how many seconds, and on which links it is dropped (lost or cut).

        Sent and dropped messages are counted here, so the counters cannot disagree with the plan.
        """
        skip = set(exclude)
        plan: list[tuple[bytes, float]] = []
        dropped: list[bytes] = []
        for peer, state in sorted(self.links.items()):
            if peer in skip:
                continue
            if not state.up or self.loss.lost(state.spec.loss):
                state.counters.messages_dropped += 1
                dropped.append(peer)
                continue
            state.counters.messages_sent += 1
            state.counters.bytes_sent += size_bytes
            plan.append((peer, delay_seconds(state.spec, size_bytes, round_seconds)))
        return plan, dropped

    def _spec_between(self, a: bytes, b: bytes, spec: LinkSpec) -> LinkSpec | None:
        """The spec of link a-b as this sidecar sees it, or None if it is down."""
        if self.me in (a, b):
            state = self.links[b if a == self.me else a]
            return state.spec if state.up else None
        # Other sidecars' run-time changes are not visible here; the shared partition is.
        return None if cut(self.groups, a, b) else spec

    def route(self, target: bytes) -> Route | None:
        """Shortest path by total latency over up links (ties: fewer hops), or None if target is unreachable."""
        if target not in self.topology.nodes:
            raise KeyError(f"{target.hex()} is not a node of this topology")
        if target == self.me:
            return Route((), 0.0, 0.0)
        order = itertools.count()
        best: dict[bytes, tuple[float, int]] = {self.me: (0.0, 0)}
        previous: dict[bytes, tuple[bytes, LinkSpec]] = {}
        settled: set[bytes] = set()
        heap: list[tuple[float, int, int, bytes]] = [(0.0, 0, next(order), self.me)]
        while heap:
            latency, hops, _, node = heapq.heappop(heap)
            if node in settled:
                continue
            settled.add(node)
            if node == target:
                break
            for neighbour, spec in sorted(self.topology.neighbours(node).items()):
                if neighbour in settled:
                    continue
                current = self._spec_between(node, neighbour, spec)
                if current is None:
                    continue
                candidate = (latency + current.latency_rounds, hops + 1)
                if candidate < best.get(neighbour, (float("inf"), 0)):
                    best[neighbour] = candidate
                    previous[neighbour] = (node, current)
                    heapq.heappush(heap, (*candidate, next(order), neighbour))
        if target not in settled:
            return None
        path: list[bytes] = []
        bandwidths: list[float] = []
        node = target
        while node != self.me:
            path.append(node)
            node, spec = previous[node]
            if spec.bandwidth_mb_per_round > 0:
                bandwidths.append(spec.bandwidth_mb_per_round)
        return Route(tuple(reversed(path)), best[target][0], min(bandwidths, default=0.0))
