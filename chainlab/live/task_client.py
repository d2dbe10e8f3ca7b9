"""A client of a running network's requester: submit a task, read task states, ask for predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chainlab.learning.datasets import Dataset, decode_dataset
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.server import insecure_channel
from chainlab.live.storage_client import StorageClient
from chainlab.proto.v1 import bagchain_pb2, queries_pb2, queries_pb2_grpc

CALL_TIMEOUT_SECONDS = 120.0  # a submission loads, splits and stores a dataset before it answers


@dataclass(frozen=True)
class Submission:
    """What a SubmitTask asks for; empty strings take the network's model, aggregation and metric."""

    dataset_name: str = ""
    dataset_cid: str = ""
    family: str = ""
    params_json: str = ""
    aggregate: str = ""
    metric: str = ""
    metric_min: float = 0.5
    fee: int = 100

    def request(self) -> queries_pb2.SubmitTaskRequest:
        """The gRPC request (exactly one of the dataset fields is set when either is given)."""
        request = queries_pb2.SubmitTaskRequest(
            train=bagchain_pb2.ModelSpec(family=self.family, params_json=self.params_json),
            aggregate=self.aggregate,
            metric=self.metric,
            metric_min=self.metric_min,
            fee=self.fee,
        )
        if self.dataset_cid:
            request.dataset_cid = self.dataset_cid
        elif self.dataset_name:
            request.dataset_name = self.dataset_name
        return request


def requester_of(plan: NetworkPlan) -> NodeEntry:
    """The plan's requester; ValueError if the network has none."""
    for entry in plan.nodes:
        if entry.role == "requester":
            return entry
    raise ValueError("this network has no requester")


async def submit_task(plan: NetworkPlan, submission: Submission) -> queries_pb2.SubmitTaskReply:
    """Submit a task to the network's requester; grpc.aio.AioRpcError names a refusal."""
    async with insecure_channel(requester_of(plan).listen) as channel:
        reply: queries_pb2.SubmitTaskReply = await queries_pb2_grpc.RequesterStub(channel).SubmitTask(
            submission.request(), timeout=CALL_TIMEOUT_SECONDS
        )
        return reply


async def task_status(plan: NetworkPlan, task_id: bytes = b"") -> list[queries_pb2.TaskState]:
    """Every task of the requester, or one."""
    async with insecure_channel(requester_of(plan).listen) as channel:
        stub = queries_pb2_grpc.RequesterStub(channel)
        reply = await stub.TaskStatus(queries_pb2.TaskStatusRequest(task_id=task_id), timeout=CALL_TIMEOUT_SECONDS)
        return list(reply.tasks)


async def test_samples(plan: NetworkPlan, rows: int) -> Dataset:
    """The first `rows` samples of the network's held-out test data (D_E of its planned tasks), from storage."""
    storage = StorageClient(plan.storage)
    try:
        dataset = decode_dataset(await storage.get(plan.data["test"]))
    finally:
        await storage.close()
    return dataset.subset(np.arange(min(rows, len(dataset))))


async def predict(plan: NetworkPlan, task_id: bytes, X: npt.NDArray[np.float32]) -> list[int]:
    """Labels for samples from a finished task's winning ensemble."""
    request = queries_pb2.PredictRequest(
        task_id=task_id, rows=len(X), features=X.shape[1], samples=np.ascontiguousarray(X, "<f4").tobytes()
    )
    async with insecure_channel(requester_of(plan).listen) as channel:
        reply = await queries_pb2_grpc.RequesterStub(channel).Predict(request, timeout=CALL_TIMEOUT_SECONDS)
        return [int(v) for v in reply.labels]
