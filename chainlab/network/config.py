"""An experiment's `network:` section, validated once and meaning the same in the simulator and live."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

from chainlab.network.graphs import as_int, check_n, complete, erdos_renyi, from_edges
from chainlab.network.links import LinkSpec, check_bandwidth, check_loss, whole_rounds

__all__ = ["NETWORK_KINDS", "NetworkConfig"]

NETWORK_KINDS = ("full", "topology", "erdos_renyi")


@dataclass(frozen=True)
class NetworkConfig:
    """How an experiment's network is built; each field has one meaning in both drivers.

    - kind: "full" (every node linked to every other), "topology" (the listed edges) or "erdos_renyi"
      (a connected G(n, p) mesh with p = avg_degree / (n - 1)).
    - delay_rounds (full only, >= 1): every message reaches every node exactly this many rounds after it
      was sent, whatever its size (the paper's constant delay).
    - bandwidth_mb (mesh kinds, > 0): the mean bandwidth of every link in MB per round; a hop takes
      max(1, ceil(size_mb / b)) + hop_delay_rounds rounds, b drawn per message and link from
      N(bandwidth_mb, (0.2 bandwidth_mb)^2) floored at 0.1 bandwidth_mb (chainlab.network.links.hop_rounds).
    - avg_degree (erdos_renyi only, > 0): the mean number of neighbours.
    - edges (topology only): [u, v] pairs over vertices 0..n-1 that must cover every vertex.
    - hop_delay_rounds (mesh kinds, whole >= 0): fixed rounds added to every hop.
    - loss (mesh kinds, in [0, 1]): the probability that a message is lost on a link, drawn per link and
      message; a message flooded around a loss still arrives by another path. Refused with kind full,
      whose constant-delay model has no links to lose a message on.
    - topology_seed (erdos_renyi only): the graph's seed; absent, the experiment's seed (both drivers).

    Vertex i is the i-th node of the deployment order (BagChain: miners, requester, validators). Fields
    that do not apply to the kind are ignored, so one config can be compared across kinds.
    """

    kind: str = "full"
    delay_rounds: int = 1
    bandwidth_mb: float = 0.5
    avg_degree: float = 3.0
    edges: tuple[tuple[int, int], ...] = ()
    hop_delay_rounds: int = 0
    loss: float = 0.0
    topology_seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in NETWORK_KINDS:
            raise ValueError(f"network kind must be one of {NETWORK_KINDS}, got {self.kind!r}")
        # A delivery in the sending round would let a block be acted on before it could have travelled.
        if as_int(self.delay_rounds, "delay_rounds") < 1:
            raise ValueError(f"delay_rounds must be >= 1, got {self.delay_rounds}")
        # Normalise (2.0 rounds is 2; 1 MB is 1.0) so that equal configs compare and hash equal.
        object.__setattr__(self, "hop_delay_rounds", whole_rounds(self.hop_delay_rounds, "hop_delay_rounds"))
        object.__setattr__(self, "bandwidth_mb", check_bandwidth(self.bandwidth_mb, "bandwidth_mb"))
        if self.bandwidth_mb == 0.0:
            raise ValueError("bandwidth_mb must be > 0 MB per round")
        object.__setattr__(self, "loss", check_loss(self.loss))
        if isinstance(self.avg_degree, bool) or not isinstance(self.avg_degree, int | float):
            raise ValueError(f"avg_degree must be a number, got {self.avg_degree!r}")
        if not (math.isfinite(self.avg_degree) and self.avg_degree > 0):
            raise ValueError(f"avg_degree must be > 0, got {self.avg_degree!r}")
        if self.topology_seed is not None:
            as_int(self.topology_seed, "topology_seed")
        for edge in self.edges:
            if len(edge) != 2:
                raise ValueError(f"an edge is a pair (u, v), got {edge!r}")
        if self.kind == "full" and self.loss > 0.0:
            raise ValueError("loss is modelled per link: use kind 'topology' or 'erdos_renyi'")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> NetworkConfig:
        """Build from a parsed YAML/JSON mapping; unknown keys and bad values are errors that name them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"the network section is a mapping, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise ValueError(f"unknown network config key(s): {', '.join(unknown)}; known: {sorted(known)}")
        kwargs = dict(data)
        if "edges" in kwargs:
            kwargs["edges"] = _edges(kwargs["edges"])
        return cls(**kwargs)  # type: ignore[arg-type]  # every value is checked in __post_init__

    def graph_seed(self, seed: int) -> int:
        """The Erdos-Renyi graph's seed: topology_seed, else the experiment's seed."""
        return seed if self.topology_seed is None else self.topology_seed

    def link_spec(self) -> LinkSpec:
        """Every link's settings: full is a constant delay (no bandwidth term, no loss); meshes draw per hop."""
        if self.kind == "full":
            return LinkSpec(latency_rounds=self.delay_rounds, bandwidth_mb_per_round=0.0, loss=0.0)
        return LinkSpec(latency_rounds=self.hop_delay_rounds, bandwidth_mb_per_round=self.bandwidth_mb, loss=self.loss)

    def graph_edges(self, n: int, seed: int) -> list[tuple[int, int]]:
        """The links over vertices 0..n-1 as sorted (u, v) pairs with u < v; seed is the experiment's seed."""
        n = check_n(n)
        if self.kind == "full":
            graph = complete(n)
        elif self.kind == "topology":
            covered = {node for edge in self.edges for node in edge}
            if covered != set(range(n)):
                missing = sorted(set(range(n)) - covered)
                extra = sorted(covered - set(range(n)))
                raise ValueError(
                    f"topology edges must cover nodes 0..{n - 1} exactly: missing {missing}, out of range {extra}"
                )
            graph = from_edges(n, self.edges)
        else:
            graph = erdos_renyi(n, self.avg_degree, self.graph_seed(seed))
        return sorted((min(int(u), int(v)), max(int(u), int(v))) for u, v in graph.edges)


def _edges(raw: object) -> tuple[tuple[int, int], ...]:
    # YAML gives lists of lists; the frozen config wants hashable tuples, and 1.5 must not become 1.
    if not isinstance(raw, list | tuple):
        raise ValueError(f"edges must be a list of [u, v] pairs, got {raw!r}")
    edges = []
    for edge in raw:
        if not isinstance(edge, list | tuple) or len(edge) != 2:
            raise ValueError(f"an edge is a pair [u, v], got {edge!r}")
        edges.append((as_int(edge[0], "an edge's node"), as_int(edge[1], "an edge's node")))
    return tuple(edges)
