"""A protocol node as a service: the LiveNode behind gRPC servicers, fed by its netem sidecar, data from storage.

Protocol-neutral: the plan names the protocol, the registry gives its spec, the spec builds the node, and the
spec's live adapter (loaded by name) adds the protocol's own servicers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2

from chainlab.learning.datasets import Dataset, decode_dataset
from chainlab.ledger.hashing import sha256
from chainlab.ledger.store import BlockStore, SqliteBlockStore
from chainlab.live import adapters, metrics
from chainlab.live.driver import LiveNode, RoundClock
from chainlab.live.logs import configure_logging
from chainlab.live.metrics import GOSSIP_BYTES, GOSSIP_MESSAGES, serve_metrics
from chainlab.live.netem_transport import SidecarTransport
from chainlab.live.observer import MetricsObserver
from chainlab.live.plan import NetworkPlan, NodeEntry, bind_address
from chainlab.live.rounds import resolve_round_seconds
from chainlab.live.server import add_service_arguments, running_server, stop_event_on_signals
from chainlab.live.storage_client import StorageClient
from chainlab.network.wire_bytes import WireBytes
from chainlab.proto.v1 import netem_pb2, node_pb2, node_pb2_grpc
from chainlab.protocols.errors import invalid, unavailable
from chainlab.scenarios import registry
from chainlab.scenarios.base import ProtocolSpec

log = logging.getLogger("chainlab.node")

# The default bound on a gossip or Send message: BagChain's carry blocks only (weights go through storage), so
# anything bigger is an attack. A protocol that carries weights in messages raises it (spec.max_message_mb).
MAX_GOSSIP_BYTES = 1024 * 1024
START_TIMEOUT_SECONDS = 10.0
STATUS_EVERY_SECONDS = 0.5
# Always answered, even while catching up: the sidecar delivers through Peer, and Node says the node is syncing.
ALWAYS_SERVING = ("chainlab.v1.Peer", "chainlab.v1.Node")


class PeerServicer(node_pb2_grpc.PeerServicer):
    """What the node's own sidecar calls: gossip delivery and fetches."""

    def __init__(self, live: LiveNode, max_bytes: int = MAX_GOSSIP_BYTES) -> None:
        self.live = live
        self.max_bytes = max_bytes

    async def Deliver(self, request: netem_pb2.Envelope, context: grpc.aio.ServicerContext) -> node_pb2.DeliverReply:
        """Hand a gossip message to the node; a rejection answers INVALID_ARGUMENT naming its reason."""
        GOSSIP_MESSAGES.labels("in").inc()
        GOSSIP_BYTES.labels("in").inc(len(request.payload))
        if len(request.payload) > self.max_bytes:
            self.live.observe_rejection("message", "oversized", f"{len(request.payload)} bytes")
            raise invalid("oversized", f"{len(request.payload)} bytes > {self.max_bytes}")
        await self._started()
        rejections = self.live.deliver(
            bytes(request.origin), bytes(request.payload), request.size_mb, request.payload_mb
        )
        if rejections:
            first = rejections[0]
            detail = first.get("detail")
            raise invalid(str(first["reason"]), f"{first['kind']}: {detail}" if detail else str(first["kind"]))
        return node_pb2.DeliverReply()

    async def Serve(self, request: netem_pb2.FetchRequest, context: grpc.aio.ServicerContext) -> netem_pb2.FetchReply:
        """Answer a peer's Fetch with a CID in storage, or found=false."""
        await self._started()
        answer = await self.live.serve(bytes(request.origin), request.kind, bytes(request.payload))
        return netem_pb2.FetchReply(found=answer is not None, answer=answer or b"")

    async def _started(self) -> None:
        """A node takes no input before start(): the server may be up a moment earlier."""
        try:
            await asyncio.wait_for(self.live.started.wait(), START_TIMEOUT_SECONDS)
        except TimeoutError:
            raise unavailable("not_started", "the node has not started yet") from None


class NodeServicer(node_pb2_grpc.NodeServicer):
    """Status of any node."""

    def __init__(self, live: LiveNode, observer: MetricsObserver, protocol: str) -> None:
        self.live = live
        self.observer = observer
        self.protocol = protocol

    async def Status(self, request: node_pb2.StatusRequest, context: grpc.aio.ServicerContext) -> node_pb2.NodeStatus:
        """Protocol, role, round, height, tip, forks and rejection counts."""
        status = self.live.node.status()
        return node_pb2.NodeStatus(
            node_id=self.live.node.node_id,
            role=status.role,
            round=self.live.clock.now(),
            height=status.height,
            tip=status.tip,
            rejections=dict(self.observer.rejections),
            protocol=self.protocol,
            forks=status.forks,
            votes=status.votes,
            internal_errors=self.observer.internal_errors,
            done=status.done,
            syncing=status.syncing,
            protocol_cpu_seconds=self.live.protocol_seconds,
            codec_cpu_seconds=self.live.codec_seconds,
            process_cpu_seconds=self.live.process_seconds,
            ml_seconds=self.live.ml_seconds,
            wire=wire_status(self.live.wire),
        )


def wire_status(wire: WireBytes[str]) -> node_pb2.WireBytes:
    """A node's wire tally as its Status reports it."""
    return node_pb2.WireBytes(payload=wire.payload, control=wire.control, served=wire.served, sent_by=wire.sent_by)


async def _dataset(storage: StorageClient, plan: NetworkPlan, name: str) -> Dataset:
    if name not in plan.data:
        raise ValueError(f"the plan names no dataset {name!r} (has: {', '.join(sorted(plan.data))})")
    return await asyncio.to_thread(decode_dataset, await storage.get(plan.data[name]))


async def build_live_node(
    spec: ProtocolSpec,
    plan: NetworkPlan,
    entry: NodeEntry,
    storage: StorageClient,
    transport: SidecarTransport,
    observer: MetricsObserver,
    state: BlockStore | None = None,
) -> LiveNode:
    """The node of `entry` with the data it holds from the start (from storage, by CID), in a LiveNode restored from
    its store (`state`; in memory, so empty, when not given)."""
    exp = plan.exp()
    node = spec.node(exp, plan.payload, entry.slot)
    if entry.name in plan.behaviours:
        node = spec.byzantine(node, plan.behaviours[entry.name])
        log.warning("byzantine", extra={"behaviour": plan.behaviours[entry.name]})
    held = [await _dataset(storage, plan, name) for name in plan.holdings.get(entry.name, [])]
    private_name = plan.private.get(entry.name)
    private = await _dataset(storage, plan, private_name) if private_name else None
    round_seconds, source = resolve_round_seconds(None, plan.round_seconds)
    log.info("round length", extra={"round_seconds": round_seconds, "source": source})
    return LiveNode(
        node,
        plan.nodes.index(entry),
        spec.codec,
        transport,
        storage,
        RoundClock(round_seconds, plan.epoch),
        datasets={d.commitment(): d for d in held},
        private=private,
        hash_trials_per_round=exp.work.hash_trials_per_round,
        observe=observer,
        state=state,
    )


def state_owner(plan: NetworkPlan, entry: NodeEntry) -> bytes:
    """Whose state a store holds: this node's ID and the network (its payload, i.e. genesis and tasks, and its round
    0), so that a state directory is never restored into another node, or into another run of the same config."""
    payload = ",".join(f"{k}={v}" for k, v in sorted(plan.payload.items())).encode()
    return bytes.fromhex(entry.node_id) + sha256(payload, repr(plan.epoch).encode())


def open_state(directory: Path, plan: NetworkPlan, entry: NodeEntry) -> SqliteBlockStore:
    """The node's SQLite store in its state directory (created on first use)."""
    return SqliteBlockStore.in_directory(directory, state_owner(plan, entry))


async def watch_readiness(
    live: LiveNode, servicer: health.aio.HealthServicer, names: list[str], every_seconds: float = STATUS_EVERY_SECONDS
) -> None:
    """Health follows the node: its query services (and the server as a whole) are NOT_SERVING while it catches up,
    so that probes and clients look elsewhere; Peer and Node always serve."""
    shown: bool | None = None
    while True:
        ready = not live.node.status().syncing
        if ready != shown:
            code = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", *(n for n in names if n not in ALWAYS_SERVING)):
                await servicer.set(name, code)
            if shown is not None or not ready:
                log.info("readiness", extra={"ready": ready, "height": live.node.status().height})
            shown = ready
        await asyncio.sleep(every_seconds)


def register_servicers(
    server: grpc.aio.Server, spec: ProtocolSpec, live: LiveNode, observer: MetricsObserver
) -> list[str]:
    """Peer and Node for every node, then the protocol adapter's servicers; their full names (for health)."""
    max_bytes = round(spec.max_message_mb * MAX_GOSSIP_BYTES)
    node_pb2_grpc.add_PeerServicer_to_server(PeerServicer(live, max_bytes), server)
    node_pb2_grpc.add_NodeServicer_to_server(NodeServicer(live, observer, spec.name), server)
    names = ["chainlab.v1.Peer", "chainlab.v1.Node"]
    if spec.live_adapter is not None:
        names += adapters.load(spec.live_adapter).register(server, live)
    return names


def describe_node(spec: ProtocolSpec, entry: NodeEntry, live: LiveNode) -> None:
    """Export what this process runs (chainlab_node_info) and its CPU split, read at each scrape."""
    metrics.NODE_INFO.info({"protocol": spec.name, "role": entry.role, "node": entry.name})
    metrics.PROTOCOL_CPU.set_function(lambda: live.protocol_seconds)
    metrics.CODEC_CPU.set_function(lambda: live.codec_seconds)
    metrics.POW_CPU.set_function(lambda: live.pow_seconds)
    metrics.PROCESS_CPU.set_function(lambda: live.process_seconds)
    metrics.ML_SECONDS.set_function(lambda: live.ml_seconds)
    metrics.WIRE_BYTES.labels("payload").set_function(lambda: live.wire.payload)
    metrics.WIRE_BYTES.labels("control").set_function(lambda: live.wire.control)
    metrics.WIRE_BYTES.labels("served").set_function(lambda: live.wire.served)


async def publish_status(live: LiveNode, every_seconds: float = STATUS_EVERY_SECONDS) -> None:
    """Copy the node's status into gauges on its own event loop, so a scrape never reads state mid-change."""
    shown: str | None = None
    while True:
        status = live.node.status()
        metrics.CHAIN_HEIGHT.set(status.height)
        metrics.CHAIN_FORKS.set(status.forks)
        metrics.ROUND.set(live.clock.now())
        tip = status.tip.hex()[:16] if status.votes else None
        if tip != shown:
            if shown is not None:
                metrics.CHAIN_TIP.remove(shown)
            if tip is not None:
                metrics.CHAIN_TIP.labels(tip).set(1)
            shown = tip
        await asyncio.sleep(every_seconds)


async def run_node(
    plan: NetworkPlan, entry: NodeEntry, listen: str, stop: asyncio.Event, state_dir: Path | None = None
) -> None:
    """Serve one node until `stop` is set, then stop gracefully; raises if the node's event loop failed. With
    state_dir the node keeps its state there and, restarted on it, comes back with it (then catches up)."""
    spec = registry.get(plan.exp().protocol_name)
    storage = StorageClient(plan.storage)
    transport = SidecarTransport(entry.sidecar)
    observer = MetricsObserver(spec)
    state = open_state(state_dir, plan, entry) if state_dir is not None else None
    live = await build_live_node(spec, plan, entry, storage, transport, observer, state)
    restored = live.restore()
    log.info("state", extra={"state_dir": str(state_dir or ""), "records": restored})
    describe_node(spec, entry, live)
    await asyncio.to_thread(lambda: spec.warm_up(plan.exp(), live.worker(), list(live.datasets.values())))
    names: list[str] = []

    def register(server: grpc.aio.Server) -> list[str]:
        names.extend(register_servicers(server, spec, live, observer))
        return names

    async with running_server(entry.role, listen, register) as running:
        runner = asyncio.create_task(live.run())
        publisher = asyncio.create_task(publish_status(live))
        readiness = asyncio.create_task(watch_readiness(live, running.health, names))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([runner, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        publisher.cancel()
        readiness.cancel()
        failed = runner.exception() if runner.done() else None
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    await transport.close()
    await storage.close()
    live.state.close()
    if failed is not None:
        raise RuntimeError(f"{entry.name}: the node stopped on an error") from failed


def main(role: str, argv: list[str] | None = None) -> None:
    """Console entry point of the node services (miner, validator, requester, ...)."""
    parser = argparse.ArgumentParser(prog=f"chainlab-{role}", description=f"The chainlab {role} service.")
    add_service_arguments(parser, default_listen=None)  # None: the address the plan gives this node
    env = os.environ.get
    parser.add_argument("--plan", type=Path, default=env("CHAINLAB_PLAN"), help="the plan `chainlab up` writes")
    parser.add_argument("--name", default=env("CHAINLAB_NAME"), help=f"this node's name in the plan, e.g. {role}-0")
    parser.add_argument("--index", default=env("CHAINLAB_INDEX"), help="without --name: this node's index in its role")
    parser.add_argument(
        "--listen-host",
        default=env("CHAINLAB_LISTEN_HOST"),
        help="listen on this host at the plan's port (default: the plan's address itself)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=env("CHAINLAB_STATE_DIR"),
        help="keep the node's state (a SQLite file) in this directory and restore it on restart (default: memory)",
    )
    args = parser.parse_args(argv)
    if args.plan is None:
        parser.error("--plan (or CHAINLAB_PLAN) is required")
    plan = NetworkPlan.load(args.plan)
    try:
        entry = plan.find(args.name, role, args.index)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(f"{role}:{entry.name}", args.log_level)
    if entry.role != role:
        parser.error(f"{args.name} is a {entry.role}, not a {role}")
    metrics_port = args.metrics_port or entry.metrics_port
    serve_metrics(metrics_port, args.metrics_host)
    listen = args.listen or bind_address(entry.listen, args.listen_host)

    async def run() -> None:
        await run_node(plan, entry, listen, stop_event_on_signals(), args.state)

    asyncio.run(run())
