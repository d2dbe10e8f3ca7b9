"""Network models for the simulator: the round in which a message sent now reaches each node."""

from __future__ import annotations

import heapq
import math
import numbers
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import networkx as nx
import numpy as np
import numpy.typing as npt

from chainlab.topology import _as_int, _check_n, erdos_renyi

__all__ = [
    "BANDWIDTH_FLOOR_RATIO",
    "BANDWIDTH_SIGMA_RATIO",
    "NETWORK_KINDS",
    "FullyConnected",
    "NetworkConfig",
    "NetworkModel",
    "TopologyNetwork",
    "attach",
    "build_network",
    "complete",
    "erdos_renyi",
    "from_edges",
]

# Seed 000 / DESIGN section 5: b ~ N(bandwidth, (0.2 * bandwidth)^2), clipped so that a bad draw
# cannot produce a zero or negative bandwidth (an infinite or negative transfer time).
BANDWIDTH_SIGMA_RATIO = 0.2
BANDWIDTH_FLOOR_RATIO = 0.1

NETWORK_KINDS = ("full", "topology", "erdos_renyi")

_LINK_ATTRS = frozenset({"bandwidth", "delay", "loss"})


@runtime_checkable
class NetworkModel(Protocol):
    """Computes when messages sent now arrive; nodes are integers 0..n-1."""

    n: int

    def broadcast(self, src: int, size_mb: float, now: int, rng: np.random.Generator) -> dict[int, int]:
        """Delivery round of a flooded message at every node it reaches (src excluded)."""
        ...

    def unicast(self, src: int, dst: int, size_mb: float, now: int, rng: np.random.Generator) -> int | None:
        """Delivery round of a point-to-point transfer (Fetch), or None if dst is unreachable."""
        ...


def _check_node(node: int, n: int, what: str = "node") -> int:
    index = _as_int(node, what)
    if not 0 <= index < n:
        raise ValueError(f"{what} {node!r} is not a node of this network (0..{n - 1})")
    return index


def _check_size(size_mb: float) -> float:
    size = float(size_mb)
    if not (math.isfinite(size) and size >= 0.0):
        raise ValueError(f"message size must be a finite number of MB >= 0, got {size_mb!r}")
    return size


def _check_bandwidth(bandwidth: float) -> float:
    value = float(bandwidth)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"bandwidth must be a finite number of MB per round > 0, got {bandwidth!r}")
    return value


def _check_delay(delay: float) -> int:
    # Rounds are integers; a fractional delay would silently be truncated somewhere downstream.
    if (
        isinstance(delay, bool)
        or not isinstance(delay, numbers.Real)
        or not math.isfinite(delay)
        or delay != int(delay)
        or delay < 0
    ):
        raise ValueError(f"delay must be a whole number of rounds >= 0, got {delay!r}")
    return int(delay)


def _check_loss(loss: float) -> float:
    value = float(loss)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"loss must be a probability in [0, 1], got {loss!r}")
    return value


class FullyConnected:
    """Every node reaches every other node directly after a constant delay (seed 000, section II-D)."""

    def __init__(self, n: int, delay_rounds: int) -> None:
        self.n: int = _check_n(n)
        delay = _as_int(delay_rounds, "delay_rounds")
        # A delivery in the sending round would let a block be acted on before it could have travelled.
        if delay < 1:
            raise ValueError(f"delay_rounds must be >= 1, got {delay_rounds}")
        self.delay_rounds: int = delay

    def broadcast(self, src: int, size_mb: float, now: int, rng: np.random.Generator) -> dict[int, int]:
        """Delivery round of a flooded message at every node it reaches (src excluded)."""
        src = _check_node(src, self.n, "src")
        _check_size(size_mb)
        arrival = now + self.delay_rounds
        return {node: arrival for node in range(self.n) if node != src}

    def unicast(self, src: int, dst: int, size_mb: float, now: int, rng: np.random.Generator) -> int | None:
        """Delivery round of a point-to-point transfer (Fetch), or None if dst is unreachable."""
        src = _check_node(src, self.n, "src")
        dst = _check_node(dst, self.n, "dst")
        # A node never transfers to itself; answering with a round would hide a driver bug.
        if src == dst:
            raise ValueError(f"unicast from node {src} to itself")
        _check_size(size_mb)
        return now + self.delay_rounds


@dataclass
class _Link:
    bandwidth: float
    delay: int
    loss: float


@dataclass(frozen=True)
class _Compiled:
    """Array form of the links, rebuilt only when the topology or partition changes."""

    edges: tuple[tuple[int, int], ...]
    bandwidth: npt.NDArray[np.float64]
    delay: npt.NDArray[np.int64]
    loss: npt.NDArray[np.float64]
    blocked: npt.NDArray[np.bool_]
    adjacency: tuple[tuple[tuple[int, int], ...], ...]


class TopologyNetwork:
    """A mesh whose links have a bandwidth, a fixed delay and a loss rate; messages flood hop by hop."""

    def __init__(self, graph: nx.Graph, *, bandwidth_mb: float = 0.5, loss: float = 0.0) -> None:
        self._default_bandwidth = _check_bandwidth(bandwidth_mb)
        self._default_loss = _check_loss(loss)
        n = int(graph.number_of_nodes())
        if n == 0 or set(graph.nodes) != set(range(n)):
            raise ValueError(f"graph nodes must be exactly 0..n-1, got {sorted(graph.nodes)[:10]!r}...")
        self.n: int = n
        self._links: dict[tuple[int, int], _Link] = {}
        for u, v, data in graph.edges(data=True):
            # Other attributes (networkx "weight", plotting positions) are not ours to interpret.
            self._put_link(int(u), int(v), {k: data[k] for k in _LINK_ATTRS if k in data})
        self._group = [0] * n
        self._compiled_cache: _Compiled | None = None

    # --- topology -----------------------------------------------------------------------------------

    def _key(self, u: int, v: int) -> tuple[int, int]:
        u = _check_node(u, self.n)
        v = _check_node(v, self.n)
        if u == v:
            raise ValueError(f"a link needs two distinct nodes, got {u}-{v}")
        return (u, v) if u < v else (v, u)

    def _put_link(self, u: int, v: int, attrs: Mapping[str, Any]) -> None:
        unknown = sorted(set(attrs) - _LINK_ATTRS)
        if unknown:
            raise ValueError(f"unknown link attribute(s) {unknown}; known: {sorted(_LINK_ATTRS)}")
        self._links[self._key(u, v)] = _Link(
            bandwidth=_check_bandwidth(attrs.get("bandwidth", self._default_bandwidth)),
            delay=_check_delay(attrs.get("delay", 0)),
            loss=_check_loss(attrs.get("loss", self._default_loss)),
        )
        self._compiled_cache = None

    def _existing(self, u: int, v: int) -> tuple[int, int]:
        key = self._key(u, v)
        if key not in self._links:
            raise ValueError(f"no link {key[0]}-{key[1]}")
        return key

    def has_link(self, u: int, v: int) -> bool:
        """Whether u and v are directly linked (regardless of any partition)."""
        return self._key(u, v) in self._links

    def set_link(
        self,
        u: int,
        v: int,
        *,
        bandwidth: float | None = None,
        delay: int | None = None,
        loss: float | None = None,
    ) -> None:
        """Change an existing link's bandwidth, fixed delay or loss rate; None leaves it as it is."""
        link = self._links[self._existing(u, v)]
        # Validate everything before changing anything, so a bad call leaves the link intact.
        new_bandwidth = link.bandwidth if bandwidth is None else _check_bandwidth(bandwidth)
        new_delay = link.delay if delay is None else _check_delay(delay)
        new_loss = link.loss if loss is None else _check_loss(loss)
        link.bandwidth, link.delay, link.loss = new_bandwidth, new_delay, new_loss
        self._compiled_cache = None

    def remove_link(self, u: int, v: int) -> None:
        """Take a link out of the topology."""
        del self._links[self._existing(u, v)]
        self._compiled_cache = None

    def add_link(self, u: int, v: int, **attrs: float) -> None:
        """Add a link; attrs may be bandwidth, delay and loss, defaulting as in the constructor."""
        if self._key(u, v) in self._links:
            raise ValueError(f"link {u}-{v} exists already; use set_link to change it")
        self._put_link(u, v, attrs)

    def cut(self, groups: Sequence[Collection[int]]) -> None:
        """Partition the network: no message crosses between the listed groups and the unlisted rest.

        A new cut replaces the previous one rather than refining it.
        """
        group = [0] * self.n
        for index, members in enumerate(groups, start=1):
            for node in members:
                node = _check_node(node, self.n)
                if group[node] not in (0, index):
                    raise ValueError(f"node {node} is listed in more than one partition group")
                group[node] = index
        self._group = group
        self._compiled_cache = None

    def heal(self) -> None:
        """Remove the partition; links removed with remove_link stay removed."""
        self._group = [0] * self.n
        self._compiled_cache = None

    @property
    def graph(self) -> nx.Graph:
        """A copy of the current topology with bandwidth, delay and loss on every edge."""
        graph = nx.Graph()
        graph.add_nodes_from(range(self.n))
        for (u, v), link in sorted(self._links.items()):
            graph.add_edge(u, v, bandwidth=link.bandwidth, delay=link.delay, loss=link.loss)
        return graph

    # --- delivery -----------------------------------------------------------------------------------

    def _compiled(self) -> _Compiled:
        if self._compiled_cache is None:
            # Sorted edges fix the order in which random numbers are drawn, hence determinism.
            edges = tuple(sorted(self._links))
            links = [self._links[e] for e in edges]
            adjacency: list[list[tuple[int, int]]] = [[] for _ in range(self.n)]
            for index, (u, v) in enumerate(edges):
                adjacency[u].append((v, index))
                adjacency[v].append((u, index))
            self._compiled_cache = _Compiled(
                edges=edges,
                bandwidth=np.array([link.bandwidth for link in links], dtype=np.float64),
                delay=np.array([link.delay for link in links], dtype=np.int64),
                loss=np.array([link.loss for link in links], dtype=np.float64),
                blocked=np.array([self._group[u] != self._group[v] for u, v in edges], dtype=np.bool_),
                adjacency=tuple(tuple(sorted(a)) for a in adjacency),
            )
        return self._compiled_cache

    def _sample_hops(self, size_mb: float, rng: np.random.Generator) -> list[int]:
        """Rounds to cross each link for this message, or -1 where the link does not carry it."""
        c = self._compiled()
        m = len(c.edges)
        # Every link gets both draws even if cut or loss-free, so that changing one link's state
        # does not shift the random numbers every other link sees.
        bandwidth = rng.normal(c.bandwidth, BANDWIDTH_SIGMA_RATIO * c.bandwidth, size=m)
        bandwidth = np.maximum(bandwidth, BANDWIDTH_FLOOR_RATIO * c.bandwidth)
        lost = rng.random(size=m) < c.loss
        transfer = np.maximum(1, np.ceil(size_mb / bandwidth)).astype(np.int64)
        hops = np.where(lost | c.blocked, -1, transfer + c.delay)
        return [int(h) for h in hops]

    def _shortest(self, src: int, hops: list[int], target: int | None = None) -> dict[int, int]:
        """Dijkstra from src over the sampled hop times; the settled nodes and their distances."""
        adjacency = self._compiled().adjacency
        best = {src: 0}
        settled: dict[int, int] = {}
        heap = [(0, src)]
        while heap:
            dist, node = heapq.heappop(heap)
            if node in settled:
                continue
            settled[node] = dist
            if node == target:
                break
            for neighbour, edge in adjacency[node]:
                hop = hops[edge]
                if hop < 0 or neighbour in settled:
                    continue
                candidate = dist + hop
                if candidate < best.get(neighbour, candidate + 1):
                    best[neighbour] = candidate
                    heapq.heappush(heap, (candidate, neighbour))
        return settled

    def broadcast(self, src: int, size_mb: float, now: int, rng: np.random.Generator) -> dict[int, int]:
        """Delivery round of a flooded message at every node it reaches (src excluded)."""
        src = _check_node(src, self.n, "src")
        size = _check_size(size_mb)
        # Flooding to every neighbour that lacks the message reaches each node first along the
        # fastest path, which is exactly the shortest-path distance over this message's link times.
        settled = self._shortest(src, self._sample_hops(size, rng))
        return {node: now + settled[node] for node in sorted(settled) if node != src}

    def unicast(self, src: int, dst: int, size_mb: float, now: int, rng: np.random.Generator) -> int | None:
        """Delivery round of a point-to-point transfer (Fetch), or None if dst is unreachable."""
        src = _check_node(src, self.n, "src")
        dst = _check_node(dst, self.n, "dst")
        if src == dst:
            raise ValueError(f"unicast from node {src} to itself")
        size = _check_size(size_mb)
        settled = self._shortest(src, self._sample_hops(size, rng), target=dst)
        return now + settled[dst] if dst in settled else None


# --- graph builders -----------------------------------------------------------------------------------


def complete(n: int) -> nx.Graph:
    """The complete graph on nodes 0..n-1."""
    return nx.complete_graph(_check_n(n))


def from_edges(n: int, edges: Sequence[tuple[int, int] | tuple[int, int, float]]) -> nx.Graph:
    """A graph on nodes 0..n-1 with the given links; an optional third item is the bandwidth in MB/round."""
    n = _check_n(n)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for edge in edges:
        if len(edge) not in (2, 3):
            raise ValueError(f"an edge is (u, v) or (u, v, bandwidth), got {edge!r}")
        u, v = _check_node(edge[0], n), _check_node(edge[1], n)
        if u == v:
            raise ValueError(f"self-loop {u}-{v} is not a link")
        if len(edge) == 3:
            graph.add_edge(u, v, bandwidth=_check_bandwidth(edge[2]))
        else:
            graph.add_edge(u, v)
    return graph


def attach(graph: nx.Graph, node: int, neighbours: Iterable[int], **attrs: float) -> nx.Graph:
    """A copy of graph with node added and linked to neighbours; attrs go on each new link."""
    if node in graph:
        raise ValueError(f"node {node} is already in the graph")
    unknown = sorted(set(attrs) - _LINK_ATTRS)
    if unknown:
        raise ValueError(f"unknown link attribute(s) {unknown}; known: {sorted(_LINK_ATTRS)}")
    result = graph.copy()
    result.add_node(node)
    for neighbour in neighbours:
        if neighbour not in graph:
            raise ValueError(f"neighbour {neighbour} is not in the graph")
        result.add_edge(node, neighbour, **attrs)
    return result


# --- configuration ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkConfig:
    """How an experiment's network is built; see build_network."""

    kind: str = "full"
    delay_rounds: int = 1
    bandwidth_mb: float = 0.5
    avg_degree: float = 3.0
    edges: tuple[tuple[int, int], ...] = ()
    hop_delay_rounds: int = 0
    loss: float = 0.0
    topology_seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in NETWORK_KINDS:
            raise ValueError(f"network kind must be one of {NETWORK_KINDS}, got {self.kind!r}")
        if isinstance(self.delay_rounds, bool) or not isinstance(self.delay_rounds, int):
            raise ValueError(f"delay_rounds must be an integer, got {self.delay_rounds!r}")
        if self.delay_rounds < 1:
            raise ValueError(f"delay_rounds must be >= 1, got {self.delay_rounds}")
        _check_delay(self.hop_delay_rounds)
        _check_bandwidth(self.bandwidth_mb)
        _check_loss(self.loss)
        if not (math.isfinite(self.avg_degree) and self.avg_degree > 0):
            raise ValueError(f"avg_degree must be > 0, got {self.avg_degree!r}")
        if isinstance(self.topology_seed, bool) or not isinstance(self.topology_seed, int):
            raise ValueError(f"topology_seed must be an integer, got {self.topology_seed!r}")
        for edge in self.edges:
            if len(edge) != 2:
                raise ValueError(f"an edge is a pair (u, v), got {edge!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> NetworkConfig:
        """Build from a parsed YAML/JSON mapping; unknown keys are an error, not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise ValueError(f"unknown network config key(s): {', '.join(unknown)}; known: {sorted(known)}")
        kwargs = dict(data)
        if "edges" in kwargs:
            # YAML gives lists of lists; the frozen config wants hashable tuples.
            kwargs["edges"] = tuple(tuple(int(x) for x in edge) for edge in kwargs["edges"])
        return cls(**kwargs)


def build_network(config: NetworkConfig, n: int) -> NetworkModel:
    """The network model that config describes, over nodes 0..n-1.

    For "full", hop_delay_rounds adds to delay_rounds (a single hop); loss needs a topology.
    """
    n = _check_n(n)
    if config.kind == "full":
        if config.loss > 0.0:
            raise ValueError("loss is modelled per link: use kind 'topology' or 'erdos_renyi'")
        return FullyConnected(n, config.delay_rounds + config.hop_delay_rounds)
    if config.kind == "topology":
        covered = {node for edge in config.edges for node in edge}
        if covered != set(range(n)):
            missing = sorted(set(range(n)) - covered)
            extra = sorted(covered - set(range(n)))
            raise ValueError(
                f"topology edges must cover nodes 0..{n - 1} exactly: missing {missing}, out of range {extra}"
            )
        graph = from_edges(n, config.edges)
    else:
        graph = erdos_renyi(n, config.avg_degree, config.topology_seed)
    for u, v in graph.edges:
        graph.edges[u, v]["delay"] = config.hop_delay_rounds
    return TopologyNetwork(graph, bandwidth_mb=config.bandwidth_mb, loss=config.loss)
