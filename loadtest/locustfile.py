"""locust users driving a running chainlab BagChain network over gRPC (see loadtest/README.md).

The network comes from CHAINLAB_PLAN (the plan.json `chainlab up` writes). Every gRPC call goes through one client
interceptor that reports it to locust's request events (request_type "grpc", name = the method), so locust's
statistics, CSV and HTML report, and the Prometheus exporter (CHAINLAB_LOAD_METRICS_PORT) see every call.
"""

# ruff: noqa: E402  (gRPC is made gevent-friendly before anything else imports it)
from __future__ import annotations

# gRPC's C core must cooperate with gevent before any channel exists (DESIGN.md section 8).
import grpc
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent.lock
import numpy as np
from locust import LoadTestShape, User, between, events, task
from locust.env import Environment
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from chainlab.learning.datasets import decode_dataset
from chainlab.ledger import encoding
from chainlab.live.load import (  # the environment variables are documented in loadtest/README.md
    EXPECTED_SUBMIT_REFUSALS,
    METRICS_HOST_ENV,
    METRICS_PORT_ENV,
    PLAN_ENV,
    SHAPE_ENV,
    SHAPES,
    SUBMIT_SECONDS_ENV,
    WAIT_ENV,
    ShapeTick,
)
from chainlab.live.server import MAX_MESSAGE_BYTES, STORAGE_MESSAGE_BYTES, channel_options
from chainlab.proto.v1 import queries_pb2, queries_pb2_grpc, storage_pb2, storage_pb2_grpc
from chainlab.protocols.bagchain.messages import KeyBlock

PREDICT_ROWS = 10
CALL_TIMEOUT_SECONDS = 30.0
REQUEST_TYPE = "grpc"
REFUSED_SUFFIX = ".refused"  # the name an expected refusal is reported under (as a success)

# --- locust's figures as Prometheus metrics (metrics9.md: service="locust"); a registry of their own, so that
# the exporter serves only these.
REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "chainlab_load_requests_total", "Requests locust made, by type, name and outcome (success or failure)",
    ["request_type", "name", "outcome"], registry=REGISTRY,
)  # fmt: skip
REQUEST_SECONDS = Histogram(
    "chainlab_load_request_seconds", "Response time locust measured, by type and name", ["request_type", "name"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=REGISTRY,
)  # fmt: skip
USERS = Gauge("chainlab_load_users", "Users locust is running", registry=REGISTRY)


def _wait_range() -> tuple[float, float]:
    low, _, high = os.environ.get(WAIT_ENV, "0.05,0.15").partition(",")
    return float(low), float(high or low)


WAIT_MIN, WAIT_MAX = _wait_range()


# --- the network under load, read once per process --------------------------------------------------------------
@dataclass
class Network:
    """What the users need from plan.json, plus what they learn while running (finished tasks, test rows)."""

    requester: str | None
    chain: str | None  # a full node answering Chain queries: a validator, else a miner
    storage: str | None
    requester_account: bytes
    dataset_name: str
    test_cid: str | None  # D_E in storage
    dataset_cids: list[str]
    done_tasks: list[bytes] = field(default_factory=list)
    rows: np.ndarray | None = None
    submit_enabled: bool = True
    last_submit: float = field(default_factory=time.monotonic)  # the first SubmitTask comes one interval in
    lock: gevent.lock.Semaphore = field(default_factory=gevent.lock.Semaphore)

    @classmethod
    def from_plan(cls, path: Path) -> Network:
        """Parse the plan JSON directly: the load generator needs addresses and CIDs, not the experiment."""
        plan = json.loads(path.read_text())
        nodes = plan["nodes"]

        def first(*roles: str) -> dict[str, Any] | None:
            for role in roles:
                for node in nodes:
                    if node["role"] == role:
                        return dict(node)
            return None

        requester, chain = first("requester"), first("validator", "miner")
        data: dict[str, str] = plan.get("data", {})
        return cls(
            requester=requester["listen"] if requester else None,
            chain=chain["listen"] if chain else None,
            storage=plan.get("storage") or None,
            requester_account=bytes.fromhex(requester.get("node_id", "")) if requester else b"",
            dataset_name=str(plan.get("experiment", {}).get("dataset", "")),
            test_cid=data.get("test"),
            dataset_cids=[data["test"]] if "test" in data else sorted(data.values())[:1],
        )

    def learn(self, reply: queries_pb2.TaskStatusReply) -> None:
        """Remember the tasks TaskStatus reports as done (what Predict and GetTaskResult may ask about)."""
        done = [bytes(t.task_id) for t in reply.tasks if t.state == "done"]
        if len(done) > len(self.done_tasks):
            self.done_tasks = done

    def test_rows(self) -> np.ndarray:
        """Real D_E rows, read from storage once per process; zeros when the plan names no D_E (a no-op server)."""
        with self.lock:
            if self.rows is None:
                if self.test_cid is None or self.storage is None:
                    self.rows = np.zeros((PREDICT_ROWS, 8), dtype="<f4")
                else:
                    channel = grpc.insecure_channel(self.storage, options=channel_options(STORAGE_MESSAGE_BYTES))
                    try:
                        stub = storage_pb2_grpc.StorageStub(channel)
                        call = stub.Get(storage_pb2.GetRequest(cid=self.test_cid), timeout=CALL_TIMEOUT_SECONDS)
                        dataset = decode_dataset(b"".join(chunk.data for chunk in call))
                    finally:
                        channel.close()
                    self.rows = np.ascontiguousarray(dataset.X, dtype="<f4")
            return self.rows


_NETWORK: Network | None = None


def network() -> Network:
    """The process's one Network, from CHAINLAB_PLAN."""
    global _NETWORK
    if _NETWORK is None:
        path = os.environ.get(PLAN_ENV)
        if not path:
            raise RuntimeError(f"set {PLAN_ENV} to the plan.json of a running `chainlab up` network")
        _NETWORK = Network.from_plan(Path(path))
    return _NETWORK


# --- reporting every call from one interceptor --------------------------------------------------------------------
def expected_refusal(method: str, error: grpc.RpcError) -> bool:
    """A refusal that is an answer, not a failure: SubmitTask refused for a documented reason (README)."""
    return method == "SubmitTask" and error.code().name in EXPECTED_SUBMIT_REFUSALS


class ReportingInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Times each call and fires locust's request event: name = method, length = reply bytes, exception on error."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        """Report a unary call once its answer (or error) is in."""
        started = time.perf_counter()
        call = continuation(details, request)
        error = call.exception()
        length = 0 if error is not None else call.result().ByteSize()
        self._report(details.method, started, length, error)
        return call

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        """Read a whole stream, then report it: the response time is the time to the last chunk."""
        started = time.perf_counter()
        items: list[Any] = []
        error: grpc.RpcError | None = None
        try:
            items.extend(continuation(details, request))
        except grpc.RpcError as exc:
            error = exc
        self._report(details.method, started, sum(item.ByteSize() for item in items), error)
        if error is not None:
            raise error
        return iter(items)

    def _report(self, full_method: str, started: float, length: int, error: grpc.RpcError | None) -> None:
        method = full_method.rsplit("/", 1)[-1]
        service = full_method.rsplit("/", 2)[-2].rsplit(".", 1)[-1]
        name = f"storage.{method}" if service == "Storage" else method
        exception: BaseException | None = error
        if error is not None and expected_refusal(method, error):
            name, exception = name + REFUSED_SUFFIX, None
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            response=None,
            context={},
            exception=exception,
        )


class GrpcUser(User):  # type: ignore[misc]
    """A user with one intercepted channel to one service of the network."""

    abstract = True
    wait_time = between(WAIT_MIN, WAIT_MAX)
    max_message_bytes = MAX_MESSAGE_BYTES

    def address(self) -> str | None:
        """The service this user calls (None: the plan has none; the user then idles)."""
        raise NotImplementedError

    def on_start(self) -> None:
        """Open the channel."""
        self.net = network()
        target = self.address()
        if target is None:
            raise RuntimeError(f"{type(self).__name__}: the plan has no service for this user")
        raw = grpc.insecure_channel(target, options=channel_options(self.max_message_bytes))
        self.raw_channel = raw
        self.channel = grpc.intercept_channel(raw, ReportingInterceptor(self.environment))

    def on_stop(self) -> None:
        """Close the channel."""
        self.raw_channel.close()

    def call(self, method: Callable[..., Any], request: Any) -> Any | None:
        """Make one call; an error is already reported as a failure (or an expected refusal), so it returns None."""
        try:
            return method(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError:
            return None


class RequesterUser(GrpcUser):
    """A user of the requester's task API: mostly Predict on finished tasks, TaskStatus, a rare SubmitTask."""

    weight = 3

    def address(self) -> str | None:
        """The requester."""
        return self.net.requester

    def on_start(self) -> None:
        """Open the channel and learn which tasks are done already."""
        super().on_start()
        self.stub = queries_pb2_grpc.RequesterStub(self.channel)
        self.task_status()

    @task(10)
    def predict(self) -> None:
        """Labels for ~10 real D_E rows from a finished task's ensemble; skipped while no task is done."""
        if not self.net.done_tasks:
            return  # nothing to predict with yet: not a failure
        rows = self.net.test_rows()
        start = random.randrange(max(1, len(rows) - PREDICT_ROWS + 1))
        sample = rows[start : start + PREDICT_ROWS]
        request = queries_pb2.PredictRequest(
            task_id=random.choice(self.net.done_tasks),
            rows=len(sample),
            features=sample.shape[1],
            samples=sample.tobytes(),
        )
        self.call(self.stub.Predict, request)

    @task(3)
    def task_status(self) -> None:
        """Every task's state; finished tasks become Predict's targets."""
        reply = self.call(self.stub.TaskStatus, queries_pb2.TaskStatusRequest())
        if reply is not None:
            self.net.learn(reply)

    @task(1)
    def submit_task(self) -> None:
        """Rarely (at most once per CHAINLAB_LOAD_SUBMIT_SECONDS per process) a task on the run's dataset."""
        every = float(os.environ.get(SUBMIT_SECONDS_ENV, "20"))
        now = time.monotonic()
        if every <= 0 or not self.net.submit_enabled or now - self.net.last_submit < every:
            return
        self.net.last_submit = now
        request = queries_pb2.SubmitTaskRequest(dataset_name=self.net.dataset_name, fee=1, metric_min=0.3)
        try:
            self.stub.SubmitTask(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.net.submit_enabled = False  # this requester takes no tasks at run time: stop asking


class ChainReaderUser(GrpcUser):
    """A reader of a full node's chain: Tip, GetBlock of the tip, GetTaskResult, the requester's balance."""

    weight = 2

    def address(self) -> str | None:
        """A validator (or a miner when the network has none)."""
        return self.net.chain

    def on_start(self) -> None:
        """Open the channel and read the tip."""
        super().on_start()
        self.stub = queries_pb2_grpc.ChainStub(self.channel)
        self.tip: KeyBlock | None = None
        self.read_tip()

    @task(3)
    def read_tip(self) -> None:
        """The best chain's head."""
        reply = self.call(self.stub.Tip, queries_pb2.TipRequest())
        if reply is not None:
            self.tip = encoding.from_proto(KeyBlock, reply)

    @task(2)
    def get_block(self) -> None:
        """The tip's Key Block by its hash."""
        if self.tip is not None:
            self.call(self.stub.GetBlock, queries_pb2.BlockRequest(hash=self.tip.hash))

    @task(2)
    def get_task_result(self) -> None:
        """The result of the task the tip finished: finished on this node by definition.

        Not a task the requester reports done: the requester learns of a Key Block before this node may have,
        and GetTaskResult then answers FAILED_PRECONDITION task_not_finished, which is right, not a failure.
        """
        if self.tip is not None and self.tip.height > 0:
            self.call(self.stub.GetTaskResult, queries_pb2.TaskResultRequest(task_id=self.tip.task_id))

    @task(1)
    def get_balance(self) -> None:
        """The requester's balance: its genesis allocation less the fees of its finished tasks."""
        self.call(self.stub.GetBalance, queries_pb2.BalanceRequest(account=self.net.requester_account))


class StorageReaderUser(GrpcUser):
    """A reader of storage: a dataset (D_E) streamed back in chunks."""

    weight = 1
    wait_time = between(0.5, 1.5)  # a whole dataset per call: fewer of them
    max_message_bytes = STORAGE_MESSAGE_BYTES

    def address(self) -> str | None:
        """The storage service."""
        return self.net.storage

    def on_start(self) -> None:
        """Open the channel."""
        super().on_start()
        self.stub = storage_pb2_grpc.StorageStub(self.channel)

    @task
    def get(self) -> None:
        """Read a dataset object to its end."""
        if self.net.dataset_cids:
            self.call(self.stub.Get, storage_pb2.GetRequest(cid=random.choice(self.net.dataset_cids)))


# --- load shapes: picked by CHAINLAB_LOAD_SHAPE; peak users and total time from locust's -u and -t --------------
def _shape_class(tick: ShapeTick) -> type[LoadTestShape]:
    class ChainlabShape(LoadTestShape):  # type: ignore[misc]
        """The shape CHAINLAB_LOAD_SHAPE names, scaled by -u (peak users) and -t (total seconds)."""

        use_common_options = True

        def tick(self) -> tuple[int, float] | None:
            options = self.runner.environment.parsed_options
            users = int(options.num_users or 10)
            seconds = float(options.run_time or 60)
            return tick(self.get_run_time(), users, seconds)

    return ChainlabShape


_SHAPE = os.environ.get(SHAPE_ENV, "")
if _SHAPE:
    if _SHAPE not in SHAPES:
        raise ValueError(f"{SHAPE_ENV}={_SHAPE!r}: known shapes are {', '.join(sorted(SHAPES))}")
    ChainlabShape = _shape_class(SHAPES[_SHAPE])


# --- the Prometheus exporter ---------------------------------------------------------------------------------------
@events.init.add_listener
def _start_exporter(environment: Environment, **_kwargs: Any) -> None:
    port = os.environ.get(METRICS_PORT_ENV)
    if not port:
        return
    start_http_server(int(port), addr=os.environ.get(METRICS_HOST_ENV, "127.0.0.1"), registry=REGISTRY)
    USERS.set_function(lambda: environment.runner.user_count if environment.runner is not None else 0)


@events.request.add_listener
def _export_request(
    request_type: str, name: str, response_time: float, exception: BaseException | None, **_kwargs: Any
) -> None:
    REQUESTS.labels(request_type, name, "failure" if exception is not None else "success").inc()
    REQUEST_SECONDS.labels(request_type, name).observe(response_time / 1000.0)
