"""BagChain's gRPC adapter: Chain queries on any full node, the requester's task API, and the results view.

Servicers decode, call the transport-free handlers of chainlab/scenarios/bagchain/queries.py, and encode;
refusals are mapped to status codes by the one interceptor.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from chainlab.learning.datasets import decode_dataset
from chainlab.ledger import encoding
from chainlab.live.driver import FETCH_REQUEST, LiveNode
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.server import insecure_channel
from chainlab.live.storage_client import StorageClient
from chainlab.proto.v1 import queries_pb2, queries_pb2_grpc
from chainlab.protocols.bagchain import FullNode, Requester
from chainlab.protocols.bagchain.messages import (
    DatasetKind,
    EnsembleBlock,
    KeyBlock,
    MiniBlock,
    ModelRequest,
    model_hash,
)
from chainlab.protocols.errors import invalid, unavailable
from chainlab.scenarios.bagchain import queries
from chainlab.scenarios.bagchain.spec import TEST
from chainlab.scenarios.bagchain.summary import ChainView, HeightView
from chainlab.work.executor import learning_spec

MAX_PREDICT_ROWS = 10_000
CALL_TIMEOUT_SECONDS = 10.0
PREDICT_TIMEOUT_SECONDS = 60.0


class ChainServicer(queries_pb2_grpc.ChainServicer):
    """A full node's queries over its best chain."""

    def __init__(self, live: LiveNode, node: FullNode) -> None:
        self.live = live
        self.node = node

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


class Predictor:
    """Transport-free predictions from a finished task's winning ensemble, fetched from its miners and checked."""

    def __init__(self, live: LiveNode, node: Requester, features: int) -> None:
        self.live = live
        self.node = node
        self.features = features
        self._ensembles: dict[bytes, list[tuple[bytes, bytes]]] = {}

    def samples(self, rows: int, features: int, samples: bytes) -> npt.NDArray[np.float32]:
        """rows x features little-endian float32 samples, checked."""
        if features != self.features:
            raise invalid("wrong_feature_count", f"expected {self.features}, got {features}")
        if not 0 < rows <= MAX_PREDICT_ROWS:
            raise invalid("bad_row_count", f"rows must be in 1..{MAX_PREDICT_ROWS}")
        if len(samples) != 4 * rows * features:
            raise invalid("bad_samples", "samples must be rows x features little-endian float32")
        return np.frombuffer(samples, dtype="<f4").reshape(rows, features)

    async def predict(self, task_id: bytes, X: npt.NDArray[np.float32]) -> tuple[list[int], bytes]:
        """Labels from the winning ensemble of a finished task, and that Ensemble Block's hash."""
        result, members = queries.finished_task(self.node, task_id)
        models = self._ensembles.get(task_id) or await self._collect(result.height, members)
        self._ensembles[task_id] = models
        task = self.node.tasks[task_id]
        labels = await asyncio.to_thread(
            lambda: self.live.worker().ensemble_predict(models, learning_spec(task.train), X, task.aggregate)
        )
        return [int(v) for v in labels], result.winning_ensemble or b""

    async def _collect(self, height: int, members: list[MiniBlock]) -> list[tuple[bytes, bytes]]:
        """Fetch each base model from its miner (the requester's own D_V release proves Phase II), checked."""
        release = self.node.release_of(height, DatasetKind.VALIDATION)
        models = []
        for mb in members:
            request = self.live.codec.encode_request(ModelRequest(mb.model_hash, release))
            data = await self.live.fetch(mb.miner_id, FETCH_REQUEST, request)
            if data is None or model_hash(data, mb.miner_id) != mb.model_hash:
                raise unavailable("model_unavailable", f"base model {mb.model_hash.hex()[:16]} could not be fetched")
            models.append((mb.model_hash, data))
        return models


class RequesterServicer(queries_pb2_grpc.RequesterServicer):
    """The requester's task API: status of its tasks, and predictions from a finished task's winning ensemble."""

    def __init__(self, node: Requester, predictor: Predictor) -> None:
        self.node = node
        self.predictor = predictor

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
        X = self.predictor.samples(request.rows, request.features, bytes(request.samples))
        labels, ensemble = await self.predictor.predict(bytes(request.task_id), X)
        return queries_pb2.PredictReply(labels=labels, ensemble_block=ensemble)


def register(server: grpc.aio.Server, live: LiveNode) -> list[str]:
    """Chain on any full node; Requester on the requester."""
    node = live.node
    if isinstance(node, FullNode):
        queries_pb2_grpc.add_ChainServicer_to_server(ChainServicer(live, node), server)
        return ["chainlab.v1.Chain"]
    if isinstance(node, Requester):
        features = next(iter(live.datasets.values())).X.shape[1]
        servicer = RequesterServicer(node, Predictor(live, node, features))
        queries_pb2_grpc.add_RequesterServicer_to_server(servicer, server)
        return ["chainlab.v1.Requester"]
    return []


async def read_view(plan: NetworkPlan, observer: NodeEntry, storage: StorageClient) -> ChainView:
    """The observer's best chain over gRPC, base models from storage (checked), Predict accuracy on D_E."""
    heights: list[HeightView] = []
    models: dict[bytes, bytes] = {}
    async with insecure_channel(observer.listen) as channel:
        chain = queries_pb2_grpc.ChainStub(channel)
        tip = encoding.from_proto(KeyBlock, await chain.Tip(queries_pb2.TipRequest(), timeout=CALL_TIMEOUT_SECONDS))
        for h in range(1, tip.height + 1):
            reply = await chain.GetHeight(queries_pb2.HeightRequest(height=h), timeout=CALL_TIMEOUT_SECONDS)
            mbs = tuple(encoding.from_proto(MiniBlock, m) for m in reply.miniblocks)
            ebs = tuple(encoding.from_proto(EnsembleBlock, e) for e in reply.ensemble_blocks)
            heights.append(HeightView(encoding.from_proto(KeyBlock, reply.key_block), mbs, ebs))
            for mb in mbs:
                weights = await _model(chain, storage, mb)
                if weights is not None:
                    models[mb.model_hash] = weights
        balances = {}
        for entry in plan.nodes:
            account = bytes.fromhex(entry.node_id)
            reply = await chain.GetBalance(queries_pb2.BalanceRequest(account=account), timeout=CALL_TIMEOUT_SECONDS)
            if reply.amount:
                balances[account] = int(reply.amount)
    test = await asyncio.to_thread(decode_dataset, await storage.get(plan.data[TEST]))
    predicted = {
        hv.key_block.height: await _predict_accuracy(plan, hv.key_block.task_id, test.X, test.y) for hv in heights
    }
    return ChainView(tuple(heights), models, balances, predicted)


async def _model(chain: queries_pb2_grpc.ChainStub, storage: StorageClient, mb: MiniBlock) -> bytes | None:
    """A MiniBlock's base model, located by the observer and read from storage, checked against its ModelHash."""
    try:
        where = await chain.GetModel(
            queries_pb2.ModelLocationRequest(model_hash=mb.model_hash), timeout=CALL_TIMEOUT_SECONDS
        )
    except grpc.aio.AioRpcError:
        return None  # the observer never fetched it (e.g. its miner died before serving it)
    weights = await storage.get(where.cid)
    return weights if model_hash(weights, mb.miner_id) == mb.model_hash else None


async def _predict_accuracy(
    plan: NetworkPlan, task_id: bytes, X: npt.NDArray[Any], y: npt.NDArray[Any]
) -> float | None:
    """Accuracy on D_E of the requester's Predict answer: the winning ensemble as served to its user."""
    request = queries_pb2.PredictRequest(
        task_id=task_id, rows=len(X), features=X.shape[1], samples=np.ascontiguousarray(X, "<f4").tobytes()
    )
    requester = next((e for e in plan.nodes if e.role == "requester"), None)
    if requester is None:
        return None
    async with insecure_channel(requester.listen) as channel:
        try:
            reply = await queries_pb2_grpc.RequesterStub(channel).Predict(request, timeout=PREDICT_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError:
            return None
    return float(np.mean(np.asarray(reply.labels) == y))


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
