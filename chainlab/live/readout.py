"""Reading a running network through its services: every node's Status, the checks a deployment test makes,
and results.json through the one results pipeline. Needs only the plan, so it runs beside `chainlab up` and
inside a cluster alike."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import grpc

from chainlab.learning.datasets import decode_dataset
from chainlab.learning.worker import Worker
from chainlab.live import adapters
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.server import insecure_channel
from chainlab.live.storage_client import StorageClient
from chainlab.network.wire_bytes import WireBytes, wire_total
from chainlab.proto.v1 import node_pb2, node_pb2_grpc
from chainlab.protocols.base import NodeStatus
from chainlab.scenarios import registry
from chainlab.scenarios.results import Results, assemble

STATUS_TIMEOUT_SECONDS = 2.0

log = logging.getLogger("chainlab.readout")
T = TypeVar("T")


async def node_statuses(plan: NetworkPlan) -> dict[str, node_pb2.NodeStatus | None]:
    """Each node's Status by name (None for a node that does not answer: killed, stopping or not up yet)."""

    async def status(entry: NodeEntry) -> node_pb2.NodeStatus | None:
        async with insecure_channel(entry.listen) as channel:
            try:
                reply: node_pb2.NodeStatus = await node_pb2_grpc.NodeStub(channel).Status(
                    node_pb2.StatusRequest(), timeout=STATUS_TIMEOUT_SECONDS
                )
                return reply
            except grpc.aio.AioRpcError:
                return None

    replies = await asyncio.gather(*(status(e) for e in plan.nodes))
    return {e.name: r for e, r in zip(plan.nodes, replies, strict=True)}


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


def node_wire(reply: node_pb2.NodeStatus) -> WireBytes[str]:
    """A Status answer's wire tally: what reached that node, by kind and sender."""
    wire = reply.wire
    return WireBytes(wire.payload, wire.control, wire.served, dict(wire.sent_by))


def network_problems(replies: Mapping[str, node_pb2.NodeStatus | None], min_height: int, agree: bool) -> list[str]:
    """Why the network is not (yet) where a deployment test wants it; empty when it is.

    Every node must answer and be at min_height or above; with agree, every voting node must report one tip.
    """
    problems = [f"{name} does not answer" for name, reply in replies.items() if reply is None]
    answered = {name: reply for name, reply in replies.items() if reply is not None}
    low = {name: reply.height for name, reply in answered.items() if reply.height < min_height}
    problems += [f"{name} at height {height} < {min_height}" for name, height in low.items()]
    if agree:
        tips = {bytes(reply.tip).hex()[:16] for reply in answered.values() if reply.votes}
        if len(tips) > 1:
            problems.append(f"voting nodes disagree on the tip: {', '.join(sorted(tips))}")
    return problems


def observer_order(candidates: Sequence[str], replies: Mapping[str, node_pb2.NodeStatus | None]) -> list[str]:
    """The spec's observer candidates that answered Status, in the order to read them: voting nodes first (a node
    turned Byzantine does not vote, and its view is not the network's), then those caught up (a node still catching
    up holds only part of the chain), each group in the spec's order."""
    answered = {name: reply for name in candidates if (reply := replies.get(name)) is not None}
    return sorted(answered, key=lambda name: (not answered[name].votes, answered[name].syncing))


async def read_first(
    order: Sequence[NodeEntry], read: Callable[[NodeEntry], Awaitable[T]]
) -> tuple[NodeEntry, T] | None:
    """The first node of `order` whose view can be read, with that view; None when none can (each that fails,
    e.g. killed after it answered Status, is logged and the next is tried)."""
    for entry in order:
        try:
            return entry, await read(entry)
        except grpc.aio.AioRpcError as exc:
            log.warning("cannot read results from a node", extra={"node": entry.name, "code": exc.code().name})
    return None


async def read_results(
    plan: NetworkPlan, *, truncated: bool | None, wall_seconds: float, round_seconds: float
) -> Results:
    """results.json read from the network: statuses of every node, the view of the first of the spec's observer
    candidates that answers (results.json `observer` names it), data from storage.

    truncated None: decided by whether the protocol says the network has finished. When no candidate answers, the
    results are truncated, without protocol results, and `error` says so.
    """
    exp = plan.exp()
    spec = registry.get(exp.protocol_name)
    replies = await node_statuses(plan)
    statuses = {name: node_status(r) for name, r in replies.items() if r is not None}
    if truncated is None:
        truncated = not spec.finished(exp, list(statuses.values()))
    candidates = [slot.name for slot in spec.observers([e.slot for e in plan.nodes])]
    worker = Worker()
    protocol_results: dict[str, object] = {}
    storage = StorageClient(plan.storage)

    async def view_of(observer: NodeEntry) -> object:
        # Without an adapter, the observer's Status is the whole view (as a sim_view of observer.status()).
        if spec.live_adapter is None:
            return statuses[observer.name]
        return await adapters.load(spec.live_adapter).read_view(plan, observer, storage)

    try:
        found = await read_first([plan.node(name) for name in observer_order(candidates, replies)], view_of)
        if found is not None:
            data = {}
            for name in spec.summary_data:
                data[name] = await asyncio.to_thread(decode_dataset, await storage.get(plan.data[name]))
    finally:
        await storage.close()
    error = None
    if found is None:
        observer = candidates[0]
        error = f"no full node answered to read results from (tried {', '.join(candidates)})"
        log.error(error)
        truncated = True
    else:
        observer = found[0].name
        protocol_results = await asyncio.to_thread(spec.summarise, exp, found[1], data, worker)
    results = assemble(
        exp,
        driver="live",
        statuses=statuses,
        observer=observer,
        rejections={name: dict(r.rejections) for name, r in replies.items() if r is not None},
        internal_errors={name: r.internal_errors for name, r in replies.items() if r is not None},
        protocol_results=protocol_results,
        truncated=truncated,
        rounds=max((r.round for r in replies.values() if r is not None), default=0),
        wall_seconds=wall_seconds,
        ml_seconds=worker.ml_seconds + sum(r.ml_seconds for r in replies.values() if r is not None),
        round_seconds=round_seconds,
        cpu={name: node_cpu(r) for name, r in replies.items() if r is not None},
        wire_bytes=wire_total([node_wire(r) for r in replies.values() if r is not None], len(plan.nodes)),
    )
    if error is not None:
        results["error"] = error
    return results


def seconds_since_epoch(plan: NetworkPlan) -> float:
    """Wall seconds since the plan's round 0 (a reader that did not start the network)."""
    return max(0.0, time.time() - plan.epoch)
