"""Requester.SubmitTask over a real gRPC server: a task taken at run time is split, stored, signed and published;
every bad submission gets a status naming its reason, is counted, and changes nothing."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from prometheus_client import REGISTRY

from chainlab.learning.datasets import Dataset, encode_dataset
from chainlab.live.driver import LiveNode, RoundClock
from chainlab.live.node_service import register_servicers
from chainlab.live.observer import MetricsObserver
from chainlab.live.server import insecure_channel, running_server
from chainlab.live.transport import InMemoryStore, InMemoryTransport
from chainlab.proto.v1 import bagchain_pb2, queries_pb2, queries_pb2_grpc
from chainlab.protocols.bagchain import Requester
from chainlab.protocols.bagchain.messages import Task
from chainlab.protocols.bagchain.wire import CODEC
from chainlab.scenarios import registry
from tests.protocols.bagchain.conftest import Honest

INVALID, PRECONDITION, NOT_FOUND = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
)


def _refusals(reason: str) -> float:
    labels = {"service": "requester", "method": "SubmitTask", "reason": reason}
    return sum(
        s.value
        for m in REGISTRY.collect()
        if m.name == "chainlab_grpc_refusals"
        for s in m.samples
        if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _request(**fields: Any) -> queries_pb2.SubmitTaskRequest:
    base: dict[str, Any] = {"dataset_name": "digits", "metric_min": 0.3, "fee": 100}
    return queries_pb2.SubmitTaskRequest(**{**base, **fields})


def _submit(honest: Honest, requests: list[queries_pb2.SubmitTaskRequest], stored: bytes = b"") -> dict[str, Any]:
    """A copy of the finished run's requester behind real gRPC; submit each request, then read TaskStatus."""

    async def scenario() -> dict[str, Any]:
        node = copy.deepcopy(honest.net.requester)  # the session's run is shared: never change it
        spec = registry.get("bagchain")
        observer = MetricsObserver(spec)
        transport, store = InMemoryTransport(0.0), InMemoryStore()
        broadcasts: list[bytes] = []
        transport.register(b"\x09" * 32, _recorder(broadcasts), _no_serve)
        cid = await store.put(stored) if stored else ""
        live = LiveNode(node, 0, CODEC, transport, store, RoundClock(0.05), datasets=honest.net.datasets,
                        private=None, hash_trials_per_round=1, observe=observer)  # fmt: skip
        runner = asyncio.create_task(live.run())
        answers: list[Any] = []
        async with (
            running_server("requester", "127.0.0.1:0", lambda s: register_servicers(s, spec, live, observer)) as r,
            insecure_channel(f"127.0.0.1:{r.port}") as channel,
        ):
            stub = queries_pb2_grpc.RequesterStub(channel)
            for request in requests:
                if request.dataset_cid == "<stored>":
                    request.dataset_cid = cid
                try:
                    answers.append(await stub.SubmitTask(request))
                except grpc.aio.AioRpcError as exc:
                    answers.append((exc.code(), exc.details()))
            status = await stub.TaskStatus(queries_pb2.TaskStatusRequest())
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return {"answers": answers, "status": status, "node": node, "live": live, "broadcasts": broadcasts}

    return asyncio.run(scenario())


def _recorder(into: list[bytes]) -> Callable[[bytes, bytes, float, float], list[Any]]:
    """A peer that keeps every message it is sent and rejects none."""

    def deliver(sender: bytes, data: bytes, size_mb: float, payload_mb: float) -> list[Any]:
        into.append(data)
        return []

    return deliver


async def _no_serve(sender: bytes, kind: str, payload: bytes) -> bytes | None:
    return None


def test_a_task_submitted_at_run_time_is_split_stored_signed_and_published(honest: Honest) -> None:
    out = _submit(honest, [_request(fee=150, metric_min=0.4)])
    (reply,) = out["answers"]
    node: Requester = out["node"]
    task = node.tasks[bytes(reply.task_id)]
    assert isinstance(task, Task) and task.signature_valid(node.identity.public_key)
    assert (task.fee, task.metric_min, task.sequence) == (150, 0.4, 2)
    planned = honest.net.tasks[0]
    assert (task.train, task.aggregate, task.metric) == (planned.train, planned.aggregate, planned.metric)
    # D_T, D_V and D_E are held (the requester serves them) and D_T is in storage under the CID it answered.
    live: LiveNode = out["live"]
    assert {task.train_commitment, task.validation_commitment, task.test_commitment} <= set(live.datasets)
    assert node.serve_dataset(task.train_commitment) and not node.serve_dataset(task.test_commitment)
    assert reply.train_cid
    states = {t.task_id: t.state for t in out["status"].tasks}
    assert states[task.task_id] == "queued" and list(states.values()).count("done") == 2
    # After the planned tasks (published again at start), the new one.
    assert [CODEC.decode_message(b) for b in out["broadcasts"]] == [*honest.net.tasks, task]
    assert not node.status().done  # a task is open again


def test_each_bad_submission_is_refused_by_name_counted_and_changes_nothing(honest: Honest) -> None:
    garbage = b"not a dataset"
    cases = [
        (_request(metric_min=float("nan")), INVALID, "bad_metric_min"),
        (_request(metric_min=-0.5), INVALID, "bad_metric_min"),
        (_request(fee=0), INVALID, "bad_fee"),
        (_request(fee=2**64 - 1), INVALID, "bad_fee"),
        (_request(fee=10**9), PRECONDITION, "insufficient_funds"),
        (_request(train=bagchain_pb2.ModelSpec(family="resnet")), INVALID, "unknown_model"),
        (_request(aggregate="median"), INVALID, "unknown_aggregate"),
        (_request(metric="auc"), INVALID, "unknown_metric"),
        (_request(dataset_name="imagenet"), INVALID, "unknown_dataset"),
        (_request(dataset_name="breast_cancer"), INVALID, "incompatible_dataset"),
        (queries_pb2.SubmitTaskRequest(metric_min=0.3, fee=100), INVALID, "no_dataset"),
        (_request(dataset_cid="<stored>"), INVALID, "bad_dataset"),
        (_request(dataset_cid="bafy-not-there"), NOT_FOUND, "unknown_dataset"),
    ]
    before = {reason: _refusals(reason) for _, _, reason in cases}
    out = _submit(honest, [request for request, _, _ in cases], stored=garbage)
    for (request, code, reason), answer in zip(cases, out["answers"], strict=True):
        assert answer[0] == code and answer[1].startswith(reason), (request, answer)
    counted = {reason: _refusals(reason) - before[reason] for _, _, reason in cases}
    assert counted == {reason: sum(r == reason for _, _, r in cases) for _, _, reason in cases}
    assert set(out["node"].tasks) == set(honest.net.requester.tasks)
    assert [CODEC.decode_message(b) for b in out["broadcasts"]] == honest.net.tasks  # the planned ones only


def test_a_stored_dataset_is_split_into_disjoint_parts(honest: Honest) -> None:
    data: Dataset = honest.net.test
    out = _submit(honest, [_request(dataset_cid="<stored>")], stored=encode_dataset(data))
    (reply,) = out["answers"]
    task = out["node"].tasks[bytes(reply.task_id)]
    parts = [out["live"].datasets[c] for c in (task.train_commitment, task.validation_commitment, task.test_commitment)]
    n = len(data)
    assert [len(p) for p in parts] == [round(0.4 * n), round(0.3 * n), n - round(0.4 * n) - round(0.3 * n)]
    # Together the parts are the dataset, each sample once: sorted (row, label) pairs match.
    joined = np.concatenate([np.column_stack([p.X, p.y]) for p in parts])
    whole = np.column_stack([data.X, data.y])
    assert np.array_equal(joined[np.lexsort(joined.T)], whole[np.lexsort(whole.T)])


def test_funds_run_out_as_fees_are_committed(honest: Honest) -> None:
    balance = copy.deepcopy(honest.net.requester).balance()
    out = _submit(honest, [_request(fee=balance), _request(fee=1)])
    first, second = out["answers"]
    assert isinstance(first, queries_pb2.SubmitTaskReply)
    assert second[0] == PRECONDITION and second[1].startswith("insufficient_funds")


def test_a_dataset_too_small_to_split_is_refused(honest: Honest) -> None:
    tiny = honest.net.test.subset(np.arange(10))
    out = _submit(honest, [_request(dataset_cid="<stored>")], stored=encode_dataset(tiny))
    ((code, details),) = out["answers"]
    assert code == INVALID and details.startswith("dataset_too_small")
