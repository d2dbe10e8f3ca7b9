"""Network models for the simulator: the round in which a message sent now reaches each node.

The hop rule, the graphs and the config live in chainlab.network, which the live sidecars use too; this
module only adds what a discrete-event engine needs on top: flooding as shortest paths over one message's
hop times.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import networkx as nx
import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from chainlab.network.config import NetworkConfig
from chainlab.network.graphs import as_int, check_n, check_vertex, from_edges
from chainlab.network.links import (
    LinkSpec,
    check_bandwidth,
    check_loss,
    check_size,
    hop_array,
    hop_rounds,
    is_cut,
    partition_groups,
    undrawn_limit_mb,
    whole_rounds,
)

__all__ = ["FullyConnected", "NetworkModel", "TopologyNetwork", "build_network"]


@runtime_checkable
class NetworkModel(Protocol):
    """Computes when messages sent now arrive; nodes are integers 0..n-1, draws are keyed by message ID."""

    n: int

    def broadcast(self, src: int, size_mb: float, now: int, message_id: bytes) -> dict[int, int]:
        """Delivery round of a flooded message at every node it reaches (src excluded)."""
        ...

    def unicast(self, src: int, dst: int, size_mb: float, now: int, message_id: bytes) -> int | None:
        """Delivery round of a point-to-point transfer (Fetch), or None if dst is unreachable."""
        ...


def _check_id(message_id: bytes) -> bytes:
    if not isinstance(message_id, bytes | bytearray) or not message_id:
        raise ValueError(f"a message ID is non-empty bytes, got {message_id!r}")
    return bytes(message_id)


class FullyConnected:
    """Every node reaches every other node directly after a constant delay (seed 000, section II-D)."""

    def __init__(self, n: int, delay_rounds: int) -> None:
        self.n: int = check_n(n)
        delay = as_int(delay_rounds, "delay_rounds")
        # A delivery in the sending round would let a block be acted on before it could have travelled.
        if delay < 1:
            raise ValueError(f"delay_rounds must be >= 1, got {delay_rounds}")
        self.delay_rounds: int = delay

    @property
    def links(self) -> dict[tuple[int, int], LinkSpec]:
        """Every link's settings: the constant delay, with no bandwidth term and no loss."""
        spec = LinkSpec(latency_rounds=self.delay_rounds)
        return {(u, v): spec for u in range(self.n) for v in range(u + 1, self.n)}

    def hops(self, message_id: bytes, size_mb: float) -> dict[tuple[int, int], int | None]:
        """Every link's hop rounds for this message: the constant delay, whatever the size."""
        _check_id(message_id)
        check_size(size_mb)
        return {(u, v): self.delay_rounds for u in range(self.n) for v in range(u + 1, self.n)}

    def broadcast(self, src: int, size_mb: float, now: int, message_id: bytes) -> dict[int, int]:
        """Delivery round of a flooded message at every node it reaches (src excluded)."""
        src = check_vertex(src, self.n, "src")
        _check_id(message_id)
        check_size(size_mb)
        arrival = now + self.delay_rounds
        return {node: arrival for node in range(self.n) if node != src}

    def unicast(self, src: int, dst: int, size_mb: float, now: int, message_id: bytes) -> int | None:
        """Delivery round of a point-to-point transfer (Fetch), or None if dst is unreachable."""
        src = check_vertex(src, self.n, "src")
        dst = check_vertex(dst, self.n, "dst")
        # A node never transfers to itself; answering with a round would hide a driver bug.
        if src == dst:
            raise ValueError(f"unicast from node {src} to itself")
        _check_id(message_id)
        check_size(size_mb)
        return now + self.delay_rounds


@dataclass(frozen=True)
class _Compiled:
    """The links in draw order as arrays, rebuilt only when a link or the partition changes."""

    edges: tuple[tuple[int, int], ...]
    specs: tuple[LinkSpec, ...]
    latency: NDArray[np.int64]
    bandwidth: NDArray[np.float64]
    loss: NDArray[np.float64]
    blocked: NDArray[np.bool_]
    lossless: bool  # no link drops anything
    undrawn_mb: float  # sizes up to this cross every link in one round of transfer (links.undrawn_limit_mb)
    # Both directions of every link as one sparse matrix whose structure never changes; entry_edge[k] is the link
    # behind its k-th stored weight. Building a matrix per message cost more than the shortest paths themselves.
    adjacency: csr_matrix
    entry_edge: NDArray[np.int64]
    # Without loss a message no larger than undrawn_mb (a fetch's request, a release; not a 2 MB block) takes the same
    # hops every time (its latency and one round): the distances from a source are worked out once, not once per
    # message.
    static: dict[int, NDArray[np.float64]] = field(default_factory=dict)


class TopologyNetwork:
    """A mesh whose links have a bandwidth, a fixed delay and a loss rate; messages flood hop by hop.

    The edge list is fixed at construction (sorted by vertex), because a link's draws are keyed by its
    index in it; chaos changes a link's settings, switches it off or partitions the network instead.
    """

    def __init__(self, graph: nx.Graph, *, bandwidth_mb: float = 0.5, loss: float = 0.0, seed: int = 0) -> None:
        default_bandwidth = check_bandwidth(bandwidth_mb, "bandwidth_mb")
        default_loss = check_loss(loss)
        n = int(graph.number_of_nodes())
        if n == 0 or set(graph.nodes) != set(range(n)):
            raise ValueError(f"graph nodes must be exactly 0..n-1, got {sorted(graph.nodes)[:10]!r}...")
        self.n: int = n
        self.seed: int = as_int(seed, "seed")
        self._links: dict[tuple[int, int], LinkSpec] = {}
        self._up: dict[tuple[int, int], bool] = {}
        for u, v, data in graph.edges(data=True):
            # Other attributes (networkx "weight", plotting positions) are not ours to interpret.
            key = self._key(int(u), int(v))
            self._links[key] = LinkSpec(
                latency_rounds=whole_rounds(data.get("delay", 0), "delay"),
                bandwidth_mb_per_round=check_bandwidth(data.get("bandwidth", default_bandwidth), "bandwidth"),
                loss=check_loss(data.get("loss", default_loss)),
            )
            self._up[key] = True
        self._order = tuple(sorted(self._links))
        self._group: dict[int, int] = {}
        self._compiled_cache: _Compiled | None = None

    # --- topology -----------------------------------------------------------------------------------

    def _key(self, u: int, v: int) -> tuple[int, int]:
        u = check_vertex(u, self.n)
        v = check_vertex(v, self.n)
        if u == v:
            raise ValueError(f"a link needs two distinct nodes, got {u}-{v}")
        return (u, v) if u < v else (v, u)

    def _existing(self, u: int, v: int) -> tuple[int, int]:
        key = self._key(u, v)
        if key not in self._links:
            raise ValueError(f"no link {key[0]}-{key[1]}")
        return key

    def has_link(self, u: int, v: int) -> bool:
        """Whether u and v are directly linked (regardless of its state or any partition)."""
        return self._key(u, v) in self._links

    def set_link(
        self,
        u: int,
        v: int,
        *,
        bandwidth: float | None = None,
        delay: int | None = None,
        loss: float | None = None,
        up: bool | None = None,
    ) -> None:
        """Change an existing link's bandwidth, fixed delay, loss rate or state (netem's SetLink); None keeps it."""
        key = self._existing(u, v)
        link = self._links[key]
        # LinkSpec validates everything before anything changes, so a bad call leaves the link intact.
        self._links[key] = LinkSpec(
            latency_rounds=link.latency_rounds if delay is None else whole_rounds(delay, "delay"),
            bandwidth_mb_per_round=link.bandwidth_mb_per_round if bandwidth is None else bandwidth,
            loss=link.loss if loss is None else loss,
        )
        if up is not None:
            self._up[key] = bool(up)
        self._compiled_cache = None

    def cut(self, groups: Sequence[Collection[int]]) -> None:
        """Partition the network: no message crosses between the listed groups; unlisted nodes keep their links.

        A new cut replaces the previous one rather than refining it (netem's Partition, the same rule).
        """
        self._group = partition_groups([check_vertex(node, self.n) for node in members] for members in groups)
        self._compiled_cache = None

    def heal(self) -> None:
        """Remove the partition; links switched off with set_link stay off."""
        self._group = {}
        self._compiled_cache = None

    @property
    def graph(self) -> nx.Graph:
        """A copy of the current topology with bandwidth, delay and loss on every edge."""
        graph = nx.Graph()
        graph.add_nodes_from(range(self.n))
        for (u, v), link in sorted(self._links.items()):
            graph.add_edge(u, v, bandwidth=link.bandwidth_mb_per_round, delay=link.latency_rounds, loss=link.loss)
        return graph

    @property
    def links(self) -> dict[tuple[int, int], LinkSpec]:
        """Every link's settings, in draw order (sorted by vertex)."""
        return {key: self._links[key] for key in self._order}

    # --- delivery -----------------------------------------------------------------------------------

    def _compiled(self) -> _Compiled:
        if self._compiled_cache is None:
            order = self._order
            specs = tuple(self._links[e] for e in order)
            bandwidth = np.array([spec.bandwidth_mb_per_round for spec in specs], dtype=np.float64)
            adjacency, entry_edge = _adjacency(self.n, order)
            self._compiled_cache = _Compiled(
                edges=order,
                specs=specs,
                latency=np.array([spec.latency_rounds for spec in specs], dtype=np.int64),
                bandwidth=bandwidth,
                loss=np.array([spec.loss for spec in specs], dtype=np.float64),
                blocked=np.array([not self._up[e] or is_cut(self._group, *e) for e in order], dtype=np.bool_),
                lossless=not any(spec.loss for spec in specs),
                undrawn_mb=undrawn_limit_mb(bandwidth),
                adjacency=adjacency,
                entry_edge=entry_edge,
            )
        return self._compiled_cache

    def hops(self, message_id: bytes, size_mb: float) -> dict[tuple[int, int], int | None]:
        """Every link's hop rounds for this message (None: lost); what a sidecar applies on the same link."""
        c = self._compiled()
        return dict(zip(c.edges, hop_rounds(self.seed, _check_id(message_id), c.specs, size_mb), strict=True))

    def _distances(self, src: int, message_id: bytes, size_mb: float) -> NDArray[np.float64]:
        """Rounds from src to every node (inf: unreachable) over this message's hop times on the usable links.

        Flooding to every neighbour that lacks the message reaches each node first along the fastest path, which is
        exactly the shortest-path distance over the message's link times: one Dijkstra over the links (scipy's, in
        C) per message, work proportional to the links rather than to nodes x messages."""
        _check_id(message_id)
        c = self._compiled()
        size = check_size(size_mb)
        static = c.lossless and size <= c.undrawn_mb
        if static and src in c.static:
            return c.static[src]
        hops = hop_array(self.seed, message_id, c.latency, c.bandwidth, c.loss, size)
        weights = hops.astype(np.float64)
        weights[(hops < 1) | c.blocked] = np.inf  # lost or switched off: no path crosses it
        # The one matrix takes this message's weights in place (the engine floods one message at a time).
        c.adjacency.data = weights[c.entry_edge]
        distances: NDArray[np.float64] = dijkstra(c.adjacency, directed=True, indices=src)
        if static:
            c.static[src] = distances
        return distances

    def broadcast(self, src: int, size_mb: float, now: int, message_id: bytes) -> dict[int, int]:
        """Delivery round of a flooded message at every node it reaches (src excluded)."""
        src = check_vertex(src, self.n, "src")
        distances = self._distances(src, message_id, size_mb)
        reached = np.flatnonzero(np.isfinite(distances)).tolist()
        return {node: now + int(distances[node]) for node in reached if node != src}

    def unicast(self, src: int, dst: int, size_mb: float, now: int, message_id: bytes) -> int | None:
        """Delivery round of a point-to-point transfer (Fetch), or None if dst is unreachable."""
        src = check_vertex(src, self.n, "src")
        dst = check_vertex(dst, self.n, "dst")
        if src == dst:
            raise ValueError(f"unicast from node {src} to itself")
        distance = float(self._distances(src, message_id, size_mb)[dst])
        # math's test, not numpy's: a ufunc call on one scalar costs a microsecond, and a run makes a fetch per model
        # and node.
        return now + int(distance) if math.isfinite(distance) else None


def _adjacency(n: int, edges: Sequence[tuple[int, int]]) -> tuple[csr_matrix, NDArray[np.int64]]:
    """_Compiled's adjacency (both directions of each edge, rows in node order) and entry_edge."""
    ends = np.array(edges, dtype=np.int64).reshape(-1, 2)
    index = np.arange(len(ends), dtype=np.int64)
    rows, cols = np.concatenate([ends[:, 0], ends[:, 1]]), np.concatenate([ends[:, 1], ends[:, 0]])
    order = np.lexsort((cols, rows))
    indptr = np.searchsorted(rows[order], np.arange(n + 1))
    adjacency = csr_matrix((np.ones(len(order)), cols[order], indptr), shape=(n, n))
    return adjacency, np.concatenate([index, index])[order]


def build_network(config: NetworkConfig, n: int, seed: int) -> FullyConnected | TopologyNetwork:
    """The network model that config describes over nodes 0..n-1; seed is the experiment's (network) seed.

    The sidecars get the same graph and link settings from chainlab.live.netem.topology.topology_for.
    """
    n = check_n(n)
    if config.kind == "full":
        return FullyConnected(n, config.delay_rounds)
    spec = config.link_spec()
    graph = from_edges(n, config.graph_edges(n, seed))
    for u, v in graph.edges:
        graph.edges[u, v].update(delay=spec.latency_rounds, bandwidth=spec.bandwidth_mb_per_round, loss=spec.loss)
    return TopologyNetwork(graph, seed=seed)
