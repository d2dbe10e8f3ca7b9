"""A pool of worker processes that runs the Compute operations of simulated nodes, as if one worker ran them all.

Results are pure functions of (operation, data), so they are the same bytes and floats whatever the worker count;
only the wall time changes. With one worker nothing leaves this process. With more, training and the federated
weight-space operations run in a spawned process pool (one thread each: the DFL paper's runs showed two torch
threads contend on these cores), while ensemble evaluations run in this process, where one Worker's caches of
decoded models and class probabilities serve every simulated node (in a pool each process would keep its own
caches and the same model bytes would cross a pipe for every evaluation). The predictions an evaluation combines
are the exception: each model's on each dataset is started in a worker process by the first evaluation that names
it, and taken into this process's cache if it is ready when an evaluation needing it is collected.

Safety: the pool pickles only objects this process made itself (operations, datasets, results, exceptions) over
local multiprocessing pipes to and from its own child processes. Nothing from the network or from disk is ever
unpickled; a peer's model travels inside an operation as an opaque bytes object and only the model codec reads it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from chainlab.learning.codec import ModelCodecError
from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.protocols.effects import EvaluateEnsemble, JobResult, TrainModel, WorkOp
from chainlab.protocols.spec import ModelSpec
from chainlab.work import executor

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
"""Thread-count variables that numerical libraries read once, when they load; a worker process gets each as 1."""

_Outcome = tuple[JobResult, float]  # (result, ML seconds spent on it)
_Probabilities = tuple[NDArray[np.float32] | None, float]  # (class probabilities or None, ML seconds spent on them)
_Arrays = tuple[NDArray[np.float32], NDArray[np.int64], int, tuple[int, ...], str]  # a Dataset's fields
_TrainKey = tuple[tuple[bytes, ...], bool, bytes | None]


def default_workers() -> int:
    """The cores this process may run on (its affinity mask where the OS reports one), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Ticket:
    """A submitted operation; ComputePool.result collects it once."""

    number: int


@dataclass(frozen=True, slots=True)
class _Deferred:
    """An operation this process runs itself when its result is asked for (never, if it is cancelled first)."""

    node: int
    op: WorkOp


class _Data:
    """What one process holds: the datasets by commitment, each node's D_Mi, and the training sets built so far."""

    def __init__(
        self, datasets: Mapping[bytes, Dataset], private: Mapping[bytes, Dataset], owners: Mapping[int, bytes]
    ) -> None:
        self.datasets = datasets
        self.private = private  # by commitment: simulated nodes share a few private datasets
        self.owners = owners  # node -> commitment of its D_Mi
        self._train: dict[_TrainKey, Dataset] = {}

    def run(self, worker: Worker, node: int, op: WorkOp) -> _Outcome:
        """Carry out op for node with worker; the result and the ML seconds it cost."""
        owned = self.owners.get(node)
        private = None if owned is None else self.private[owned]
        train = self._training_data(op, owned, private) if isinstance(op, TrainModel) else None
        before = worker.ml_seconds
        result = executor.execute(worker, op, self.datasets, train, private)
        return result, worker.ml_seconds - before

    def _training_data(self, op: TrainModel, owned: bytes | None, private: Dataset | None) -> Dataset:
        # Keyed by the private set's commitment, not the node: a thousand miners share about ten D_Mi.
        key: _TrainKey = (op.datasets, op.with_private, owned if op.with_private else None)
        if key not in self._train:
            self._train[key] = executor.training_data(op, self.datasets, private)
        return self._train[key]


def _by_commitment(private: Mapping[int, Dataset]) -> tuple[dict[bytes, Dataset], dict[int, bytes]]:
    """Each distinct private dataset once, by commitment, and which node holds which."""
    distinct: dict[bytes, Dataset] = {}
    owners: dict[int, bytes] = {}
    for node, dataset in private.items():
        commitment = dataset.commitment()  # cached on the object, so shared objects are hashed once
        distinct.setdefault(commitment, dataset)
        owners[node] = commitment
    return distinct, owners


def _arrays(dataset: Dataset) -> _Arrays:
    return dataset.X, dataset.y, dataset.n_classes, dataset.shape, dataset.name


def _dataset(arrays: _Arrays) -> Dataset:
    # Rebuilt through the constructor so the arrays are read-only again, as every Dataset's are.
    X, y, n_classes, shape, name = arrays
    return Dataset(X, y, n_classes, shape, name)


# ----- the worker processes ------------------------------------------------------------------------------------

_child: tuple[Worker, _Data] | None = None


def _start_child(datasets: dict[bytes, _Arrays], private: dict[bytes, _Arrays], owners: dict[int, bytes]) -> None:
    """A worker process's initializer: receives the data once, for every job it will run."""
    global _child
    # torch is not imported for tree-only work (a second of start-up per worker); OMP_NUM_THREADS=1 from the spawn
    # gives it one thread once it is, and Worker.federated pins it as well.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    data = _Data(
        {c: _dataset(a) for c, a in datasets.items()},
        {c: _dataset(a) for c, a in private.items()},
        owners,
    )
    _child = (Worker(), data)


def _run_in_child(node: int, op: WorkOp) -> _Outcome:
    worker, data = _initialised()
    return data.run(worker, node, op)


def _probabilities_in_child(model_key: bytes, model: bytes, spec: ModelSpec, dataset: bytes) -> _Probabilities:
    """A model's class probabilities on a dataset for the pool's own Worker; None where the model does not decode
    or fit (the evaluation that needs them then fails there, naming it)."""
    worker, data = _initialised()
    before = worker.ml_seconds
    try:
        proba: NDArray[np.float32] | None = worker.fresh_probabilities(
            model_key, model, executor.learning_spec(spec), data.datasets[dataset]
        )
    except ModelCodecError:
        proba = None
    return proba, worker.ml_seconds - before


def _initialised() -> tuple[Worker, _Data]:
    if _child is None:
        raise RuntimeError("ComputePool worker process was not initialised")
    return _child


class _OneThreadProcess(SpawnProcess):
    """A spawned process whose environment pins every numerical library to one thread from its first import."""

    def start(self) -> None:
        # The variables must be in the environment the child starts with: by the time an initializer runs, the
        # child has imported numpy and torch. They are set only around the spawn, so this process keeps its own.
        saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
        os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))
        try:
            super().start()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


class _OneThreadContext(SpawnContext):
    """Spawn, never fork: torch's thread pools do not survive a fork."""

    Process = _OneThreadProcess


# ----- the pool --------------------------------------------------------------------------------------------------


class ComputePool:
    """Runs Compute operations (chainlab.protocols.effects WorkOp) for simulated nodes in `workers` processes.

    `datasets` is every dataset a node may name, by commitment; `private` maps a node to its D_Mi. With one worker,
    operations run in this process when their result is collected (so a cancelled job costs nothing, as a job
    that is never collected should). With more, training and weight-space operations start at submit in the
    process pool, and ensemble evaluations run here at collection, sharing this process's caches (their models'
    predictions start in the process pool: see _prefetch). `worker`, if given, is the Worker this process uses (a
    driver that reads its caches passes its own).

    The data is fixed when the pool is made (worker processes receive it then, once each); an operation's
    exception (e.g. MissingData) is raised by `result`, never by `submit`. Use from one thread.
    """

    def __init__(
        self,
        workers: int,
        datasets: Mapping[bytes, Dataset],
        private: Mapping[int, Dataset],
        *,
        worker: Worker | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a ComputePool needs at least one worker, got {workers}")
        self.workers = workers
        distinct, owners = _by_commitment(private)
        self._local = _Data(datasets, distinct, owners)
        self._worker = worker if worker is not None else Worker()
        self._pending: dict[int, _Deferred | Future[_Outcome]] = {}
        # Probabilities started in the worker processes for evaluations here (see _prefetch), by dataset and model,
        # and every model asked for so far by dataset.
        self._prefetched: dict[bytes, dict[bytes, Future[_Probabilities]]] = {}
        self._asked: dict[bytes, set[bytes]] = {}
        self._issued = 0
        self._ml_seconds = 0.0
        self._here_seconds = 0.0
        self._closed = False
        self._executor: ProcessPoolExecutor | None = None
        if workers > 1:
            self._executor = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=_OneThreadContext(),
                initializer=_start_child,
                initargs=(
                    {c: _arrays(d) for c, d in datasets.items()},
                    {c: _arrays(d) for c, d in distinct.items()},
                    owners,
                ),
            )

    def submit(self, node: int, op: WorkOp) -> Ticket:
        """Start op for node (or note it, where it runs here); never waits for the work itself."""
        if self._closed:
            raise RuntimeError("ComputePool is closed")
        self._issued += 1
        ticket = Ticket(self._issued)
        if self._executor is None or isinstance(op, EvaluateEnsemble):
            self._pending[ticket.number] = _Deferred(node, op)
            if self._executor is not None and isinstance(op, EvaluateEnsemble):
                self._prefetch(op)
        else:
            with self._alive():
                self._pending[ticket.number] = self._executor.submit(_run_in_child, node, op)
        return ticket

    def result(self, ticket: Ticket) -> JobResult:
        """The operation's result, waiting for it if need be; raises what the operation raised (e.g. MissingData)."""
        pending = self._pending.pop(ticket.number, None)
        if pending is None:
            raise KeyError(f"ComputePool ticket {ticket.number} is unknown, already collected or cancelled")
        if isinstance(pending, _Deferred):
            if isinstance(pending.op, EvaluateEnsemble):
                self._adopt(pending.op)
            result, seconds = self._local.run(self._worker, pending.node, pending.op)
            self._here_seconds += seconds
        else:
            with self._alive():
                result, seconds = pending.result()
        self._ml_seconds += seconds
        return result

    def _prefetch(self, op: EvaluateEnsemble) -> None:
        """Start, in the worker processes, the class probabilities of op's models that no evaluation asked for yet.

        They are most of an evaluation's ML (decoding and predicting), and each model's are computed once per
        dataset: started at the first evaluation that names the model, they run beside the simulation instead of
        in it, and the evaluation here, when collected, only combines those ready (see _adopt). Each model's bytes
        cross the pipe once per dataset, not once per evaluation."""
        dataset = self._local.datasets.get(op.dataset)
        if dataset is None:
            return  # the evaluation raises MissingData when collected
        asked = self._asked.setdefault(op.dataset, set())
        models = dict(op.models)
        new = models.keys() - asked
        if not new:
            return  # the common case: every node checks the same models
        asked |= new
        started = self._prefetched.setdefault(op.dataset, {})
        assert self._executor is not None
        for key in sorted(new):
            if not self._worker.has_probabilities(key, dataset):
                with self._alive():
                    started[key] = self._executor.submit(_probabilities_in_child, key, models[key], op.spec, op.dataset)

    def _adopt(self, op: EvaluateEnsemble) -> None:
        """Take into this process's Worker the probabilities started for op's models that are ready.

        One that is not ready is given up (cancelled if it has not started) and computed here instead, as without a
        pool: the worker processes run jobs in the order submitted, so it may wait behind training for the next
        height, and waiting for it would stall the whole simulation."""
        started = self._prefetched.get(op.dataset)
        if not started:
            return
        dataset = self._local.datasets[op.dataset]
        for key in sorted(started.keys() & dict(op.models).keys()):
            future = started.pop(key)
            if not future.done():
                future.cancel()  # if already running, it finishes in its process and is dropped
                continue
            with self._alive():
                proba, seconds = future.result()
            self._ml_seconds += seconds
            if proba is not None:
                self._worker.adopt_probabilities(key, dataset, proba)

    def cancel(self, ticket: Ticket) -> None:
        """Give up on a ticket: its result will never be collected (again, or after collection: a no-op)."""
        pending = self._pending.pop(ticket.number, None)
        if isinstance(pending, Future):
            pending.cancel()  # a job already running finishes in its process and is dropped

    @property
    def ml_seconds(self) -> float:
        """Seconds of ML work in the results collected so far, summed over every process that did it."""
        return self._ml_seconds

    @property
    def ml_seconds_here(self) -> float:
        """The part of ml_seconds spent in this process (every job with one worker; evaluations with more)."""
        return self._here_seconds

    def close(self) -> None:
        """Stop the worker processes (waiting for them to exit) and drop every uncollected ticket."""
        self._closed = True
        self._pending.clear()
        self._prefetched.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> ComputePool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _alive(self) -> Iterator[None]:
        """Around a call into the process pool: a dead worker process becomes a RuntimeError saying so."""
        try:
            yield
        except BrokenProcessPool as exc:
            raise RuntimeError(
                f"ComputePool: a worker process died unexpectedly, so the pool cannot go on ({exc})"
            ) from exc
