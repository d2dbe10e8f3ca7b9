"""The live topology: node IDs, their sidecars' addresses and the links between them, from a file or a generator.

File format (YAML or JSON, chosen by suffix; hex node IDs)::

    round_seconds: 0.5                # optional; see resolve_round_seconds for precedence
    defaults: {latency_rounds: 1, bandwidth_mb_per_round: 0.0, loss: 0.0}   # optional
    nodes:                            # node ID (hex) -> its sidecar's host:port; vertex i = the i-th listed
      "aa..aa": "miner-0:7100"
      "bb..bb": "miner-1:7100"
    links:                            # an explicit edge list: [a, b] or a mapping with per-edge settings
      - ["aa..aa", "bb..bb"]
      - {a: "bb..bb", b: "cc..cc", latency_rounds: 2, bandwidth_mb_per_round: 8, loss: 0.01}
    # or, instead of links, a generator over the nodes in their listed order:
    # generate: {kind: erdos_renyi, avg_degree: 3, seed: 0}     # or {kind: full}

Links are undirected; a sidecar applies a link's settings to what it sends on it. The listing order of the
nodes is meaningful: node i is the simulator's vertex i, and the links sorted by vertex are the order in
which chainlab.network.links.hop_rounds draws (so every sidecar must read the same file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chainlab.live.rounds import check_round_seconds
from chainlab.network import graphs
from chainlab.network.config import NetworkConfig
from chainlab.network.links import LinkSpec

__all__ = [
    "NODE_ID_BYTES",
    "LinkSpec",
    "Topology",
    "dump_topology",
    "erdos_renyi",
    "from_edges",
    "full",
    "link_key",
    "load_topology",
    "parse_node_id",
    "topology_for",
]

NODE_ID_BYTES = 32

_TOP_KEYS = frozenset({"round_seconds", "defaults", "nodes", "links", "generate"})
_GENERATORS = ("full", "erdos_renyi")


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def link_key(a: bytes, b: bytes) -> tuple[bytes, bytes]:
    """The undirected key of the link between a and b (the smaller ID first)."""
    if a == b:
        raise ValueError(f"a link needs two distinct nodes, got {a.hex()} twice")
    return (a, b) if a < b else (b, a)


def parse_node_id(text: object) -> bytes:
    """A node ID from its hex form; raises ValueError unless it is 32 bytes."""
    if not isinstance(text, str):
        raise ValueError(f"a node ID is a hex string, got {text!r}")
    try:
        node = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"node ID {text!r} is not hex") from None
    if len(node) != NODE_ID_BYTES:
        raise ValueError(f"node ID {text!r} has {len(node)} bytes, not {NODE_ID_BYTES}")
    return node


@dataclass(frozen=True)
class Topology:
    """Every node's sidecar address and every link's settings; the same file is shared by all sidecars."""

    nodes: Mapping[bytes, str]  # in vertex order: node i is the simulator's vertex i
    links: Mapping[tuple[bytes, bytes], LinkSpec]
    round_seconds: float | None = None
    # Derived. The order is compared: two topologies listing the same nodes differently draw differently.
    vertices: tuple[bytes, ...] = field(init=False)
    edges: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)
    _adjacency: dict[bytes, dict[bytes, LinkSpec]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        adjacency: dict[bytes, dict[bytes, LinkSpec]] = {node: {} for node in self.nodes}
        for (a, b), spec in self.links.items():
            if (a, b) != link_key(a, b):
                raise ValueError(f"link key {a.hex()}-{b.hex()} is not in order; build it with link_key")
            for end in (a, b):
                if end not in self.nodes:
                    raise ValueError(f"link {a.hex()}-{b.hex()} names {end.hex()}, which is not a node")
            adjacency[a][b] = spec
            adjacency[b][a] = spec
        if self.round_seconds is not None:
            check_round_seconds(self.round_seconds)
        vertices = tuple(self.nodes)
        index = {node: i for i, node in enumerate(vertices)}
        # The draw order: links sorted by their vertices, exactly as the simulator sorts its (u, v) edges.
        edges = tuple(sorted(self.links, key=lambda key: sorted((index[key[0]], index[key[1]]))))
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "_adjacency", adjacency)

    def vertex_edges(self) -> list[tuple[int, int]]:
        """The links as sorted (u, v) vertex pairs, in draw order: the simulator's edge list of this graph."""
        index = {node: i for i, node in enumerate(self.vertices)}
        return [(min(index[a], index[b]), max(index[a], index[b])) for a, b in self.edges]

    def neighbours(self, node: bytes) -> dict[bytes, LinkSpec]:
        """node's neighbours and the settings of the link to each."""
        if node not in self._adjacency:
            raise KeyError(f"{node.hex()} is not a node of this topology")
        return dict(self._adjacency[node])

    def address(self, node: bytes) -> str:
        """The host:port of node's sidecar."""
        return self.nodes[node]

    def to_mapping(self) -> dict[str, Any]:
        """Plain data in the file format, with an explicit edge list (generators expanded)."""
        data: dict[str, Any] = {}
        if self.round_seconds is not None:
            data["round_seconds"] = self.round_seconds
        data["nodes"] = {node.hex(): address for node, address in self.nodes.items()}
        data["links"] = [
            {"a": a.hex(), "b": b.hex(), **spec.to_mapping()} for (a, b), spec in sorted(self.links.items())
        ]
        return data

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Topology:
        """Parse the file format; unknown keys, bad IDs and links to unknown nodes are errors that name them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a topology is a mapping, got {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
        if unknown:
            raise ValueError(f"unknown topology key(s) {unknown}; known: {sorted(_TOP_KEYS)}")
        raw_nodes = data.get("nodes")
        if not isinstance(raw_nodes, Mapping) or not raw_nodes:
            raise ValueError("'nodes' must be a non-empty mapping of hex node ID -> sidecar host:port")
        nodes: dict[bytes, str] = {}
        for key, address in raw_nodes.items():
            if not isinstance(address, str) or not address:
                raise ValueError(f"the address of node {key} must be a host:port string, got {address!r}")
            nodes[parse_node_id(key)] = address
        defaults = LinkSpec.from_mapping(_mapping(data.get("defaults", {}), "defaults"))
        round_seconds = data.get("round_seconds")
        if round_seconds is not None:
            round_seconds = _number(round_seconds, "round_seconds")
        if "links" in data and "generate" in data:
            raise ValueError("give either 'links' or 'generate', not both")
        if "generate" in data:
            return _generate(nodes, _mapping(data["generate"], "generate"), defaults, round_seconds)
        return from_edges(nodes, _parse_edges(data.get("links", []), defaults), round_seconds=round_seconds)


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"'{what}' must be a mapping, got {value!r}")
    return value


def _parse_edges(raw: object, defaults: LinkSpec) -> list[tuple[bytes, bytes, LinkSpec]]:
    if not isinstance(raw, list):
        raise ValueError(f"'links' must be a list, got {raw!r}")
    edges = []
    for item in raw:
        if isinstance(item, list) and len(item) == 2:
            edges.append((parse_node_id(item[0]), parse_node_id(item[1]), defaults))
        elif isinstance(item, Mapping) and "a" in item and "b" in item:
            settings = {k: v for k, v in item.items() if k not in ("a", "b")}
            edges.append(
                (parse_node_id(item["a"]), parse_node_id(item["b"]), LinkSpec.from_mapping(settings, defaults))
            )
        else:
            raise ValueError(
                f"a link is [a, b] or {{a, b, latency_rounds, bandwidth_mb_per_round, loss}}, got {item!r}"
            )
    return edges


def _generate(
    nodes: Mapping[bytes, str], spec: Mapping[str, Any], link: LinkSpec, round_seconds: float | None
) -> Topology:
    kind = spec.get("kind")
    if kind == "full":
        extra = sorted(set(spec) - {"kind"})
        if extra:
            raise ValueError(f"unknown key(s) {extra} for generator 'full'")
        return full(nodes, link, round_seconds=round_seconds)
    if kind == "erdos_renyi":
        extra = sorted(set(spec) - {"kind", "avg_degree", "seed"})
        if extra:
            raise ValueError(f"unknown key(s) {extra} for generator 'erdos_renyi'")
        seed = spec.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        degree = _number(spec.get("avg_degree", 3.0), "avg_degree")
        return erdos_renyi(nodes, degree, seed, link, round_seconds=round_seconds)
    raise ValueError(f"generator kind must be one of {_GENERATORS}, got {kind!r}")


def from_edges(
    nodes: Mapping[bytes, str],
    edges: Iterable[tuple[bytes, bytes] | tuple[bytes, bytes, LinkSpec]],
    *,
    spec: LinkSpec | None = None,
    round_seconds: float | None = None,
) -> Topology:
    """A topology with the given links; a third item is that link's spec, else spec (or the defaults)."""
    base = spec or LinkSpec()
    links: dict[tuple[bytes, bytes], LinkSpec] = {}
    for edge in edges:
        key = link_key(edge[0], edge[1])
        if key in links:
            raise ValueError(f"link {key[0].hex()}-{key[1].hex()} is listed twice")
        links[key] = edge[2] if len(edge) == 3 else base
    return Topology(dict(nodes), links, round_seconds)


def full(nodes: Mapping[bytes, str], spec: LinkSpec | None = None, *, round_seconds: float | None = None) -> Topology:
    """Every node linked to every other."""
    ids = list(nodes)
    edges = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
    return from_edges(nodes, edges, spec=spec, round_seconds=round_seconds)


def erdos_renyi(
    nodes: Mapping[bytes, str],
    avg_degree: float,
    seed: int,
    spec: LinkSpec | None = None,
    *,
    round_seconds: float | None = None,
) -> Topology:
    """A connected Erdos-Renyi mesh over the nodes in their order: node i is vertex i of the simulator's graph."""
    ids = list(nodes)
    graph = graphs.erdos_renyi(len(ids), avg_degree, seed)
    edges = [(ids[int(u)], ids[int(v)]) for u, v in graph.edges]
    return from_edges(nodes, edges, spec=spec, round_seconds=round_seconds)


def topology_for(
    config: NetworkConfig, nodes: Sequence[tuple[bytes, str]], seed: int, *, round_seconds: float | None = None
) -> Topology:
    """The sidecars' topology for an experiment's network: vertex i = nodes[i] (node ID, sidecar address).

    The same graph and link settings as the simulator's build_network(config, len(nodes), seed), by
    construction: both come from config.graph_edges and config.link_spec.
    """
    ids = [node for node, _ in nodes]
    if len(set(ids)) != len(ids):
        raise ValueError("a node is listed twice")
    edges = [(ids[u], ids[v]) for u, v in config.graph_edges(len(ids), seed)]
    return from_edges(dict(nodes), edges, spec=config.link_spec(), round_seconds=round_seconds)


def load_topology(path: str | Path) -> Topology:
    """Read a topology file: .json is JSON, anything else YAML (safe_load: data only, never objects)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    try:
        return Topology.from_mapping(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def dump_topology(topology: Topology, path: str | Path) -> None:
    """Write a topology file (JSON for .json, else YAML) that load_topology reads back equal."""
    path = Path(path)
    data = topology.to_mapping()
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
