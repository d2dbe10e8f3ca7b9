"""The live topology: node IDs, their sidecars' addresses and the links between them, from a file or a generator.

File format (YAML or JSON, chosen by suffix; hex node IDs)::

    round_seconds: 0.5                # optional; see resolve_round_seconds for precedence
    defaults: {latency_rounds: 1.0, bandwidth_mb_per_round: 0.0, loss: 0.0}   # optional
    nodes:                            # node ID (hex) -> its sidecar's host:port
      "aa..aa": "miner-0:7100"
      "bb..bb": "miner-1:7100"
    links:                            # an explicit edge list: [a, b] or a mapping with per-edge settings
      - ["aa..aa", "bb..bb"]
      - {a: "bb..bb", b: "cc..cc", latency_rounds: 2, bandwidth_mb_per_round: 8, loss: 0.01}
    # or, instead of links, a generator over the nodes sorted by ID:
    # generate: {kind: erdos_renyi, avg_degree: 3, seed: 0}     # or {kind: full}

Links are undirected; a sidecar applies a link's settings to what it sends on it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from chainlab import topology as graphs
from chainlab.live.rounds import check_round_seconds

NODE_ID_BYTES = 32

_TOP_KEYS = frozenset({"round_seconds", "defaults", "nodes", "links", "generate"})
_GENERATORS = ("full", "erdos_renyi")


@dataclass(frozen=True)
class LinkSpec:
    """One link's settings: latency in rounds, bandwidth in MB per round (0: unlimited), loss probability."""

    latency_rounds: float = 1.0
    bandwidth_mb_per_round: float = 0.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        check_link_values(self.latency_rounds, self.bandwidth_mb_per_round, self.loss)

    def to_mapping(self) -> dict[str, float]:
        """The spec as plain data."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: LinkSpec | None = None) -> LinkSpec:
        """A spec from a mapping; missing keys come from base (or the defaults), unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown link key(s) {unknown}; known: {sorted(known)}")
        values = (base or cls()).to_mapping()
        for key, value in data.items():
            values[key] = _number(value, key)
        return cls(**values)


def check_link_values(latency_rounds: float, bandwidth_mb_per_round: float, loss: float) -> None:
    """Raise ValueError naming the first bad value: latency and bandwidth finite and >= 0, loss in [0, 1)."""
    if not (math.isfinite(latency_rounds) and latency_rounds >= 0):
        raise ValueError(f"latency_rounds must be a finite number >= 0, got {latency_rounds!r}")
    if not (math.isfinite(bandwidth_mb_per_round) and bandwidth_mb_per_round >= 0):
        raise ValueError(
            f"bandwidth_mb_per_round must be finite and >= 0 (0: unlimited), got {bandwidth_mb_per_round!r}"
        )
    # loss 1 would make a link that is up but carries nothing; that is what up=false is for.
    if not (math.isfinite(loss) and 0 <= loss < 1):
        raise ValueError(f"loss must be a probability in [0, 1), got {loss!r}")


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

    nodes: Mapping[bytes, str]
    links: Mapping[tuple[bytes, bytes], LinkSpec]
    round_seconds: float | None = None
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
        object.__setattr__(self, "_adjacency", adjacency)

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
    ids = sorted(nodes)
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
    """A connected Erdos-Renyi mesh over the nodes sorted by ID (the same graph as the simulator's for n, seed)."""
    # Sorting makes the graph independent of the order in which a file lists the nodes.
    ids = sorted(nodes)
    graph = graphs.erdos_renyi(len(ids), avg_degree, seed)
    edges = [(ids[int(u)], ids[int(v)]) for u, v in graph.edges]
    return from_edges(nodes, edges, spec=spec, round_seconds=round_seconds)


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
