"""`chainlab up`: a whole protocol network as processes on 127.0.0.1 — storage, a sidecar per node, the nodes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console

from chainlab.learning.datasets import Dataset, decode_dataset, encode_dataset
from chainlab.learning.worker import Worker
from chainlab.live import adapters
from chainlab.live.netem import control
from chainlab.live.netem import topology as topo
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.processes import ProcessGroup, free_ports, remember
from chainlab.live.rounds import ROUND_SECONDS_ENV
from chainlab.live.server import insecure_channel
from chainlab.live.storage_client import StorageClient
from chainlab.monitoring.panel_check import PanelReport, Window, check_panels, print_report
from chainlab.monitoring.plots import write_run_plots
from chainlab.monitoring.prometheus import PrometheusClient, PrometheusServer, ScrapeTarget
from chainlab.proto.v1 import node_pb2, node_pb2_grpc
from chainlab.protocols.base import NodeStatus
from chainlab.scenarios import registry
from chainlab.scenarios.base import NodeSlot
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.results import Results, assemble

STATE_FILE = "processes.json"
NETEM_STATS_FILE = "netem_stats.json"
MONITOR_STATE_FILE = "monitor.json"  # a Prometheus left running by --keep-monitor, for `chainlab down`
HEALTH_TIMEOUT_SECONDS = 60.0
DURING_GRACE_SECONDS = 120.0  # how long `during` work may run on after the network has finished
PANEL_STEP_SECONDS = 2.0


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
    monitor: bool = False  # run Prometheus on loopback, scraping every service, and plot the run from it
    keep_monitor: bool = False  # leave that Prometheus running after the network stops


def node_entries(slots: list[NodeSlot]) -> list[NodeEntry]:
    """Fresh loopback ports for every node and its sidecar, in deployment (graph vertex) order."""
    ports = free_ports(4 * len(slots))
    entries = []
    for k, slot in enumerate(slots):
        listen, sidecar, metrics, sidecar_metrics = ports[4 * k : 4 * k + 4]
        entries.append(
            NodeEntry(
                slot.name,
                slot.role,
                slot.index,
                slot.node_id.hex(),
                f"127.0.0.1:{listen}",
                f"127.0.0.1:{sidecar}",
                metrics,
                sidecar_metrics,
            )
        )
    return entries


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


def scrape_targets(plan: NetworkPlan, storage_metrics_port: int, protocol: str) -> dict[str, ScrapeTarget]:
    """Every service's metrics endpoint as a Prometheus target, by process name.

    The target labels (service, protocol, role, node, run) go onto every series at scrape time, so any metric
    splits by protocol or node without a join; a sidecar carries the labels of the node it serves.
    """
    run = str(plan.experiment.get("name", ""))

    def target(port: int, service: str, role: str, node: str) -> ScrapeTarget:
        labels = {"service": service, "protocol": protocol, "role": role, "node": node, "run": run}
        return ScrapeTarget(f"127.0.0.1:{port}", labels)

    targets = {"storage": target(storage_metrics_port, "storage", "storage", "storage")}
    targets |= {e.name: target(e.metrics_port, e.role, e.role, e.name) for e in plan.nodes}
    targets |= {f"netem-{e.name}": target(e.sidecar_metrics_port, "netem", e.role, e.name) for e in plan.nodes}
    return targets


class LiveNetwork:
    """A running network: its processes, plan, and clients for watching it."""

    def __init__(self, options: UpOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.spec = registry.get(options.experiment.protocol_name)
        options.out.mkdir(parents=True, exist_ok=True)
        self.processes = ProcessGroup(options.out / STATE_FILE, options.out / "logs")
        self.plan: NetworkPlan | None = None
        self.plan_path = options.out / "plan.json"
        self.prometheus: PrometheusServer | None = None
        self._targets: dict[str, ScrapeTarget] = {}
        self.began = time.time()  # wall time: the start of the window plots and panel checks look at

    @property
    def prometheus_url(self) -> str | None:
        """The run's Prometheus, when monitoring."""
        return self.prometheus.url if self.prometheus is not None else None

    def start_monitor(self) -> str:
        """Start Prometheus on loopback for this run (targets follow as services start); returns its URL."""
        self.prometheus = PrometheusServer(self.options.out / "prometheus")
        url = self.prometheus.start()
        self.console.log(f"Prometheus at {url} (config {self.options.out / 'prometheus' / 'prometheus.yml'})")
        return url

    def add_scrape_target(self, name: str, address: str, labels: dict[str, str]) -> None:
        """Scrape one more endpoint (e.g. a load generator) when monitoring; the run's labels are added."""
        if self.prometheus is None:
            return
        assert self.plan is not None
        run = {"protocol": self.spec.name, "run": str(self.plan.experiment.get("name", ""))}
        self._targets[name] = ScrapeTarget(address, {**run, **labels})
        self.prometheus.set_targets(list(self._targets.values()))

    async def start(self) -> NetworkPlan:
        """Storage, data into storage, sidecars, then the nodes role by role in the spec's start order."""
        exp, out = self.options.experiment, self.options.out
        self.console.log(f"building the {self.spec.name} network of {exp.name} (dataset {exp.get('dataset')})")
        deployment = await asyncio.to_thread(self.spec.build, exp)
        if self.options.kill is not None:
            deployment.slot(self.options.kill)  # a typo is named now, not mid-run
        storage_port, storage_metrics = free_ports(2)
        storage = f"127.0.0.1:{storage_port}"
        args = ["--listen", storage, "--metrics-port", str(storage_metrics), "--repo", str(out / "ipfs")]
        if self.options.ipfs_api:
            args += ["--ipfs-api", self.options.ipfs_api]
        # The one setting every service shares (the storage service ignores it).
        env = {ROUND_SECONDS_ENV: str(self.options.round_seconds)}
        self.processes.start("storage", "services.storage.main", args, env)
        await self._healthy("storage", storage)
        data = await self._upload(deployment.data, storage)
        entries = node_entries(deployment.slots)
        topology = build_topology(self.options.topology, exp, entries, [slot.node_id for slot in deployment.slots])
        topo.dump_topology(topology, out / "topology.yaml")
        plan = NetworkPlan(
            experiment=dict(exp.raw),
            round_seconds=self.options.round_seconds,
            epoch=time.time(),
            storage=storage,
            nodes=entries,
            payload=deployment.payload,
            data=data,
            holdings={name: list(held) for name, held in deployment.holdings.items()},
            private=deployment.private,
        )
        plan.dump(self.plan_path)
        self.plan = plan
        self._targets = scrape_targets(plan, storage_metrics, self.spec.name)
        if self.prometheus is not None:
            self.prometheus.set_targets(list(self._targets.values()))
        for e in entries:
            args = ["--node-id", e.node_id, "--node", e.listen, "--topology", str(out / "topology.yaml")]
            args += ["--listen", e.sidecar, "--metrics-port", str(e.sidecar_metrics_port), "--seed", str(exp.seed)]
            self.processes.start(f"netem-{e.name}", "services.netem.main", args, env)
        await asyncio.gather(*(self._healthy(f"netem-{e.name}", e.sidecar) for e in entries))
        for role in self.spec.roles:
            group = [e for e in entries if e.role == role]
            for e in group:
                args = ["--plan", str(out / "plan.json"), "--name", e.name]
                self.processes.start(e.name, f"services.{e.role}.main", args, env)
            await asyncio.gather(*(self._healthy(e.name, e.listen) for e in group))
        self.console.log(f"network up: {len(entries)} nodes, storage at {storage}; logs in {out / 'logs'}")
        self.console.print("metrics endpoints:")
        for name, target in self._targets.items():
            self.console.print(f"  {name:<18} http://{target.address}/metrics")
        return plan

    async def _healthy(self, name: str, address: str) -> None:
        child = self.processes.get(name)
        try:
            await wait_healthy(address, alive=lambda: child.process.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            tail = child.log.read_text(errors="replace")[-2000:] if child.log.exists() else ""
            raise RuntimeError(f"{name} did not start: {exc}\n{tail}") from exc

    async def _upload(self, datasets: dict[str, Dataset], storage: str) -> dict[str, str]:
        """Every named dataset into storage, pinned; their CIDs by name."""
        client = StorageClient(storage)
        try:
            cids = {}
            for name, dataset in datasets.items():
                cids[name] = await client.put(await asyncio.to_thread(encode_dataset, dataset), pin=True)
            return cids
        finally:
            await client.close()

    async def wait_until_finished(self, on_progress: Callable[[int, int], None]) -> None:
        """Until the spec says the network has done its work (or the timeout: TimeoutError)."""
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
            replies = [r for r in (await self.statuses()).values() if r is not None]
            statuses = [node_status(r) for r in replies]
            round_ = max((r.round for r in replies), default=0)
            on_progress(self.spec.progress(max((s.height for s in statuses), default=0), round_), round_)
            if self.spec.finished(exp, statuses):
                return
            await asyncio.sleep(max(0.2, self.options.round_seconds))
        raise TimeoutError(f"{exp.name} not finished within {self.options.timeout_seconds:.0f} s")

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

    async def results(self, truncated: bool, started: float) -> Results:
        """results.json read from the network: statuses of every node, the observer's chain, data from storage."""
        assert self.plan is not None
        plan, exp = self.plan, self.options.experiment
        replies = await self.statuses()
        statuses = {name: node_status(r) for name, r in replies.items() if r is not None}
        observer = plan.node(self.spec.observer([e.slot for e in plan.nodes]).name)
        worker = Worker()
        protocol_results: dict[str, object] = {}
        if observer.name in statuses:
            storage = StorageClient(plan.storage)
            try:
                # Without an adapter, the observer's Status is the whole view (as a sim_view of observer.status()).
                view: object = statuses[observer.name]
                if self.spec.live_adapter is not None:
                    view = await adapters.load(self.spec.live_adapter).read_view(plan, observer, storage)
                data = {}
                for name in self.spec.summary_data:
                    data[name] = await asyncio.to_thread(decode_dataset, await storage.get(plan.data[name]))
            finally:
                await storage.close()
            protocol_results = await asyncio.to_thread(self.spec.summarise, exp, view, data, worker)
        return assemble(
            exp,
            driver="live",
            statuses=statuses,
            observer=observer.name,
            rejections={name: dict(r.rejections) for name, r in replies.items() if r is not None},
            internal_errors={name: r.internal_errors for name, r in replies.items() if r is not None},
            protocol_results=protocol_results,
            truncated=truncated,
            rounds=max((r.round for r in replies.values() if r is not None), default=0),
            wall_seconds=time.perf_counter() - started,
            ml_seconds=worker.ml_seconds + sum(r.ml_seconds for r in replies.values() if r is not None),
            round_seconds=self.options.round_seconds,
            cpu={name: node_cpu(r) for name, r in replies.items() if r is not None},
        )

    async def save_netem_stats(self) -> None:
        """Every sidecar's per-link stats (hop delays applied, per message) into <out>/netem_stats.json."""
        assert self.plan is not None
        stats = {}
        for entry in self.plan.nodes:
            try:
                stats[entry.name] = MessageToDict(await control.stats(entry.sidecar))
            except grpc.aio.AioRpcError:
                continue  # a killed node's sidecar still answers; one that does not has nothing to add
        (self.options.out / NETEM_STATS_FILE).write_text(json.dumps(stats, indent=1, sort_keys=True))

    def stop(self) -> dict[str, int | None]:
        """Stop every process (SIGTERM, newest first); exit codes by name."""
        return self.processes.stop()


def node_status(reply: node_pb2.NodeStatus) -> NodeStatus:
    """A Status answer as the protocol-neutral NodeStatus."""
    return NodeStatus(reply.role, reply.height, bytes(reply.tip), forks=reply.forks, votes=reply.votes, done=reply.done)


def node_cpu(reply: node_pb2.NodeStatus) -> dict[str, float]:
    """A Status answer's CPU accounting: protocol core, wire codec, whole process, ML jobs."""
    return {
        "protocol_seconds": reply.protocol_cpu_seconds,
        "codec_seconds": reply.codec_cpu_seconds,
        "process_seconds": reply.process_cpu_seconds,
        "ml_seconds": reply.ml_seconds,
    }


class UpFailed(RuntimeError):
    """`chainlab up` could not finish; results.json holds what was measured and says why."""


Hook = Callable[[LiveNetwork], Coroutine[Any, Any, None]]


def dashboard_check(dashboards: Path, console: Console, reports: list[PanelReport]) -> Hook:
    """An `after` hook: run every panel query of the dashboards in a folder over the whole run, print which
    panels have data, and append the report (for the exit code)."""

    async def check(network: LiveNetwork) -> None:
        if network.prometheus_url is None:
            raise RuntimeError("checking dashboards needs the run's Prometheus (monitor)")
        window = Window(network.began, time.time(), PANEL_STEP_SECONDS)
        client = PrometheusClient(network.prometheus_url)
        report = await asyncio.to_thread(check_panels, client, dashboards, window)
        print_report(report, console)
        reports.append(report)

    return check


async def up(
    options: UpOptions,
    console: Console,
    on_progress: Callable[[int, int], None],
    *,
    during: Hook | None = None,
    after: Hook | None = None,
) -> Results:
    """Start the network, wait until it is done, read the results from it, and stop everything.

    `during` starts once every service is healthy (load, run-time tasks) and is awaited after the network has
    finished, for at most DURING_GRACE_SECONDS; `after` runs once the results are read, while the services and
    Prometheus still run. With `monitor`, PNGs of the run drawn from Prometheus go next to results.json.
    On a timeout or a failed start, a partial results.json (truncated, with the error) is written all the same
    and UpFailed is raised.
    """
    started = time.perf_counter()
    network = LiveNetwork(options, console)
    results: Results = {}
    error: str | None = None
    side: asyncio.Task[None] | None = None
    try:
        if options.monitor:
            network.start_monitor()
        await network.start()
        if during is not None:
            side = asyncio.create_task(during(network))
        try:
            await network.wait_until_finished(on_progress)
            if side is not None:
                await asyncio.wait_for(asyncio.shield(side), DURING_GRACE_SECONDS)
            results = await network.results(truncated=False, started=started)
        except TimeoutError as exc:
            error = str(exc)
            results = await network.results(truncated=True, started=started)
        await network.save_netem_stats()
        if network.prometheus is not None:
            results["monitor"] = await _monitor_outputs(network)
        if after is not None:
            await after(network)
    except (RuntimeError, OSError, grpc.aio.AioRpcError) as exc:
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        results = {"truncated": True}
    finally:
        if side is not None and not side.done():
            side.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await side
        codes = network.stop()
        _stop_monitor(network, options, console)
    results["exit_codes"] = codes
    results["round_seconds"] = options.round_seconds
    results["wall_seconds"] = time.perf_counter() - started
    if error is not None:
        results["error"] = error
    (options.out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    if error is not None:
        raise UpFailed(error)
    return results


async def _monitor_outputs(network: LiveNetwork) -> dict[str, object]:
    """PNGs of the run from Prometheus range queries, written next to results.json; where they are."""
    assert network.prometheus is not None
    client = PrometheusClient(network.prometheus.url)
    plots = await asyncio.to_thread(write_run_plots, client, network.began, time.time(), network.options.out)
    network.console.log(f"plots from Prometheus: {', '.join(p.name for p in plots)}")
    return {"prometheus": network.prometheus.url, "plots": [p.name for p in plots]}


def _stop_monitor(network: LiveNetwork, options: UpOptions, console: Console) -> None:
    """Stop the run's Prometheus, or leave it to `chainlab down` with --keep-monitor."""
    if network.prometheus is None:
        return
    pid = network.prometheus.pid
    if options.keep_monitor and pid is not None:
        remember(options.out / MONITOR_STATE_FILE, {"prometheus": pid})
        url, out = network.prometheus.url, options.out
        console.print(f"Prometheus keeps running at {url}; `chainlab down --out {out}` stops it")
        return
    network.prometheus.stop()
