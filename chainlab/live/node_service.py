"""A protocol node as a service: the LiveNode behind gRPC servicers, fed by its netem sidecar, data from storage."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from chainlab.learning.datasets import Dataset, decode_dataset
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.live import queries
from chainlab.live.driver import BadRequest, LiveNode, RoundClock
from chainlab.live.errors import invalid, unavailable
from chainlab.live.logs import configure_logging
from chainlab.live.metrics import GOSSIP_BYTES, GOSSIP_MESSAGES, serve_metrics
from chainlab.live.netem_transport import SidecarTransport
from chainlab.live.observer import MetricsObserver
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.rounds import resolve_round_seconds
from chainlab.live.server import add_service_arguments, running_server, stop_event_on_signals
from chainlab.live.storage_client import StorageClient
from chainlab.mlwork import learning_spec
from chainlab.proto.v1 import netem_pb2, node_pb2, node_pb2_grpc, queries_pb2, queries_pb2_grpc
from chainlab.protocols.bagchain import FullNode, Miner, Requester
from chainlab.protocols.bagchain.messages import DatasetKind, ModelRequest, model_hash

log = logging.getLogger("chainlab.node")

MAX_PREDICT_ROWS = 10_000
# Gossip carries blocks and small messages only (weights go through storage); anything bigger is an attack.
MAX_GOSSIP_BYTES = 1024 * 1024


class PeerServicer(node_pb2_grpc.PeerServicer):
    """What the node's own sidecar calls: gossip delivery and fetches."""

    def __init__(self, live: LiveNode) -> None:
        self.live = live

    async def Deliver(self, request: netem_pb2.Envelope, context: grpc.aio.ServicerContext) -> node_pb2.DeliverReply:
        """Hand a gossip message to the node; a rejection answers INVALID_ARGUMENT naming its reason."""
        GOSSIP_MESSAGES.labels("in").inc()
        GOSSIP_BYTES.labels("in").inc(len(request.payload))
        if len(request.payload) > MAX_GOSSIP_BYTES:
            self.live.observe_rejection("message", "oversized", f"{len(request.payload)} bytes")
            raise invalid("oversized", f"{len(request.payload)} bytes > {MAX_GOSSIP_BYTES}")
        rejections = self.live.deliver(bytes(request.origin), bytes(request.payload))
        if rejections:
            first = rejections[0]
            detail = first.get("detail")
            raise invalid(str(first["reason"]), f"{first['kind']}: {detail}" if detail else str(first["kind"]))
        return node_pb2.DeliverReply()

    async def Serve(self, request: netem_pb2.FetchRequest, context: grpc.aio.ServicerContext) -> netem_pb2.FetchReply:
        """Answer a peer's Fetch with a CID in storage, or found=false."""
        try:
            answer = await self.live.serve(request.kind, bytes(request.payload))
        except BadRequest as exc:
            raise invalid(exc.reason, exc.detail) from exc
        return netem_pb2.FetchReply(found=answer is not None, answer=answer or b"")


class NodeServicer(node_pb2_grpc.NodeServicer):
    """Status of any node."""

    def __init__(self, live: LiveNode, observer: MetricsObserver) -> None:
        self.live = live
        self.observer = observer

    async def Status(self, request: node_pb2.StatusRequest, context: grpc.aio.ServicerContext) -> node_pb2.NodeStatus:
        """Role, round, tip and rejection counts."""
        node = self.live.node
        tip = node.chain.tip
        return node_pb2.NodeStatus(
            node_id=node.node_id,
            role=node.role,
            round=self.live.clock.now(),
            height=tip.height,
            tip=tip.block_hash,
            rejections=dict(self.observer.rejections),
        )


class ChainServicer(queries_pb2_grpc.ChainServicer):
    """The validator's (any full node's) queries over its best chain."""

    def __init__(self, live: LiveNode) -> None:
        self.live = live
        self.node: FullNode = live.node

    async def Tip(self, request: queries_pb2.TipRequest, context: grpc.aio.ServicerContext) -> Any:
        """The best chain's head."""
        return _pb(self.node.tip)

    async def GetChain(self, request: queries_pb2.ChainRequest, context: grpc.aio.ServicerContext) -> Any:
        """Key Blocks from a height on."""
        blocks = queries.chain_from(self.node, request.from_height)
        return queries_pb2.ChainReply(key_blocks=[_pb(kb) for kb in blocks])

    async def GetBlock(self, request: queries_pb2.BlockRequest, context: grpc.aio.ServicerContext) -> Any:
        """A block of any kind by hash."""
        found = queries.block(self.node, bytes(request.hash))
        field = {"MiniBlock": "miniblock", "EnsembleBlock": "ensemble_block", "KeyBlock": "key_block"}
        return queries_pb2.BlockReply(**{field[type(found).__name__]: _pb(found)})

    async def GetHeight(self, request: queries_pb2.HeightRequest, context: grpc.aio.ServicerContext) -> Any:
        """One height's Key Block and its task's blocks."""
        kb, mbs, ebs = queries.height(self.node, request.height)
        return queries_pb2.HeightReply(
            key_block=_pb(kb),
            miniblocks=[_pb(mb) for mb in mbs],
            ensemble_blocks=[_pb(eb) for eb in ebs],
        )

    async def GetModel(self, request: queries_pb2.ModelLocationRequest, context: grpc.aio.ServicerContext) -> Any:
        """Where a checked base model's weights are in storage."""
        digest = bytes(request.model_hash)
        weights = queries.model(self.node, digest)
        cid = (await self.live.publish(digest, lambda: weights)).decode()
        return queries_pb2.ModelLocation(model_hash=digest, cid=cid)

    async def GetTaskResult(self, request: queries_pb2.TaskResultRequest, context: grpc.aio.ServicerContext) -> Any:
        """Where a task finished and what won."""
        return _task_result(queries.task_result(self.node, bytes(request.task_id)))

    async def GetBalance(self, request: queries_pb2.BalanceRequest, context: grpc.aio.ServicerContext) -> Any:
        """An account's balance."""
        account = bytes(request.account)
        return queries_pb2.Balance(account=account, amount=queries.balance(self.node, account))


class RequesterServicer(queries_pb2_grpc.RequesterServicer):
    """The requester's task API: status of its tasks, and predictions from a finished task's winning ensemble."""

    def __init__(self, live: LiveNode, features: int) -> None:
        self.live = live
        self.node: Requester = live.node
        self.features = features
        self.worker = Worker()
        self._ensembles: dict[bytes, list[tuple[bytes, bytes]]] = {}

    async def TaskStatus(self, request: queries_pb2.TaskStatusRequest, context: grpc.aio.ServicerContext) -> Any:
        """Every task's state, or one task's."""
        states = queries.task_states(self.node, bytes(request.task_id))
        return queries_pb2.TaskStatusReply(
            tasks=[
                queries_pb2.TaskState(
                    task_id=s.task.task_id,
                    sequence=s.task.sequence,
                    state=s.state,
                    result=_task_result(s.outcome) if s.outcome else None,
                )
                for s in states
            ]
        )

    async def Predict(self, request: queries_pb2.PredictRequest, context: grpc.aio.ServicerContext) -> Any:
        """Labels for the given samples from the winning ensemble of a finished task."""
        task_id = bytes(request.task_id)
        X = self._samples(request)
        result, members = queries.finished_task(self.node, task_id)
        models = self._ensembles.get(task_id) or await self._collect(result.height, members)
        self._ensembles[task_id] = models
        task = self.node.tasks[task_id]
        labels = await asyncio.to_thread(
            self.worker.ensemble_predict, models, learning_spec(task.train), X, task.aggregate
        )
        return queries_pb2.PredictReply(labels=labels.tolist(), ensemble_block=result.winning_ensemble or b"")

    def _samples(self, request: queries_pb2.PredictRequest) -> np.ndarray[Any, np.dtype[np.float32]]:
        if request.features != self.features:
            raise invalid("wrong_feature_count", f"expected {self.features}, got {request.features}")
        if not 0 < request.rows <= MAX_PREDICT_ROWS:
            raise invalid("bad_row_count", f"rows must be in 1..{MAX_PREDICT_ROWS}")
        if len(request.samples) != 4 * request.rows * request.features:
            raise invalid("bad_samples", "samples must be rows x features little-endian float32")
        return np.frombuffer(request.samples, dtype="<f4").reshape(request.rows, request.features)

    async def _collect(self, height: int, members: Iterable[Any]) -> list[tuple[bytes, bytes]]:
        """Fetch each base model from its miner (the requester's own D_V release proves Phase II), checked."""
        release = self.node.release_of(height, DatasetKind.VALIDATION)
        models = []
        for mb in members:
            request = encoding.encode(ModelRequest(mb.model_hash, release))
            data = await self.live.fetch(mb.miner_id, "model", request)
            if data is None or model_hash(data, mb.miner_id) != mb.model_hash:
                raise unavailable("model_unavailable", f"base model {mb.model_hash.hex()[:16]} could not be fetched")
            models.append((mb.model_hash, data))
        return models


def _pb(obj: Any) -> Any:
    """A protocol object as its protobuf message (typed Any: the stubs name each message class exactly)."""
    return encoding.to_proto(obj)


def _task_result(outcome: queries.Outcome) -> queries_pb2.TaskResult:
    r = outcome.result
    return queries_pb2.TaskResult(
        task_id=r.task_id,
        height=r.height,
        key_block=r.key_block,
        winning_ensemble=r.winning_ensemble or b"",
        metric_best=r.metric_best,
        model_hashes=list(outcome.model_hashes),
    )


async def _dataset(storage: StorageClient, plan: NetworkPlan, key: str) -> Dataset:
    data = await storage.get(plan.data[key])
    return await asyncio.to_thread(decode_dataset, data)


async def build_live_node(
    plan: NetworkPlan, entry: NodeEntry, storage: StorageClient, transport: SidecarTransport, observer: MetricsObserver
) -> LiveNode:
    """The node object of `entry`, with the data its role holds from the start, wrapped in a LiveNode."""
    exp = plan.exp()
    identity, params, genesis, tasks = plan.identity(entry), exp.params(), plan.genesis_block(), plan.task_list()
    datasets: dict[bytes, Dataset] = {}
    private = None
    node: Any
    if entry.role == "validator":
        node = FullNode(identity, params, genesis, seed=exp.seed)
    else:
        public = await _dataset(storage, plan, "public")
        if any(t.train_commitment != public.commitment() for t in tasks):
            raise ValueError("the public dataset in storage does not match the tasks' Hash(D_T)")
        datasets[public.commitment()] = public
        if entry.role == "miner":
            node = Miner(identity, params, genesis, seed=exp.seed)
            private = await _dataset(storage, plan, f"private:{entry.index}")
        else:
            node = Requester(identity, params, genesis, tasks)
            for key in ("validation", "test"):
                dataset = await _dataset(storage, plan, key)
                datasets[dataset.commitment()] = dataset
    q = int(exp.get("work", {}).get("hash_trials_per_round", 1))
    round_seconds, source = resolve_round_seconds(None, plan.round_seconds)
    log.info("round length", extra={"round_seconds": round_seconds, "source": source})
    clock = RoundClock(round_seconds, plan.epoch)
    return LiveNode(
        node,
        entry.index,
        transport,
        storage,
        clock,
        datasets=datasets,
        private=private,
        hash_trials_per_round=q,
        observe=observer,
    )


def register_servicers(server: grpc.aio.Server, live: LiveNode, observer: MetricsObserver) -> list[str]:
    """Add the servicers of the node's role to server; returns their full names (for health)."""
    node_pb2_grpc.add_PeerServicer_to_server(PeerServicer(live), server)
    node_pb2_grpc.add_NodeServicer_to_server(NodeServicer(live, observer), server)
    names = ["chainlab.v1.Peer", "chainlab.v1.Node"]
    if isinstance(live.node, FullNode):
        queries_pb2_grpc.add_ChainServicer_to_server(ChainServicer(live), server)
        names.append("chainlab.v1.Chain")
    if isinstance(live.node, Requester):
        features = next(iter(live.datasets.values())).X.shape[1]
        queries_pb2_grpc.add_RequesterServicer_to_server(RequesterServicer(live, features), server)
        names.append("chainlab.v1.Requester")
    return names


async def run_node(plan: NetworkPlan, entry: NodeEntry, listen: str, stop: asyncio.Event) -> None:
    """Serve one node until `stop` is set, then stop gracefully; raises if the node's event loop failed."""
    storage = StorageClient(plan.storage)
    transport = SidecarTransport(entry.sidecar)
    observer = MetricsObserver()
    live = await build_live_node(plan, entry, storage, transport, observer)
    # Importing the model family's code takes seconds the first time: pay it before joining the network.
    spec = plan.exp().model_spec()
    warm = live.datasets.get(plan.task_list()[0].train_commitment) if entry.role != "validator" else None
    if warm is not None:
        await asyncio.to_thread(live.worker.fit_plain, learning_spec(spec), warm, 0)

    async with running_server(entry.role, listen, lambda server: register_servicers(server, live, observer)):
        runner = asyncio.create_task(live.run())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([runner, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        failed = runner.exception() if runner.done() else None
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    await transport.close()
    await storage.close()
    if failed is not None:
        raise RuntimeError(f"{entry.name}: the node stopped on an error") from failed


def main(role: str, argv: list[str] | None = None) -> None:
    """Console entry point of the miner, validator and requester services."""
    parser = argparse.ArgumentParser(prog=f"chainlab-{role}", description=f"The chainlab {role} service.")
    add_service_arguments(parser, default_listen=None)  # None: the address the plan gives this node
    env = os.environ.get
    parser.add_argument("--plan", type=Path, default=env("CHAINLAB_PLAN"), help="the plan `chainlab up` writes")
    parser.add_argument("--name", default=env("CHAINLAB_NAME"), help=f"this node's name in the plan, e.g. {role}-0")
    args = parser.parse_args(argv)
    if args.plan is None or args.name is None:
        parser.error("--plan and --name (or CHAINLAB_PLAN and CHAINLAB_NAME) are required")
    configure_logging(f"{role}:{args.name}", args.log_level)
    plan = NetworkPlan.load(args.plan)
    entry = plan.node(args.name)
    if entry.role != role:
        parser.error(f"{args.name} is a {entry.role}, not a {role}")
    metrics_port = args.metrics_port or entry.metrics_port
    serve_metrics(metrics_port, args.metrics_host)
    listen = args.listen or entry.listen

    async def run() -> None:
        await run_node(plan, entry, listen, stop_event_on_signals())

    asyncio.run(run())
