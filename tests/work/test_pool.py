"""ComputePool: the same results with one worker or several, ML seconds summed, cancellation, errors, clean exits."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import Future, wait

import numpy as np
import pytest
from numpy.typing import NDArray

from chainlab.learning.datasets import load_dataset
from chainlab.protocols.effects import (
    PRIVATE,
    EvaluateEnsemble,
    EvaluateModel,
    EvaluationFailed,
    InitModel,
    JobResult,
    TrainModel,
    TrainSteps,
    WorkOp,
)
from chainlab.protocols.spec import ModelSpec
from chainlab.work.executor import MissingData
from chainlab.work.pool import THREAD_VARIABLES, ComputePool, Ticket, default_workers

TREE = ModelSpec.of("decision_tree", {"max_depth": 5})
SOFTMAX = ModelSpec.of("softmax", {"input": [64], "classes": 10})


class Data:
    """digits: D_T, two private sets shared by four nodes (as a thousand miners share a few D_Mi), and D_V."""

    def __init__(self) -> None:
        train, test = load_dataset("digits")
        self.public = train.subset(_range(0, 600))
        self.private = {0: train.subset(_range(600, 900)), 2: train.subset(_range(900, 1200))}
        self.private[1], self.private[3] = self.private[0], self.private[2]
        self.validation = test
        self.datasets = {d.commitment(): d for d in (self.public, self.validation)}

    def training(self) -> list[tuple[int, WorkOp]]:
        """TrainModel jobs of four nodes, with and without their private data, and federated weight operations."""
        ops: list[tuple[int, WorkOp]] = [
            (node, TrainModel(TREE, (self.public.commitment(),), with_private, seed))
            for node in range(4)
            for with_private, seed in ((True, 10 + node), (False, 20 + node))
        ]
        ops.append((1, InitModel(SOFTMAX, 3)))
        return ops

    def federated(self, weights: bytes) -> list[tuple[int, WorkOp]]:
        """Weight-space operations on the nodes' own data and a held dataset."""
        return [
            (1, TrainSteps(SOFTMAX, weights, PRIVATE, steps=4, batch_size=16, seed=5)),
            (2, TrainSteps(SOFTMAX, weights, PRIVATE, steps=4, batch_size=16, seed=5)),
            (0, EvaluateModel(SOFTMAX, weights, self.validation.commitment())),
        ]

    def evaluations(self, models: list[bytes]) -> list[tuple[int, WorkOp]]:
        """Ensembles of the trained trees, several sharing models, as full nodes score candidate ensembles."""
        refs = tuple((hashlib.sha256(m).digest(), m) for m in models)
        dv = self.validation.commitment()
        jobs: list[tuple[int, WorkOp]] = [
            (node, EvaluateEnsemble(refs[lo:hi], TREE, dv, rule, "accuracy"))
            for node in range(4)
            for lo, hi, rule in ((0, 3, "majority"), (0, 8, "soft"), (2, 6, "majority"))
        ]
        return [*jobs, (3, EvaluateEnsemble(((b"junk", b"not a model"),), TREE, dv, "majority", "accuracy"))]


def _range(lo: int, hi: int) -> NDArray[np.int64]:
    return np.arange(lo, hi, dtype=np.int64)


def run_all(pool: ComputePool, data: Data) -> list[JobResult]:
    """Submit each phase's jobs together (so several are in flight), collect them in order."""
    trained = _collect(pool, data.training())
    models = [r for r in trained[:-1] if isinstance(r, bytes)]
    weights = trained[-1]
    assert len(models) == 8 and isinstance(weights, bytes)
    return trained + _collect(pool, data.federated(weights)) + _collect(pool, data.evaluations(models))


def _collect(pool: ComputePool, jobs: list[tuple[int, WorkOp]]) -> list[JobResult]:
    tickets = [pool.submit(node, op) for node, op in jobs]
    return [pool.result(t) for t in tickets]


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


@pytest.fixture(scope="module")
def one_worker_results(data: Data) -> list[JobResult]:
    with ComputePool(1, data.datasets, data.private) as pool:
        return run_all(pool, data)


@pytest.fixture(scope="module")
def two(data: Data) -> Iterator[ComputePool]:
    """One two-process pool for the module: spawning processes that import torch takes seconds."""
    with ComputePool(2, data.datasets, data.private) as pool:
        yield pool


# ----- one worker: in this process ------------------------------------------------------------------------------


def test_one_worker_runs_in_this_process_and_assembles_training_sets_per_private_set(data: Data) -> None:
    before = set(multiprocessing.active_children())
    with ComputePool(1, data.datasets, data.private) as pool:
        results = run_all(pool, data)
        assert set(multiprocessing.active_children()) == before
        # 4 nodes x (with, without D_Mi) over 2 shared private sets: 3 assembled sets, not 8.
        assert len(pool._local._train) == 3
    assert all(isinstance(r, bytes) for r in results[:9])
    assert isinstance(results[-1], EvaluationFailed)
    accuracies = results[12:-1]
    assert all(isinstance(a, float) and 0.3 < a <= 1.0 for a in accuracies)


def test_one_worker_ml_seconds_count_collected_work_only(data: Data) -> None:
    with ComputePool(1, data.datasets, data.private) as pool:
        first = pool.submit(0, TrainModel(TREE, (data.public.commitment(),), True, 1))
        dropped = pool.submit(0, TrainModel(TREE, (data.public.commitment(),), True, 2))
        assert pool.ml_seconds == 0.0
        pool.cancel(dropped)
        pool.cancel(dropped)  # twice is harmless
        assert isinstance(pool.result(first), bytes)
        spent = pool.ml_seconds
        assert spent > 0.0
        with pytest.raises(KeyError, match="ticket"):
            pool.result(dropped)
        with pytest.raises(KeyError, match="already collected"):
            pool.result(first)
        assert pool._worker.ml_seconds == spent  # the cancelled job never ran


def test_missing_data_comes_back_from_result_not_submit(data: Data) -> None:
    with ComputePool(1, data.datasets, data.private) as pool:
        ticket = pool.submit(0, TrainModel(TREE, (b"\x07" * 32,), False, 1))
        with pytest.raises(MissingData, match="not held"):
            pool.result(ticket)
        no_private = pool.submit(9, TrainSteps(SOFTMAX, b"w", PRIVATE, 1, 1, 1))
        with pytest.raises(MissingData, match="no private data"):
            pool.result(no_private)


def test_bad_arguments_are_refused(data: Data) -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        ComputePool(0, data.datasets, data.private)
    pool = ComputePool(1, data.datasets, data.private)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(0, InitModel(SOFTMAX, 1))
    with pytest.raises(KeyError):
        pool.result(Ticket(12345))


def test_default_workers_is_the_usable_cores() -> None:
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert default_workers() == expected >= 1


# ----- several workers: spawned processes -----------------------------------------------------------------------


@pytest.mark.slow
def test_two_workers_give_the_one_worker_results_exactly(
    two: ComputePool, data: Data, one_worker_results: list[JobResult]
) -> None:
    results = run_all(two, data)
    assert len(results) == len(one_worker_results) == 25
    for got, want in zip(results, one_worker_results, strict=True):
        assert type(got) is type(want)
        assert got == want  # bytes equal, floats equal (not approximately), EvaluationFailed equal


def _trees(pool: ComputePool, data: Data, seed: int) -> tuple[tuple[bytes, bytes], ...]:
    trained = _collect(pool, [(n, TrainModel(TREE, (data.public.commitment(),), True, seed + n)) for n in range(3)])
    return tuple((hashlib.sha256(m).digest(), m) for m in trained if isinstance(m, bytes))


@pytest.mark.slow
def test_two_workers_predict_for_evaluations_in_their_processes(two: ComputePool, data: Data) -> None:
    refs, dv = _trees(two, data, 300), data.validation.commitment()
    ops = [
        EvaluateEnsemble(refs[:1], TREE, dv, "majority", "accuracy"),
        EvaluateEnsemble(refs, TREE, dv, "soft", "accuracy"),
    ]
    tickets = [two.submit(0, op) for op in ops]
    wait(list(two._prefetched[dv].values()))  # as the rounds a simulation runs before collecting give them time
    got = [two.result(t) for t in tickets]
    with ComputePool(1, data.datasets, data.private) as one:
        assert got == _collect(one, [(0, op) for op in ops])
    # This process combined probabilities computed in the workers: it never decoded a model itself.
    assert all(two._worker.has_probabilities(key, data.validation) for key, _ in refs)
    assert not any(key in two._worker._models for key, _ in refs)
    assert not two._prefetched[dv]  # each started prediction was taken in


@pytest.mark.slow
def test_two_workers_predict_here_what_is_not_ready_when_collected(two: ComputePool, data: Data) -> None:
    refs, dv = _trees(two, data, 400), data.validation.commitment()
    op = EvaluateEnsemble(refs, TREE, dv, "soft", "accuracy")
    ticket = two.submit(0, op)
    for key, _ in refs:
        wait([two._prefetched[dv][key]])
    late: Future[object] = Future()  # still queued behind other work
    two._prefetched[dv][refs[0][0]] = late  # type: ignore[assignment]
    got = two.result(ticket)
    with ComputePool(1, data.datasets, data.private) as one:
        assert got == _collect(one, [(0, op)])[0]
    assert late.cancelled()
    assert refs[0][0] in two._worker._models and refs[1][0] not in two._worker._models  # only the late one here


@pytest.mark.slow
def test_two_workers_sum_ml_seconds_of_collected_jobs(two: ComputePool, data: Data) -> None:
    seen = two.ml_seconds
    tickets = [two.submit(n, TrainModel(TREE, (data.public.commitment(),), True, 100 + n)) for n in range(4)]
    dropped = two.submit(0, TrainModel(TREE, (data.public.commitment(),), True, 99))
    two.cancel(dropped)
    for ticket in tickets:
        assert isinstance(two.result(ticket), bytes)
        assert two.ml_seconds > seen  # every collected job adds its own seconds, whichever process ran it
        seen = two.ml_seconds
    time.sleep(0.2)  # let the dropped job finish if it had started: it must still not count
    assert two.ml_seconds == seen
    with pytest.raises(KeyError):
        two.result(dropped)


@pytest.mark.slow
def test_two_workers_return_worker_exceptions_as_themselves(two: ComputePool, data: Data) -> None:
    missing = two.submit(0, TrainModel(TREE, (b"\x07" * 32,), False, 1))
    with pytest.raises(MissingData, match="not held"):
        two.result(missing)
    bad_weights = two.submit(1, TrainSteps(SOFTMAX, b"not weights", PRIVATE, 1, 1, 1))
    assert isinstance(two.result(bad_weights), EvaluationFailed)
    fine = two.submit(0, InitModel(SOFTMAX, 1))
    assert isinstance(two.result(fine), bytes)  # a failed job leaves the pool usable


def _thread_report() -> tuple[int, dict[str, str | None], list[int], int]:
    import threadpoolctl  # type: ignore[import-untyped]
    import torch

    time.sleep(0.3)  # keep this process busy so the other probe lands on the other one
    env = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    pools = [int(info["num_threads"]) for info in threadpoolctl.threadpool_info()]
    return os.getpid(), env, pools, torch.get_num_threads()


@pytest.mark.slow
def test_worker_processes_use_one_thread_each_and_leave_this_environment_alone(two: ComputePool) -> None:
    before = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    assert two._executor is not None
    futures = [two._executor.submit(_thread_report) for _ in range(4)]
    reports = [f.result() for f in futures]
    assert {pid for pid, *_ in reports} - {os.getpid()}  # ran in worker processes
    for _, env, pools, torch_threads in reports:
        assert env == dict.fromkeys(THREAD_VARIABLES, "1")
        assert pools and all(n == 1 for n in pools)  # numpy's BLAS and every OpenMP runtime loaded
        assert torch_threads == 1
    assert {name: os.environ.get(name) for name in THREAD_VARIABLES} == before


@pytest.mark.slow
def test_closing_leaves_no_child_processes_and_a_dead_worker_is_a_clear_error(data: Data) -> None:
    before = set(multiprocessing.active_children())
    with ComputePool(2, data.datasets, data.private) as pool:
        assert isinstance(pool.result(pool.submit(0, InitModel(SOFTMAX, 1))), bytes)
        assert pool._executor is not None
        children = list(pool._executor._processes.values())
        assert children and set(multiprocessing.active_children()) - before
        for child in children:
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="ComputePool: a worker process died"):
            pool.result(pool.submit(1, TrainModel(TREE, (data.public.commitment(),), True, 1)))
    assert set(multiprocessing.active_children()) == before


@pytest.mark.slow
def test_context_manager_closes_its_processes(data: Data) -> None:
    before = set(multiprocessing.active_children())
    with ComputePool(2, data.datasets, data.private) as pool:
        tickets = [pool.submit(n, TrainModel(TREE, (data.public.commitment(),), True, n)) for n in range(3)]
        assert isinstance(pool.result(tickets[0]), bytes)
        # the rest are left uncollected: closing must not wait on them forever nor leave processes behind
    assert set(multiprocessing.active_children()) == before
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(0, InitModel(SOFTMAX, 1))
