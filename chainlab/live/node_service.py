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

from chainlab.learning.datasets import Dataset, decode_dataset
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
        rejections = self.live.deliver(bytes(request.origin), bytes(request.payload))
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
            protocol_cpu_seconds=self.live.protocol_seconds,
            codec_cpu_seconds=self.live.codec_seconds,
            process_cpu_seconds=self.live.process_seconds,
            ml_seconds=self.live.ml_seconds,
        )


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
) -> LiveNode:
    """The node of `entry` with the data it holds from the start (from storage, by CID), in a LiveNode."""
    exp = plan.exp()
    node = spec.node(exp, plan.payload, entry.slot)
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
    )


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


async def run_node(plan: NetworkPlan, entry: NodeEntry, listen: str, stop: asyncio.Event) -> None:
    """Serve one node until `stop` is set, then stop gracefully; raises if the node's event loop failed."""
    spec = registry.get(plan.exp().protocol_name)
    storage = StorageClient(plan.storage)
    transport = SidecarTransport(entry.sidecar)
    observer = MetricsObserver(spec)
    live = await build_live_node(spec, plan, entry, storage, transport, observer)
    describe_node(spec, entry, live)
    await asyncio.to_thread(lambda: spec.warm_up(plan.exp(), live.worker(), list(live.datasets.values())))
    async with running_server(entry.role, listen, lambda server: register_servicers(server, spec, live, observer)):
        runner = asyncio.create_task(live.run())
        publisher = asyncio.create_task(publish_status(live))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([runner, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        publisher.cancel()
        failed = runner.exception() if runner.done() else None
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    await transport.close()
    await storage.close()
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
        await run_node(plan, entry, listen, stop_event_on_signals())

    asyncio.run(run())
