"""The network plan: what `chainlab up` hands every service — the experiment, who is where, the protocol's payload
and the data's CIDs. Protocol-neutral: the spec decides what the payload and data names mean."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The netem sidecar reads plans in the slim image (no torch): the scenario layer, which imports the learning
# stack, is imported only by the methods that need it.
if TYPE_CHECKING:
    from chainlab.scenarios.base import NodeSlot
    from chainlab.scenarios.experiment import Experiment


@dataclass(frozen=True)
class NodeEntry:
    """One node: its name (e.g. miner-0), role and index, node ID, and the addresses of it and its sidecar."""

    name: str
    role: str
    index: int
    node_id: str  # hex
    listen: str  # the node's gRPC address (Peer, Node, and the protocol's own services)
    sidecar: str  # its netem sidecar's gRPC address
    metrics_port: int
    sidecar_metrics_port: int

    @property
    def slot(self) -> NodeSlot:
        """The node's slot in the deployment."""
        from chainlab.scenarios.base import NodeSlot

        return NodeSlot(self.name, self.role, self.index, bytes.fromhex(self.node_id))


def bind_address(planned: str, host: str | None) -> str:
    """Where a service listens: the plan's address, or the plan's port on `host` (0.0.0.0 in a container, whose
    planned address is a name its peers resolve)."""
    if host is None:
        return planned
    _, sep, port = planned.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"planned address {planned!r} is not host:port")
    return f"{host}:{port}"


@dataclass(frozen=True)
class NetworkPlan:
    """Everything the services of one network share; written once as JSON, read by each service.

    nodes are in deployment order: node i is vertex i of the network graph, as in simulation.
    """

    experiment: dict[str, Any]
    round_seconds: float
    epoch: float  # Unix time of round 0, shared by every node's clock
    storage: str  # the storage service's gRPC address
    nodes: list[NodeEntry]
    payload: dict[str, str] = field(default_factory=dict)  # the protocol's (BagChain: genesis, tasks)
    data: dict[str, str] = field(default_factory=dict)  # dataset name -> CID in storage
    holdings: dict[str, list[str]] = field(default_factory=dict)  # node name -> datasets it holds from the start
    private: dict[str, str] = field(default_factory=dict)  # node name -> the name of its private dataset
    # node name -> the protocol misbehaviour it runs from the start (a chaos `byzantine` action at round 0)
    behaviours: dict[str, str] = field(default_factory=dict)

    def exp(self) -> Experiment:
        """The experiment, validated."""
        from chainlab.scenarios.experiment import Experiment

        return Experiment.from_mapping(self.experiment)

    def node(self, name: str) -> NodeEntry:
        """The entry called name; ValueError naming the known ones otherwise."""
        for entry in self.nodes:
            if entry.name == name:
                return entry
        raise ValueError(f"no node {name!r} in the plan (known: {', '.join(e.name for e in self.nodes)})")

    def entry(self, role: str, index: int) -> NodeEntry:
        """The node of a role with an index (how a pod knows itself: its role and ordinal); ValueError otherwise."""
        for entry in self.nodes:
            if entry.role == role and entry.index == index:
                return entry
        raise ValueError(f"no {role} with index {index} in the plan (nodes: {', '.join(e.name for e in self.nodes)})")

    def find(self, name: str | None, role: str | None, index: str | None) -> NodeEntry:
        """A service's own entry: by name, else by role and index (CHAINLAB_ROLE, CHAINLAB_INDEX in a pod)."""
        if name:
            return self.node(name)
        if role and index is not None and index.isdigit():
            return self.entry(role, int(index))
        raise ValueError("name the node: --name, or its role and index (CHAINLAB_ROLE, CHAINLAB_INDEX)")

    def dump(self, path: Path) -> None:
        """Write the plan as JSON."""
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> NetworkPlan:
        """Read a plan written by dump."""
        raw = json.loads(path.read_text())
        raw["nodes"] = [NodeEntry(**n) for n in raw["nodes"]]
        return cls(**raw)
