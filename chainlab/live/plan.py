"""The network plan: what `chainlab up` hands every service — the experiment, who is where, and the data's CIDs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chainlab.ledger import encoding
from chainlab.ledger.identity import Identity
from chainlab.protocols.bagchain.messages import KeyBlock, Task
from chainlab.scenario import Experiment, identity_of

ROLES = ("miner", "validator", "requester")


@dataclass(frozen=True)
class NodeEntry:
    """One node: its name (e.g. miner-0), role and index, node ID, and the addresses of it and its sidecar."""

    name: str
    role: str
    index: int
    node_id: str  # hex
    listen: str  # the node's gRPC address (Peer, Node, and Chain or Requester)
    sidecar: str  # its netem sidecar's gRPC address
    metrics_port: int
    sidecar_metrics_port: int


@dataclass(frozen=True)
class NetworkPlan:
    """Everything the services of one network share; written once as JSON, read by each service."""

    experiment: dict[str, Any]
    round_seconds: float
    epoch: float  # Unix time of round 0, shared by every node's clock
    storage: str  # the storage service's gRPC address
    nodes: list[NodeEntry]
    genesis: str  # hex of the canonical encoding of the genesis Key Block
    tasks: list[str]  # hex of each signed Task
    data: dict[str, str] = field(default_factory=dict)  # "public", "validation", "test", "private:<i>" -> CID

    def exp(self) -> Experiment:
        """The experiment, validated."""
        return Experiment.from_mapping(self.experiment)

    def node(self, name: str) -> NodeEntry:
        """The entry called name; ValueError naming the known ones otherwise."""
        for entry in self.nodes:
            if entry.name == name:
                return entry
        raise ValueError(f"no node {name!r} in the plan (known: {', '.join(e.name for e in self.nodes)})")

    def identity(self, entry: NodeEntry) -> Identity:
        """The node's key pair (derived from the experiment seed, as in simulation)."""
        identity = identity_of(self.exp().seed, entry.role, entry.index)
        if identity.node_id.hex() != entry.node_id:
            raise ValueError(f"{entry.name}: node ID in the plan does not match its key")
        return identity

    def genesis_block(self) -> KeyBlock:
        """The genesis Key Block."""
        block: KeyBlock = encoding.decode(KeyBlock, bytes.fromhex(self.genesis))
        return block

    def task_list(self) -> list[Task]:
        """The requester's signed tasks."""
        return [encoding.decode(Task, bytes.fromhex(t)) for t in self.tasks]

    def dump(self, path: Path) -> None:
        """Write the plan as JSON."""
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> NetworkPlan:
        """Read a plan written by dump."""
        raw = json.loads(path.read_text())
        raw["nodes"] = [NodeEntry(**n) for n in raw["nodes"]]
        return cls(**raw)
