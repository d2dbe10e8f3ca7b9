"""How a network is laid out before it starts: node addresses, the sidecars' topology, the data in storage, and
the plan every service reads. Shared by `chainlab up` (loopback ports) and the Kubernetes loader Job
(`chainlab plan`: pod DNS names and the pods' fixed ports)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from chainlab.learning.datasets import Dataset, encode_dataset
from chainlab.live.containers import PORTS, Ports
from chainlab.live.netem import topology as topo
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.processes import free_ports
from chainlab.live.storage_client import StorageClient
from chainlab.scenarios import chaos
from chainlab.scenarios.base import Deployment, NodeSlot
from chainlab.scenarios.experiment import Experiment

PLAN_FILE = "plan.json"
TOPOLOGY_FILE = "topology.yaml"


def node_entry(slot: NodeSlot, host: str, ports: Ports) -> NodeEntry:
    """A node at host: its service and its sidecar on the given ports."""
    return NodeEntry(
        slot.name,
        slot.role,
        slot.index,
        slot.node_id.hex(),
        f"{host}:{ports.grpc}",
        f"{host}:{ports.netem}",
        ports.metrics,
        ports.netem_metrics,
    )


def node_entries(slots: list[NodeSlot]) -> list[NodeEntry]:
    """Fresh loopback ports for every node and its sidecar, in deployment (graph vertex) order."""
    ports = free_ports(4 * len(slots))
    return [node_entry(slot, "127.0.0.1", Ports(*ports[4 * k : 4 * k + 4])) for k, slot in enumerate(slots)]


def build_topology(choice: str, exp: Experiment, entries: Sequence[NodeEntry], order: Sequence[bytes]) -> topo.Topology:
    """The sidecars' topology: the experiment's network section, a generator, or a file that names nodes.

    order is the node IDs in the simulator's vertex order (the scenario's `nodes`), so that vertex i is the
    same node, with the same role, in both drivers whatever the entries' (start) order.
    """
    sidecars = {bytes.fromhex(e.node_id): e.sidecar for e in entries}
    if sorted(order) != sorted(sidecars):
        raise ValueError("the vertex order must list every node of the network exactly once")
    nodes = [(node, sidecars[node]) for node in order]
    config = exp.network
    if choice == "config":
        return topo.topology_for(config, nodes, exp.seed)
    if choice == "full":
        return topo.full(dict(nodes))
    if choice.startswith("erdos_renyi:"):
        return topo.erdos_renyi(dict(nodes), float(choice.split(":", 1)[1]), config.graph_seed(exp.seed))
    return _topology_file(Path(choice), entries, nodes)


def _topology_file(path: Path, entries: Sequence[NodeEntry], nodes: Sequence[tuple[bytes, str]]) -> topo.Topology:
    """A topology file whose nodes are the network's names (miner-0, validator-0, requester), not IDs."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    ids = {e.name: e.node_id for e in entries}

    def node(name: object) -> str:
        if name not in ids:
            raise ValueError(f"{path}: unknown node {name!r} (known: {', '.join(ids)})")
        return ids[str(name)]

    links: list[Any] = []
    for link in data.get("links", []):
        if isinstance(link, list):
            links.append([node(x) for x in link])
        else:
            links.append({**link, "a": node(link.get("a")), "b": node(link.get("b"))})
    mapping = {**data, "nodes": {node_id.hex(): address for node_id, address in nodes}}
    if "links" in data:
        mapping["links"] = links
    return topo.Topology.from_mapping(mapping)


def dns_entries(slots: Sequence[NodeSlot], host_template: str, ports: Ports = PORTS) -> list[NodeEntry]:
    """Every node at its pod's DNS name (host_template with {role} and {index}, e.g. the StatefulSet pod's name
    under its headless Service) and the pods' fixed ports, in deployment order."""
    entries = []
    for slot in slots:
        try:
            host = host_template.format(role=slot.role, index=slot.index)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"host template {host_template!r} may name only {{role}} and {{index}}: {exc}") from None
        entries.append(node_entry(slot, host, ports))
    return entries


async def upload_datasets(datasets: dict[str, Dataset], storage: StorageClient) -> dict[str, str]:
    """Every named dataset into storage, pinned; their CIDs by name (the same bytes give the same CID, so a
    second upload of the same network is a no-op in effect)."""
    cids = {}
    for name, dataset in datasets.items():
        cids[name] = await storage.put(await asyncio.to_thread(encode_dataset, dataset), pin=True)
    return cids


def network_plan(
    exp: Experiment,
    deployment: Deployment,
    entries: list[NodeEntry],
    storage: str,
    data: dict[str, str],
    round_seconds: float,
    topology: str = "config",
) -> tuple[NetworkPlan, topo.Topology]:
    """The plan and the sidecars' topology of a network whose data is in storage; round 0 starts now.

    The topology carries round_seconds, so a sidecar started with nothing but its files keeps the same time.
    """
    order = [slot.node_id for slot in deployment.slots]
    layout = dataclasses.replace(build_topology(topology, exp, entries, order), round_seconds=round_seconds)
    plan = NetworkPlan(
        experiment=dict(exp.raw),
        round_seconds=round_seconds,
        epoch=time.time(),
        storage=storage,
        nodes=entries,
        payload=deployment.payload,
        data=data,
        holdings={name: list(held) for name, held in deployment.holdings.items()},
        private=deployment.private,
        behaviours=from_the_start(chaos.scenario(exp)),
    )
    return plan, layout


def from_the_start(actions: Sequence[chaos.TimedAction]) -> dict[str, str]:
    """The misbehaviours nodes run from round 0 (a live node cannot switch in flight): node name -> behaviour."""
    return {
        t.action.node: t.action.behaviour
        for t in actions
        if isinstance(t.action, chaos.Byzantine) and t.at == chaos.At(round=0)
    }


def write_plan(plan: NetworkPlan, layout: topo.Topology, directory: Path) -> dict[str, str]:
    """plan.json and topology.yaml into a directory; their texts by file name (what a ConfigMap holds)."""
    directory.mkdir(parents=True, exist_ok=True)
    plan.dump(directory / PLAN_FILE)
    topo.dump_topology(layout, directory / TOPOLOGY_FILE)
    return {name: (directory / name).read_text() for name in (PLAN_FILE, TOPOLOGY_FILE)}
