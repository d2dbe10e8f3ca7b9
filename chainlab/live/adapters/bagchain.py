"""BagChain's gRPC adapter: Chain queries on any full node, the requester's task API, and the results view.

Servicers decode, call the transport-free handlers of chainlab/scenarios/bagchain/queries.py, and encode;
refusals are mapped to status codes by the one interceptor.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from chainlab.learning.codec import ModelCodecError
from chainlab.learning.datasets import Dataset, decode_dataset, encode_dataset, load_dataset
from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.live import metrics
from chainlab.live.batching import Batcher
from chainlab.live.driver import FETCH_REQUEST, LiveNode
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.server import insecure_channel
from chainlab.live.storage_client import StorageClient
from chainlab.proto.v1 import queries_pb2, queries_pb2_grpc
from chainlab.protocols.bagchain import FullNode, Requester, rules
from chainlab.protocols.bagchain.messages import (
    DatasetKind,
    EnsembleBlock,
    KeyBlock,
    MiniBlock,
    ModelRequest,
    Task,
    model_hash,
)
from chainlab.protocols.bagchain.reasons import Reason, Rejected
from chainlab.protocols.errors import invalid, not_found, unavailable
from chainlab.scenarios.bagchain import queries, submit
from chainlab.scenarios.bagchain.spec import TEST
from chainlab.scenarios.bagchain.summary import ChainView, HeightView, base_and_best
from chainlab.work.executor import learning_spec

MAX_PREDICT_ROWS = 10_000
CALL_TIMEOUT_SECONDS = 10.0
PREDICT_TIMEOUT_SECONDS = 60.0
SCORE_EVERY_SECONDS = 1.0
SCORE_ATTEMPTS = 30

log = logging.getLogger("chainlab.requester")


class ChainServicer(queries_pb2_grpc.ChainServicer):
    """A full node's queries over its best chain."""

    def __init__(self, live: LiveNode, node: FullNode) -> None:
        self.live = live
        self.node = node

    async def Tip(self, request: queries_pb2.TipRequest, context: grpc.aio.ServicerContext) -> Any:
        """The best chain's head."""
        _ready(self.node)
        return _pb(self.node.tip)

    async def GetChain(self, request: queries_pb2.ChainRequest, context: grpc.aio.ServicerContext) -> Any:
        """Key Blocks from a height on."""
        _ready(self.node)
        blocks = queries.chain_from(self.node, request.from_height)
        return queries_pb2.ChainReply(key_blocks=[_pb(kb) for kb in blocks])

    async def GetBlock(self, request: queries_pb2.BlockRequest, context: grpc.aio.ServicerContext) -> Any:
        """A block of any kind by hash."""
        _ready(self.node)
        found = queries.block(self.node, bytes(request.hash))
        field = {"MiniBlock": "miniblock", "EnsembleBlock": "ensemble_block", "KeyBlock": "key_block"}
        return queries_pb2.BlockReply(**{field[type(found).__name__]: _pb(found)})

    async def GetHeight(self, request: queries_pb2.HeightRequest, context: grpc.aio.ServicerContext) -> Any:
        """One height's Key Block and its task's blocks."""
        _ready(self.node)
        kb, mbs, ebs = queries.height(self.node, request.height)
        return queries_pb2.HeightReply(
            key_block=_pb(kb),
            miniblocks=[_pb(mb) for mb in mbs],
            ensemble_blocks=[_pb(eb) for eb in ebs],
        )

    async def GetModel(self, request: queries_pb2.ModelLocationRequest, context: grpc.aio.ServicerContext) -> Any:
        """Where a checked base model's weights are in storage."""
        _ready(self.node)
        digest = bytes(request.model_hash)
        weights = queries.model(self.node, digest)
        cid = (await self.live.publish(digest, lambda: weights)).decode()
        return queries_pb2.ModelLocation(model_hash=digest, cid=cid)

    async def GetTaskResult(self, request: queries_pb2.TaskResultRequest, context: grpc.aio.ServicerContext) -> Any:
        """Where a task finished and what won."""
        _ready(self.node)
        return _task_result(queries.task_result(self.node, bytes(request.task_id)))

    async def GetBalance(self, request: queries_pb2.BalanceRequest, context: grpc.aio.ServicerContext) -> Any:
        """An account's balance."""
        _ready(self.node)
        account = bytes(request.account)
        return queries_pb2.Balance(account=account, amount=queries.balance(self.node, account))


def _ready(node: FullNode) -> None:
    """Queries answer UNAVAILABLE while the node catches up: its chain is behind, so its answers would be wrong."""
    if node.status().syncing:
        raise unavailable("not_ready", f"catching up with its peers (at height {node.chain.tip.height})")


class Predictor:
    """Transport-free predictions from a finished task's winning ensemble, fetched from its miners and checked."""

    def __init__(self, live: LiveNode, node: Requester, features: int) -> None:
        self.live = live
        self.node = node
        self.features = features
        # The winner's base models by Ensemble Block hash, fetched once however many Predicts arrive together.
        self._ensembles: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self._fetching: defaultdict[bytes, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.batcher = Batcher(MAX_PREDICT_ROWS)  # concurrent Predicts on one winner: one ensemble call

    def samples(self, rows: int, features: int, samples: bytes) -> npt.NDArray[np.float32]:
        """rows x features little-endian float32 samples, checked."""
        if features != self.features:
            raise invalid("wrong_feature_count", f"expected {self.features}, got {features}")
        if not 0 < rows <= MAX_PREDICT_ROWS:
            raise invalid("bad_row_count", f"rows must be in 1..{MAX_PREDICT_ROWS}")
        if len(samples) != 4 * rows * features:
            raise invalid("bad_samples", "samples must be rows x features little-endian float32")
        X = np.frombuffer(samples, dtype="<f4").reshape(rows, features)
        # One vectorised pass: a NaN or infinity would make the models raise inside the worker (an INTERNAL error).
        if not np.isfinite(X).all():
            bad = int(np.count_nonzero(~np.isfinite(X).all(axis=1)))
            raise invalid("bad_samples", f"samples must be finite ({bad} of {rows} rows hold NaN or infinity)")
        return X

    async def predict(self, task_id: bytes, X: npt.NDArray[np.float32]) -> tuple[list[int], bytes]:
        """Labels from the winning ensemble of a finished task, and that Ensemble Block's hash."""
        result, members = queries.finished_task(self.node, task_id)
        winner = result.winning_ensemble or b""
        async with self._fetching[winner]:
            if winner not in self._ensembles:
                self._ensembles[winner] = await self._collect(result.height, members)
        models = self._ensembles[winner]
        task = self.node.tasks[task_id]
        spec = learning_spec(task.train)

        def compute(rows: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return self.live.worker().ensemble_predict(models, spec, rows, task.aggregate)

        labels = await self.batcher.run(winner, X, compute)
        return [int(v) for v in labels], result.winning_ensemble or b""

    async def _collect(self, height: int, members: list[MiniBlock]) -> list[tuple[bytes, bytes]]:
        """Every member's base model, or UNAVAILABLE naming the first that could not be fetched."""
        models = await fetch_models(self.live, self.node, height, members)
        missing = [mb for mb in members if mb.model_hash not in models]
        if missing:
            lost = missing[0].model_hash.hex()[:16]
            raise unavailable("model_unavailable", f"base model {lost} could not be fetched")
        return [(mb.model_hash, models[mb.model_hash]) for mb in members]


async def fetch_models(live: LiveNode, node: Requester, height: int, members: list[MiniBlock]) -> dict[bytes, bytes]:
    """The base models of MiniBlocks, each from its miner (the requester's own D_V release proves Phase II) and
    checked against its ModelHash; those that could not be fetched are left out."""
    release = node.release_of(height, DatasetKind.VALIDATION)

    async def one(mb: MiniBlock) -> bytes | None:
        request = live.codec.encode_request(ModelRequest(mb.model_hash, release))
        data = await live.fetch(mb.miner_id, FETCH_REQUEST, request)
        return data if data is not None and model_hash(data, mb.miner_id) == mb.model_hash else None

    # All at once: each fetch is a round trip through the sidecars, so one after another costs their sum.
    fetched = await asyncio.gather(*(one(mb) for mb in members))
    return {mb.model_hash: data for mb, data in zip(members, fetched, strict=True) if data is not None}


class TaskIntake:
    """Transport-free SubmitTask: checks the terms, loads and splits the dataset, puts D_T, D_V and D_E into
    storage, then has the requester sign and publish the task (Requester.submit checks terms and funds again)."""

    def __init__(self, live: LiveNode, node: Requester, like: Dataset) -> None:
        self.live = live
        self.node = node
        self.like = like  # a dataset of this network: a task's data must match its features and classes
        self._lock = asyncio.Lock()  # one intake at a time: sequence numbers and funds are read, then used

    async def submit(self, source: str, value: str, terms: submit.TaskTerms) -> tuple[Task, str]:
        """The signed, published task and D_T's CID; a named refusal for bad terms, data or funds."""
        async with self._lock:
            self._check(self.node.new_task((b"", b"", b""), **vars(terms)))  # before any expensive work
            seed = int.from_bytes(sha256(self.node.node_id, len(self.node.tasks).to_bytes(8, "big"))[:4], "big")
            d_t, d_v, d_e = await self._datasets(source, value, seed)
            cids = [await self._publish(d) for d in (d_t, d_v, d_e)]
            commitments = (d_t.commitment(), d_v.commitment(), d_e.commitment())
            task = self.node.new_task(commitments, **vars(terms))
            try:
                self.live.apply(lambda now: self.node.submit(task, now))
            except Rejected as exc:
                raise submit.refusal(exc) from None
            log.info("task submitted", extra={"task": task.task_id.hex(), "fee": task.fee, "source": source})
            return task, cids[0]

    def _check(self, probe: Task) -> None:
        try:
            rules.check_task_terms(probe, self.node.params)
            if self.node.balance() < probe.fee:
                raise Rejected(Reason.INSUFFICIENT_FUNDS, f"fee {probe.fee} > balance {self.node.balance()}")
        except Rejected as exc:
            raise submit.refusal(exc) from None

    async def _datasets(self, source: str, value: str, seed: int) -> tuple[Dataset, Dataset, Dataset]:
        if source == "dataset_name":
            try:
                train, test = await asyncio.to_thread(load_dataset, value)
            except ValueError as exc:
                raise invalid("unknown_dataset", str(exc)) from None
            submit.check_compatible(train, self.like)
            return submit.split_shipped(train, test, seed)
        if source != "dataset_cid":
            raise invalid("no_dataset", "name a shipped dataset (dataset_name) or one in storage (dataset_cid)")
        try:
            data = await self.live.store.get(value)
        except Exception as exc:
            raise not_found("unknown_dataset", f"{value}: {exc}") from None
        try:
            dataset = await asyncio.to_thread(decode_dataset, data)
        except (ModelCodecError, ValueError) as exc:
            raise invalid("bad_dataset", str(exc)) from None
        submit.check_compatible(dataset, self.like)
        return submit.split_given(dataset, seed)

    async def _publish(self, dataset: Dataset) -> str:
        """Into storage once, and held, so the requester serves D_T at once and D_V, D_E when it releases them."""
        commitment = dataset.commitment()
        self.live.datasets[commitment] = dataset
        return (await self.live.publish(commitment, lambda: encode_dataset(dataset))).decode()


class TaskScorer:
    """Scores each of the requester's tasks once it is done, on D_E, for the accuracy metrics: the winning
    ensemble (as the chain ranked it and as Predict serves it), every base model, all of them ensembled (the best
    possible) and a model trained on D_T alone (public). Live only: the simulator's summary measures the same."""

    def __init__(self, live: LiveNode, node: Requester, predictor: Predictor) -> None:
        self.live = live
        self.node = node
        self.predictor = predictor
        self._attempts: Counter[bytes] = Counter()  # by task; SCORE_ATTEMPTS failures and it is left unscored

    async def run(self) -> None:
        """Score finished tasks as they finish, until cancelled. A failure (e.g. the winning Ensemble Block not
        seen yet) is retried each SCORE_EVERY_SECONDS, SCORE_ATTEMPTS times, then logged and left."""
        while True:
            for state in queries.task_states(self.node):
                task_id = state.task.task_id
                if state.outcome is None or self._attempts[task_id] >= SCORE_ATTEMPTS:
                    continue
                self._attempts[task_id] += 1
                try:
                    await self.score(state.task, state.outcome.result.height)
                    self._attempts[task_id] = SCORE_ATTEMPTS  # scored: done with it
                except Exception as exc:
                    if self._attempts[task_id] == SCORE_ATTEMPTS:
                        log.warning(
                            "could not score a finished task", extra={"task": task_id.hex(), "error": repr(exc)}
                        )
            await asyncio.sleep(SCORE_EVERY_SECONDS)

    async def score(self, task: Task, height: int) -> None:
        """Record task_scored with each measure of one finished task."""
        miniblocks = [mb for mb in self.node.miniblocks.values() if (mb.height, mb.task_id) == (height, task.task_id)]
        held = await fetch_models(self.live, self.node, height, miniblocks)
        test, train = self.live.datasets[task.test_commitment], self.live.datasets[task.train_commitment]
        spec, worker = learning_spec(task.train), self.live.worker()

        def measure() -> dict[str, float]:
            base, best = base_and_best(worker, spec, test, task.aggregate, task.metric, held)
            public = worker.fit_plain(spec, train, 0)
            public_score = worker.base_metric(sha256(public), public, spec, test, task.metric)
            scores = {"best_possible": best, "public": public_score}
            if base:
                scores |= {"base_min": min(base), "base_mean": float(np.mean(base)), "base_max": max(base)}
            return scores

        scores = await asyncio.to_thread(measure)
        result = next(r for r in self.node.results() if r.task_id == task.task_id)
        if result.winning_ensemble is not None:
            scores["ensemble"] = result.metric_best
            labels, _ = await self.predictor.predict(task.task_id, test.X)
            scores["predict"] = float(np.mean(np.asarray(labels) == test.y))
        data = {f"accuracy_{k}": v for k, v in scores.items()}
        self.live.record("task_scored", {"task": task.task_id.hex(), "miniblocks": len(miniblocks), **data})


class RequesterServicer(queries_pb2_grpc.RequesterServicer):
    """The requester's task API: take tasks, their status, and predictions from a finished task's winner."""

    def __init__(self, node: Requester, predictor: Predictor, intake: TaskIntake) -> None:
        self.node = node
        self.predictor = predictor
        self.intake = intake

    async def SubmitTask(self, request: queries_pb2.SubmitTaskRequest, context: grpc.aio.ServicerContext) -> Any:
        """Take a task at run time: INVALID_ARGUMENT or FAILED_PRECONDITION (no funds) naming what is wrong."""
        source = request.WhichOneof("dataset") or ""
        value = getattr(request, source) if source else ""
        terms = submit.terms_of(
            min(self.node.tasks.values(), key=lambda t: t.sequence),
            request.train.family,
            request.train.params_json,
            request.aggregate,
            request.metric,
            request.metric_min,
            request.fee,
        )
        task, train_cid = await self.intake.submit(source, value, terms)
        return queries_pb2.SubmitTaskReply(task_id=task.task_id, sequence=task.sequence, train_cid=train_cid)

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
        metrics.PREDICTED_SAMPLES.inc(len(labels))
        return queries_pb2.PredictReply(labels=labels, ensemble_block=ensemble)


def register(server: grpc.aio.Server, live: LiveNode) -> list[str]:
    """Chain on any full node; Requester on the requester."""
    node = live.node
    if isinstance(node, FullNode):
        queries_pb2_grpc.add_ChainServicer_to_server(ChainServicer(live, node), server)
        return ["chainlab.v1.Chain"]
    if isinstance(node, Requester):
        like = next(iter(live.datasets.values()))
        predictor = Predictor(live, node, like.X.shape[1])
        servicer = RequesterServicer(node, predictor, TaskIntake(live, node, like))
        queries_pb2_grpc.add_RequesterServicer_to_server(servicer, server)
        live.background(TaskScorer(live, node, predictor).run())
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
