"""Pure graph generators shared by both drivers (sim and live), so neither has to import the other."""

from __future__ import annotations

import math
import operator

import networkx as nx

__all__ = ["MAX_CONNECT_TRIES", "erdos_renyi"]

MAX_CONNECT_TRIES = 1000


def _as_int(value: object, what: str) -> int:
    # operator.index accepts numpy integers but not floats, which would be truncated silently.
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {value!r}") from None


def _check_n(n: int) -> int:
    count = _as_int(n, "n")
    if count < 1:
        raise ValueError(f"a network needs at least one node, got n={n!r}")
    return count


def erdos_renyi(n: int, avg_degree: float, seed: int) -> nx.Graph:
    """A connected G(n, p) graph with p = avg_degree / (n - 1), retrying seed+1, seed+2, ... until connected.

    p is capped at 1, so asking for more neighbours than there are nodes gives the complete graph.
    """
    n = _check_n(n)
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
