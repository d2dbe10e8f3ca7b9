"""`chainlab up`: a whole BagChain network as processes on 127.0.0.1 — storage, a sidecar per node, the nodes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from chainlab.learning.datasets import encode_dataset
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.live.netem import topology as topo
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.processes import ProcessGroup, free_ports
from chainlab.live.server import insecure_channel
from chainlab.live.storage_client import StorageClient
from chainlab.mlwork import learning_spec
from chainlab.proto.v1 import node_pb2, node_pb2_grpc, queries_pb2, queries_pb2_grpc
from chainlab.protocols.bagchain.messages import EnsembleBlock, KeyBlock, MiniBlock, model_hash
from chainlab.scenario import Experiment, Network, build

STATE_FILE = "processes.json"
HEALTH_TIMEOUT_SECONDS = 60.0


@dataclass
class UpOptions:
    """What `chainlab up` was asked for."""

    experiment: Experiment
    out: Path
    round_seconds: float
    topology: str = "config"  # "config" (the experiment's network), "full", "erdos_renyi:<degree>" or a file
    timeout_seconds: float = 600.0
    ipfs_api: str | None = None
    kill: str | None = None  # a node to SIGKILL mid-run (chaos), after kill_after_seconds
    kill_after_seconds: float = 0.0
    extra_env: dict[str, str] = field(default_factory=dict)


def node_entries(net: Network, exp: Experiment) -> list[NodeEntry]:
    """Names, roles and fresh loopback ports for every node and its sidecar (miners, validators, requester)."""
    roles: list[tuple[str, int, Any]] = [("miner", i, n) for i, n in enumerate(net.miners)]
    roles += [("validator", i, n) for i, n in enumerate(net.validators)]
    roles += [("requester", 0, net.requester)]
    ports = free_ports(4 * len(roles))
    entries = []
    for k, (role, index, node) in enumerate(roles):
        listen, sidecar, metrics, sidecar_metrics = ports[4 * k : 4 * k + 4]
        name = "requester" if role == "requester" else f"{role}-{index}"
        entries.append(
            NodeEntry(
                name,
                role,
                index,
                node.node_id.hex(),
                f"127.0.0.1:{listen}",
                f"127.0.0.1:{sidecar}",
                metrics,
                sidecar_metrics,
            )
        )
    return entries


def build_topology(choice: str, exp: Experiment, entries: list[NodeEntry]) -> topo.Topology:
    """The sidecars' topology: the experiment's network section, a generator, or a file that names nodes."""
    nodes = {bytes.fromhex(e.node_id): e.sidecar for e in entries}
    network = dict(exp.get("network", {}))
    if choice == "config":
        kind = str(network.get("kind", "full"))
        choice = f"erdos_renyi:{network.get('avg_degree', 3.0)}" if kind == "erdos_renyi" else "full"
        latency = float(network.get("delay_rounds", 1)) + float(network.get("hop_delay_rounds", 0))
        spec = topo.LinkSpec(latency, float(network.get("bandwidth_mb", 0.0)) if kind != "full" else 0.0)
    else:
        spec = topo.LinkSpec()
    if choice == "full":
        return topo.full(nodes, spec)
    if choice.startswith("erdos_renyi:"):
        seed = int(network.get("topology_seed", exp.seed))
        return topo.erdos_renyi(nodes, float(choice.split(":", 1)[1]), seed, spec)
    return _topology_file(Path(choice), entries)


def _topology_file(path: Path, entries: list[NodeEntry]) -> topo.Topology:
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
    mapping = {**data, "nodes": {e.node_id: e.sidecar for e in entries}}
    if "links" in data:
        mapping["links"] = links
    return topo.Topology.from_mapping(mapping)


async def wait_healthy(
    address: str, timeout: float = HEALTH_TIMEOUT_SECONDS, alive: Callable[[], bool] | None = None
) -> None:
    """Poll grpc.health.v1 until the server answers SERVING; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    async with insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise RuntimeError(f"the service at {address} exited while starting")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{address} not healthy after {timeout:.0f} s")


def metrics_endpoints(plan: NetworkPlan, storage_metrics_port: int) -> dict[str, str]:
    """Every service's Prometheus endpoint, by service name."""
    ports = {"storage": storage_metrics_port}
    ports |= {e.name: e.metrics_port for e in plan.nodes}
    ports |= {f"netem-{e.name}": e.sidecar_metrics_port for e in plan.nodes}
    return {name: f"http://127.0.0.1:{port}/metrics" for name, port in ports.items()}


class LiveNetwork:
    """A running network: its processes, plan, and clients for watching it."""

    def __init__(self, options: UpOptions, console: Console) -> None:
        self.options = options
        self.console = console
        options.out.mkdir(parents=True, exist_ok=True)
        self.processes = ProcessGroup(options.out / STATE_FILE, options.out / "logs")
        self.plan: NetworkPlan | None = None
        self.net: Network | None = None

    async def start(self) -> NetworkPlan:
        """Storage, data into storage, sidecars, then miners and validators, then the requester."""
        exp, out = self.options.experiment, self.options.out
        self.console.log(f"loading {exp.get('dataset')} and building {exp.miners} miners, {exp.tasks} tasks")
        net = await asyncio.to_thread(build, exp)
        self.net = net
        storage_port, storage_metrics = free_ports(2)
        storage = f"127.0.0.1:{storage_port}"
        args = ["--listen", storage, "--metrics-port", str(storage_metrics), "--repo", str(out / "ipfs")]
        if self.options.ipfs_api:
            args += ["--ipfs-api", self.options.ipfs_api]
        await self._start_and_wait("storage", "services.storage.main", args, storage)
        data = await self._upload(net, storage)
        entries = node_entries(net, exp)
        topology = build_topology(self.options.topology, exp, entries)
        topo.dump_topology(topology, out / "topology.yaml")
        plan = NetworkPlan(
            experiment=dict(exp.raw),
            round_seconds=self.options.round_seconds,
            epoch=time.time(),
            storage=storage,
            nodes=entries,
            genesis=encoding.encode(net.miners[0].genesis).hex(),
            tasks=[t.encode().hex() for t in net.tasks],
            data=data,
        )
        plan.dump(out / "plan.json")
        self.plan = plan
        env = {"CHAINLAB_ROUND_SECONDS": str(self.options.round_seconds), **self.options.extra_env}
        for e in entries:
            args = ["--node-id", e.node_id, "--node", e.listen, "--topology", str(out / "topology.yaml")]
            args += ["--listen", e.sidecar, "--metrics-port", str(e.sidecar_metrics_port), "--seed", str(exp.seed)]
            self.processes.start(f"netem-{e.name}", "services.netem.main", args, env)
        await asyncio.gather(*(self._healthy(f"netem-{e.name}", e.sidecar) for e in entries))
        # The requester publishes its tasks when it starts: everyone else must be listening by then.
        for group in ([e for e in entries if e.role != "requester"], [e for e in entries if e.role == "requester"]):
            for e in group:
                args = ["--plan", str(out / "plan.json"), "--name", e.name]
                self.processes.start(e.name, f"services.{e.role}.main", args, env)
            await asyncio.gather(*(self._healthy(e.name, e.listen) for e in group))
        self.console.log(f"network up: {len(entries)} nodes, storage at {storage}; logs in {out / 'logs'}")
        self.console.print("metrics endpoints:")
        for name, url in metrics_endpoints(plan, storage_metrics).items():
            self.console.print(f"  {name:<18} {url}")
        return plan

    async def _start_and_wait(self, name: str, module: str, args: list[str], address: str) -> None:
        self.processes.start(name, module, args, {**self.options.extra_env})
        await self._healthy(name, address)

    async def _healthy(self, name: str, address: str) -> None:
        child = self.processes.get(name)
        try:
            await wait_healthy(address, alive=lambda: child.process.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            tail = child.log.read_text(errors="replace")[-2000:] if child.log.exists() else ""
            raise RuntimeError(f"{name} did not start: {exc}\n{tail}") from exc

    async def _upload(self, net: Network, storage: str) -> dict[str, str]:
        """Every dataset into storage, pinned: D_T for all, D_V and D_E for the requester, D_Mi for miner i."""
        client = StorageClient(storage)
        try:
            named = {"public": net.public, "validation": net.validation, "test": net.test}
            named |= {f"private:{i}": d for i, d in net.private.items()}
            cids = {}
            for key, dataset in named.items():
                cids[key] = await client.put(await asyncio.to_thread(encode_dataset, dataset), pin=True)
            return cids
        finally:
            await client.close()

    async def wait_for_tasks(self, on_progress: Callable[[int, int], None]) -> None:
        """Until the observer's chain holds every task and all live nodes agree on the tip (or the timeout)."""
        assert self.plan is not None
        exp = self.options.experiment
        deadline = time.monotonic() + self.options.timeout_seconds
        started = time.monotonic()
        killed = False
        while time.monotonic() < deadline:
            if self.options.kill and not killed and time.monotonic() - started >= self.options.kill_after_seconds:
                self.processes.get(self.options.kill).process.kill()
                self.console.log(f"chaos: SIGKILL {self.options.kill}")
                killed = True
            statuses = await self.statuses()
            live = [s for s in statuses.values() if s is not None and s.role != "requester"]
            height = max((s.height for s in live), default=0)
            on_progress(height, max((s.round for s in live), default=0))
            if height >= exp.tasks and len({s.tip for s in live}) == 1:
                return
            await asyncio.sleep(max(0.2, self.options.round_seconds))
        raise TimeoutError(f"not all {exp.tasks} tasks done within {self.options.timeout_seconds:.0f} s")

    async def statuses(self) -> dict[str, node_pb2.NodeStatus | None]:
        """Each node's Status (None for a node that does not answer: killed or stopping)."""
        assert self.plan is not None

        async def status(entry: NodeEntry) -> node_pb2.NodeStatus | None:
            async with insecure_channel(entry.listen) as channel:
                try:
                    reply: node_pb2.NodeStatus = await node_pb2_grpc.NodeStub(channel).Status(
                        node_pb2.StatusRequest(), timeout=2.0
                    )
                    return reply
                except grpc.aio.AioRpcError:
                    return None

        replies = await asyncio.gather(*(status(e) for e in self.plan.nodes))
        return {e.name: r for e, r in zip(self.plan.nodes, replies, strict=True)}

    def stop(self) -> dict[str, int | None]:
        """Stop every process (SIGTERM, newest first); exit codes by name."""
        return self.processes.stop()


async def collect_results(network: LiveNetwork, observer: str) -> dict[str, Any]:
    """Per-task figures from the observer's best chain; base models fetched from storage and scored on D_E."""
    assert network.plan is not None and network.net is not None
    exp, net, plan = network.options.experiment, network.net, network.plan
    spec, metric = learning_spec(exp.model_spec()), str(exp.get("metric", "accuracy"))
    worker = Worker()
    storage = StorageClient(plan.storage)
    entry = plan.node(observer)
    heights: list[dict[str, Any]] = []
    try:
        async with insecure_channel(entry.listen) as channel:
            chain = queries_pb2_grpc.ChainStub(channel)
            previous = 0
            for h in range(1, exp.tasks + 1):
                reply = await chain.GetHeight(queries_pb2.HeightRequest(height=h), timeout=10.0)
                kb = encoding.from_proto(KeyBlock, reply.key_block)
                mbs = [encoding.from_proto(MiniBlock, m) for m in reply.miniblocks]
                ebs = {sha: eb for eb in (encoding.from_proto(EnsembleBlock, e) for e in reply.ensemble_blocks)
                       for sha in [eb.hash]}  # fmt: skip
                winner = ebs.get(kb.ranking[0].ensemble_block) if kb.ranking else None
                base = []
                for mb in mbs:
                    weights = await _model(chain, storage, mb)
                    if weights is not None:
                        base.append(
                            await asyncio.to_thread(worker.base_metric, mb.model_hash, weights, spec, net.test, metric)
                        )
                predicted = await _predict_accuracy(plan, net, kb.task_id)
                heights.append(
                    {
                        "height": h,
                        "task_id": kb.task_id.hex(),
                        "key_block": kb.hash.hex(),
                        "key_block_miner": kb.miner_id.hex(),
                        "round": kb.timestamp,
                        "interval_rounds": kb.timestamp - previous,
                        "ensemble_accuracy": kb.metric_best,
                        "predict_accuracy": predicted,
                        "base_accuracies": base,
                        "miniblocks_generated": len(mbs),
                        "miniblocks_used": len(winner.miniblocks) if winner else 0,
                    }
                )
                previous = kb.timestamp
            balances = {}
            for e in plan.nodes:
                request = queries_pb2.BalanceRequest(account=bytes.fromhex(e.node_id))
                balances[e.name] = int((await chain.GetBalance(request, timeout=10.0)).amount)
    finally:
        await storage.close()
    public = await asyncio.to_thread(worker.fit_plain, spec, net.public, exp.seed)
    all_base = [a for h in heights for a in h["base_accuracies"]]
    return {
        "config": dict(exp.raw),
        "seed": exp.seed,
        "driver": "live",
        "round_seconds": plan.round_seconds,
        "heights": heights,
        "ensemble_accuracy": float(np.mean([h["ensemble_accuracy"] for h in heights])) if heights else 0.0,
        "base_accuracy": {
            "min": min(all_base, default=0.0),
            "mean": float(np.mean(all_base)) if all_base else 0.0,
            "max": max(all_base, default=0.0),
        },
        "public_accuracy": worker.base_metric(sha256(public), public, spec, net.test, metric),
        "miniblock_wastage": float(np.mean([h["miniblocks_generated"] - h["miniblocks_used"] for h in heights]))
        if heights
        else 0.0,
        "key_block_interval_rounds": float(np.mean([h["interval_rounds"] for h in heights])) if heights else 0.0,
        "balances": balances,
    }


async def _model(chain: queries_pb2_grpc.ChainStub, storage: StorageClient, mb: MiniBlock) -> bytes | None:
    """A MiniBlock's base model, located by the observer and read from storage, checked against its ModelHash."""
    try:
        where = await chain.GetModel(queries_pb2.ModelLocationRequest(model_hash=mb.model_hash), timeout=10.0)
    except grpc.aio.AioRpcError:
        return None  # the observer never fetched it (e.g. its miner died before serving it)
    weights = await storage.get(where.cid)
    return weights if model_hash(weights, mb.miner_id) == mb.model_hash else None


async def _predict_accuracy(plan: NetworkPlan, net: Network, task_id: bytes) -> float | None:
    """Accuracy on D_E of the requester's Predict answer: the winning ensemble as served to its user."""
    X, y = net.test.X, net.test.y
    request = queries_pb2.PredictRequest(
        task_id=task_id, rows=len(X), features=X.shape[1], samples=np.ascontiguousarray(X, "<f4").tobytes()
    )
    async with insecure_channel(plan.node("requester").listen) as channel:
        try:
            reply = await queries_pb2_grpc.RequesterStub(channel).Predict(request, timeout=60.0)
        except grpc.aio.AioRpcError:
            return None
    return float(np.mean(np.asarray(reply.labels) == y))


def results_table(results: Mapping[str, Any], title: str) -> Table:
    """One row per task: ensemble accuracy on D_E (as ranked, and as Predict serves it), base accuracies on D_E,
    MiniBlocks used and wasted, and the wall time since the previous Key Block (the first counts start-up)."""
    seconds = float(results["round_seconds"])
    table = Table(title=title, padding=(0, 0))
    for name in ("Height", "Task", "Ensemble", "Predict", "Base min~max", "MBs used/wasted", "KB after"):
        table.add_column(name, justify="left" if name == "Task" else "right", no_wrap=True)
    for row in results["heights"]:
        base = row["base_accuracies"]
        wasted = row["miniblocks_generated"] - row["miniblocks_used"]
        predicted = row["predict_accuracy"]
        table.add_row(
            str(row["height"]),
            row["task_id"][:8],
            f"{100 * row['ensemble_accuracy']:.2f}%",
            "-" if predicted is None else f"{100 * predicted:.2f}%",
            f"{100 * min(base):.1f}~{100 * max(base):.1f}%" if base else "-",
            f"{row['miniblocks_used']}/{wasted}",
            f"{row['interval_rounds'] * seconds:.1f} s",
        )
    table.caption = (
        f"mean ensemble {100 * results['ensemble_accuracy']:.2f}%"
        f" · public model {100 * results['public_accuracy']:.2f}%"
        f" · wall {results.get('wall_seconds', 0):.0f} s"
    )
    return table


async def up(options: UpOptions, console: Console, on_progress: Callable[[int, int], None]) -> dict[str, Any]:
    """Start the network, wait for every task's Key Block, collect the results, and stop everything."""
    started = time.perf_counter()
    network = LiveNetwork(options, console)
    try:
        plan = await network.start()
        await network.wait_for_tasks(on_progress)
        observer = next((e.name for e in plan.nodes if e.role == "validator"), "miner-0")
        results = await collect_results(network, observer)
        statuses = await network.statuses()
        results["tips_agree"] = len({s.tip for s in statuses.values() if s is not None and s.role != "requester"}) == 1
        results["rejections"] = {n: dict(s.rejections) for n, s in statuses.items() if s is not None and s.rejections}
    finally:
        codes = network.stop()
    results["exit_codes"] = codes
    results["wall_seconds"] = time.perf_counter() - started
    (options.out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    return results
