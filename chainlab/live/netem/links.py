"""The sidecar's pure logic: hop delays, partitions, de-duplication, counters and Fetch routes.

No I/O and no clock: the sidecar asks this module what to do and when, then does it. A gossip hop's delay
and loss come from chainlab.network.links.hop_rounds, the function the simulator calls too.
"""

from __future__ import annotations

import collections
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from chainlab.live.netem.topology import LinkSpec, Topology, link_key
from chainlab.network.links import check_size, hop_rounds, is_cut, partition_groups

__all__ = [
    "BYTES_PER_MB",
    "DEFAULT_DEDUP_CAPACITY",
    "DedupCache",
    "LinkCounters",
    "LinkState",
    "LinkTable",
    "Route",
    "partition_groups",
]

# Sizes are in decimal megabytes, the unit of the papers' block sizes.
BYTES_PER_MB = 1_000_000
DEFAULT_DEDUP_CAPACITY = 65_536


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

    def forget(self, message_id: bytes) -> None:
        """Unsee message_id, so that a copy of it is taken as new (idempotent)."""
        self._seen.pop(message_id, None)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)


RECENT_HOPS = 512  # per link: enough for every block of a run of hundreds of heights


@dataclass
class LinkCounters:
    """What crossed one link, from this sidecar's side."""

    messages_sent: int = 0
    bytes_sent: int = 0
    messages_dropped: int = 0
    messages_received: int = 0
    duplicates_received: int = 0
    # Hop delays applied to what was sent, by (declared MB, rounds): what a run compares with the simulator.
    hop_delays: collections.Counter[tuple[float, int]] = field(default_factory=collections.Counter)
    last_hop_rounds: int = 0
    # (message ID, declared MB, rounds) of the latest messages sent: lets a run check each hop against the simulator.
    recent_hops: collections.deque[tuple[bytes, float, int]] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_HOPS)
    )


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
    latency_rounds: int
    bandwidth_mb_per_round: float

    def rounds(self, size_bytes: int) -> float:
        """Rounds to move size_bytes of real bytes along the route: its latency plus size over its bottleneck.

        Unlike a gossip hop this charges real bytes with no draw and no loss: a fetch carries a request and
        a content address, not the model (which comes from storage). A live fetch waits this twice (the
        request there, the answer back), about 2 * latency_rounds in all; the simulator instead charges a
        Fetch a flat WorkModel.fetch_rounds (default 1) whenever a path exists, and there a lossy path can
        fail it. Aligning fetches is separate work.
        """
        if size_bytes < 0:
            raise ValueError(f"size must be >= 0 bytes, got {size_bytes}")
        rounds = float(self.latency_rounds)
        if self.bandwidth_mb_per_round > 0:
            rounds += size_bytes / BYTES_PER_MB / self.bandwidth_mb_per_round
        return rounds

    def delay_seconds(self, size_bytes: int, round_seconds: float) -> float:
        """Wall-clock time to move size_bytes along the route."""
        return self.rounds(size_bytes) * round_seconds


class LinkTable:
    """This sidecar's view of the network: its own links (changeable at run time) and the rest of the topology."""

    def __init__(self, me: bytes, topology: Topology, *, seed: int = 0) -> None:
        if me not in topology.nodes:
            raise ValueError(f"node {me.hex()} is not in the topology")
        self.me = me
        self.topology = topology
        self.links: dict[bytes, LinkState] = {peer: LinkState(spec) for peer, spec in topology.neighbours(me).items()}
        self.groups: dict[bytes, int] = {}
        self.seed = seed  # the network seed: the experiment's, as the simulator's build_network gets

    def link(self, peer: bytes) -> LinkState:
        """The link to peer; KeyError if peer is not a neighbour."""
        return self.links[peer]

    def up_neighbours(self, exclude: bytes | None = None) -> list[bytes]:
        """Neighbours whose link is up, sorted by ID."""
        return sorted(peer for peer, state in self.links.items() if state.up and peer != exclude)

    def set_link(self, peer: bytes, spec: LinkSpec, enabled: bool) -> LinkState:
        """Replace the spec of the link to peer and enable or disable it; KeyError if peer is not a neighbour."""
        state = self.links[peer]
        state.spec = replace(spec)
        state.enabled = enabled
        return state

    def partition(self, groups: Iterable[Iterable[bytes]]) -> int:
        """Cut every link between different groups (replacing any earlier partition); returns own links down."""
        self.groups = partition_groups(groups)
        for peer, state in self.links.items():
            state.partitioned = is_cut(self.groups, self.me, peer)
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

    def hops(self, message_id: bytes, size_mb: float) -> dict[bytes, int | None]:
        """Rounds the message takes on each own link (None: lost there), whatever the link's state.

        The draws cover the whole topology in its draw order, with this sidecar's current settings on its
        own links, so they equal the simulator's for the same message on the same links.
        """
        specs = []
        for a, b in self.topology.edges:
            if self.me in (a, b):
                specs.append(self.links[b if a == self.me else a].spec)
            else:
                specs.append(self.topology.links[(a, b)])
        drawn = dict(zip(self.topology.edges, hop_rounds(self.seed, message_id, specs, size_mb), strict=True))
        return {peer: drawn[link_key(self.me, peer)] for peer in sorted(self.links)}

    def send_plan(
        self, message_id: bytes, size_mb: float, size_bytes: int, exclude: Iterable[bytes] = ()
    ) -> tuple[list[tuple[bytes, int]], list[bytes]]:
        """Which neighbours get a message after how many rounds, and on which links it is dropped (lost or cut).

        size_mb is the declared size, which the delay is charged on; size_bytes the real one, only counted.
        Sent and dropped messages are counted here, so the counters cannot disagree with the plan.
        """
        check_size(size_mb)
        skip = set(exclude)
        plan: list[tuple[bytes, int]] = []
        dropped: list[bytes] = []
        for peer, rounds in self.hops(message_id, size_mb).items():
            if peer in skip:
                continue
            state = self.links[peer]
            if not state.up or rounds is None:
                state.counters.messages_dropped += 1
                dropped.append(peer)
                continue
            state.counters.messages_sent += 1
            state.counters.bytes_sent += size_bytes
            state.counters.hop_delays[(size_mb, rounds)] += 1
            state.counters.last_hop_rounds = rounds
            state.counters.recent_hops.append((message_id, size_mb, rounds))
            plan.append((peer, rounds))
        return plan, dropped

    def _spec_between(self, a: bytes, b: bytes, spec: LinkSpec) -> LinkSpec | None:
        """The spec of link a-b as this sidecar sees it, or None if it is down."""
        if self.me in (a, b):
            state = self.links[b if a == self.me else a]
            return state.spec if state.up else None
        # Other sidecars' run-time changes are not visible here; the shared partition is.
        return None if is_cut(self.groups, a, b) else spec

    def route(self, target: bytes) -> Route | None:
        """Shortest path by total latency over up links (ties: fewer hops), or None if target is unreachable."""
        if target not in self.topology.nodes:
            raise KeyError(f"{target.hex()} is not a node of this topology")
        if target == self.me:
            return Route((), 0, 0.0)
        order = itertools.count()
        best: dict[bytes, tuple[int, int]] = {self.me: (0, 0)}
        previous: dict[bytes, tuple[bytes, LinkSpec]] = {}
        settled: set[bytes] = set()
        heap: list[tuple[int, int, int, bytes]] = [(0, 0, next(order), self.me)]
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
                if neighbour not in best or candidate < best[neighbour]:
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
