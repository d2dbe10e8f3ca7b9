"""`chainlab up`: a whole protocol network on 127.0.0.1 — storage, a sidecar per node, the nodes — as processes or
containers (runtimes.py), watched until done, its results read, then stopped."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console

from chainlab.live.chaos import LiveChaos
from chainlab.live.driver import RoundClock
from chainlab.live.netem import control
from chainlab.live.plan import NetworkPlan
from chainlab.live.planning import network_plan, node_entries, upload_datasets, write_plan
from chainlab.live.processes import free_ports, remember
from chainlab.live.readout import node_status, node_statuses, read_results
from chainlab.live.runtimes import DEFAULT_IMAGE_TAG, DockerRuntime, ProcessRuntime, Runtime
from chainlab.live.server import insecure_channel
from chainlab.live.storage_client import StorageClient
from chainlab.monitoring.panel_check import PanelReport, Window, check_panels, print_report
from chainlab.monitoring.plots import write_run_plots
from chainlab.monitoring.prometheus import PrometheusClient, PrometheusServer, ScrapeTarget
from chainlab.proto.v1 import node_pb2
from chainlab.scenarios import chaos, registry
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.results import Results

STATE_FILE = "processes.json"
NETEM_STATS_FILE = "netem_stats.json"
MONITOR_STATE_FILE = "monitor.json"  # a Prometheus left running by --keep-monitor, for `chainlab down`
HEALTH_TIMEOUT_SECONDS = 60.0
DURING_GRACE_SECONDS = 120.0  # how long `during` work may run on after the network has finished
CATCH_UP_GRACE_SECONDS = 60.0  # how long a finished network waits for a restarted or healed node to catch up
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
    kill: str | None = None  # a node to SIGKILL mid-run, kill_after_seconds after the network is up (one more
    kill_after_seconds: float = 0.0  # chaos action, after the experiment's own `chaos:` scenario)
    monitor: bool = False  # run Prometheus on loopback, scraping every service, and plot the run from it
    keep_monitor: bool = False  # leave that Prometheus running after the network stops
    runtime: str = "process"  # "process" or "docker" (every service in its container, from `make images`)
    image_tag: str = DEFAULT_IMAGE_TAG


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
        self.runtime = self._runtime()
        self.plan: NetworkPlan | None = None
        self.plan_path = options.out / "plan.json"
        self.prometheus: PrometheusServer | None = None
        self._targets: dict[str, ScrapeTarget] = {}
        self.began = time.time()  # wall time: the start of the window plots and panel checks look at
        self.chaos: LiveChaos | None = None

    def _runtime(self) -> Runtime:
        """Processes, or containers of the chainlab images (as the chart's pods run them)."""
        options = self.options
        if options.runtime == "docker":
            run_id = hashlib.sha256(str(options.out.resolve()).encode()).hexdigest()[:8]
            return DockerRuntime(options.out, run_id, options.image_tag, options.ipfs_api)
        seed = options.experiment.seed
        return ProcessRuntime(options.out, options.round_seconds, seed, options.ipfs_api, STATE_FILE)

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
        actions = chaos.scenario(exp)
        chaos.check_names(actions, [slot.name for slot in deployment.slots])
        later = [t for t in actions if isinstance(t.action, chaos.Byzantine) and t.at != chaos.At(round=0)]
        if later:
            # The plan gives a node its behaviour when it starts; a live node cannot switch in flight.
            raise ValueError(f"chaos: {later[0].describe()}: live, a byzantine action must be at round 0")
        storage_port, storage_metrics = free_ports(2)
        storage = f"127.0.0.1:{storage_port}"
        self.runtime.start_storage(storage_port, storage_metrics)
        await self._healthy("storage", storage)
        client = StorageClient(storage)
        try:
            data = await upload_datasets(deployment.data, client)
        finally:
            await client.close()
        entries = node_entries(deployment.slots)
        plan, layout = network_plan(
            exp, deployment, entries, storage, data, self.options.round_seconds, self.options.topology
        )
        write_plan(plan, layout, out)
        self.plan = plan
        observer = self.spec.observer(deployment.slots).name
        phase_start = functools.partial(self.spec.phase_start, exp)
        self.chaos = LiveChaos(actions, plan, self.runtime, phase_start, observer, self.console.log)
        self._targets = scrape_targets(plan, storage_metrics, self.spec.name)
        if self.prometheus is not None:
            self.prometheus.set_targets(list(self._targets.values()))
        for e in entries:
            self.runtime.start_netem(e)
        await asyncio.gather(*(self._healthy(f"netem-{e.name}", e.sidecar) for e in entries))
        for role in self.spec.roles:
            group = [e for e in entries if e.role == role]
            for e in group:
                self.runtime.start_node(e)
            await asyncio.gather(*(self._healthy(e.name, e.listen) for e in group))
        self.console.log(f"network up: {len(entries)} nodes, storage at {storage}; logs in {out / 'logs'}")
        self.console.print("metrics endpoints:")
        for name, target in self._targets.items():
            self.console.print(f"  {name:<18} http://{target.address}/metrics")
        return plan

    async def _healthy(self, name: str, address: str) -> None:
        try:
            await wait_healthy(address, alive=lambda: self.runtime.alive(name))
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{name} did not start: {exc}\n{self.runtime.log_tail(name)}") from exc

    async def wait_until_finished(self, on_progress: Callable[[int, int], None]) -> None:
        """Until the spec says the network has done its work (or the timeout: TimeoutError)."""
        assert self.plan is not None
        exp = self.options.experiment
        deadline = time.monotonic() + self.options.timeout_seconds
        clock = RoundClock(self.options.round_seconds, self.plan.epoch)
        assert self.chaos is not None
        if self.options.kill:
            after = math.ceil(self.options.kill_after_seconds / self.options.round_seconds)
            at = chaos.At(round=clock.now() + after)
            self.chaos.add(chaos.TimedAction(len(self.chaos.clock.effects), at, chaos.Kill(self.options.kill)))
        catch_up_deadline: float | None = None
        while time.monotonic() < deadline:
            answered = {name: r for name, r in (await self.statuses()).items() if r is not None}
            statuses = [node_status(r) for r in answered.values()]
            await self.chaos.step(clock.now(), {name: int(r.height) for name, r in answered.items()})
            round_ = max((r.round for r in answered.values()), default=0)
            on_progress(self.spec.progress(max((s.height for s in statuses), default=0), round_), round_)
            # Done when the protocol says so and the scenario has nothing left to do by the clock, and a restarted
            # or healed node has caught up (its process may still be starting) or been given CATCH_UP_GRACE_SECONDS.
            if self.spec.finished(exp, statuses) and not self.chaos.clock.waits_for_a_round():
                if not self.chaos.clock.watching():
                    return
                catch_up_deadline = catch_up_deadline or time.monotonic() + CATCH_UP_GRACE_SECONDS
                if time.monotonic() >= catch_up_deadline:
                    self.console.log("chaos: a restarted or healed node has not caught up; stopping all the same")
                    return
            await asyncio.sleep(max(0.2, self.options.round_seconds))
        raise TimeoutError(f"{exp.name} not finished within {self.options.timeout_seconds:.0f} s")

    async def statuses(self) -> dict[str, node_pb2.NodeStatus | None]:
        """Each node's Status (None for a node that does not answer: killed or stopping)."""
        assert self.plan is not None
        return await node_statuses(self.plan)

    async def results(self, truncated: bool, started: float) -> Results:
        """results.json read from the network (readout.read_results), timed from `started` (perf_counter)."""
        assert self.plan is not None
        wall = time.perf_counter() - started
        seconds = self.options.round_seconds
        results = await read_results(self.plan, truncated=truncated, wall_seconds=wall, round_seconds=seconds)
        if self.chaos is not None:
            heights = {name: int(r.height) for name, r in (await self.statuses()).items() if r is not None}
            results["chaos"] = self.chaos.report(heights)
        return results

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
        return self.runtime.stop()


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
