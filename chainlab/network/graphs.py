"""Pure graph generators over vertices 0..n-1, shared by both drivers, and the validators they use."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import networkx as nx

from chainlab.network.links import check_bandwidth

__all__ = ["MAX_CONNECT_TRIES", "as_int", "check_n", "check_vertex", "complete", "erdos_renyi", "from_edges"]

MAX_CONNECT_TRIES = 1000


def as_int(value: object, what: str) -> int:
    """value as an int; ValueError naming `what` for bools, floats and anything else that is not an integer."""
    # operator.index accepts numpy integers but not floats, which would be truncated silently.
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {value!r}") from None


def check_n(n: object) -> int:
    """n as a node count >= 1."""
    count = as_int(n, "n")
    if count < 1:
        raise ValueError(f"a network needs at least one node, got n={n!r}")
    return count


def check_vertex(vertex: object, n: int, what: str = "node") -> int:
    """vertex as an index in 0..n-1."""
    index = as_int(vertex, what)
    if not 0 <= index < n:
        raise ValueError(f"{what} {vertex!r} is not a node of this network (0..{n - 1})")
    return index


def complete(n: int) -> nx.Graph:
    """The complete graph on nodes 0..n-1."""
    return nx.complete_graph(check_n(n))


def from_edges(n: int, edges: Sequence[tuple[int, int] | tuple[int, int, float]]) -> nx.Graph:
    """A graph on nodes 0..n-1 with the given links; an optional third item is the bandwidth in MB/round."""
    n = check_n(n)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for edge in edges:
        if len(edge) not in (2, 3):
            raise ValueError(f"an edge is (u, v) or (u, v, bandwidth), got {edge!r}")
        u, v = check_vertex(edge[0], n), check_vertex(edge[1], n)
        if u == v:
            raise ValueError(f"self-loop {u}-{v} is not a link")
        if len(edge) == 3:
            graph.add_edge(u, v, bandwidth=check_bandwidth(edge[2], "bandwidth"))
        else:
            graph.add_edge(u, v)
    return graph


def erdos_renyi(n: int, avg_degree: float, seed: int) -> nx.Graph:
    """A connected G(n, p) graph with p = avg_degree / (n - 1), retrying seed+1, seed+2, ... until connected.

    p is capped at 1, so asking for more neighbours than there are nodes gives the complete graph.
    """
    n = check_n(n)
    if not (math.isfinite(avg_degree) and avg_degree > 0):
        raise ValueError(f"avg_degree must be > 0, got {avg_degree!r}")
    if n == 1:
        return nx.empty_graph(1)
    p = min(1.0, avg_degree / (n - 1))
    for attempt in range(MAX_CONNECT_TRIES):
        graph = nx.gnp_random_graph(n, p, seed=seed + attempt)
        if nx.is_connected(graph):
            return graph
    raise ValueError(
        f"no connected G({n}, {p:.4g}) found for seeds {seed}..{seed + MAX_CONNECT_TRIES - 1}; raise avg_degree"
    )
