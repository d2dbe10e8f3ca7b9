"""BagChain's spec: warming the model family up before a node joins."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import ModelSpec, Worker
from chainlab.scenarios.bagchain.spec import SPEC, WARM_UP_PER_CLASS
from chainlab.scenarios.experiment import load_experiment


class _Recording(Worker):
    def __init__(self) -> None:
        super().__init__()
        self.fitted: list[Dataset] = []

    def fit_plain(self, spec: ModelSpec, data: Dataset, seed: int) -> bytes:
        self.fitted.append(data)
        return super().fit_plain(spec, data, seed)


def test_warm_up_fits_once_on_a_few_samples_of_every_class_not_the_whole_held_set() -> None:
    y = np.repeat(np.arange(3, dtype=np.int64), 400)  # sorted by label: the first samples are all one class
    held = Dataset(np.random.default_rng(0).random((len(y), 4), dtype=np.float32), y, 3, (4,), "sorted")
    worker = _Recording()
    SPEC.warm_up(load_experiment(Path("experiments/bench_scale.yaml")), worker, [held])
    [data] = worker.fitted
    assert sorted(np.bincount(data.y).tolist()) == [WARM_UP_PER_CLASS] * 3


def test_warm_up_without_held_data_does_nothing() -> None:
    worker = _Recording()
    SPEC.warm_up(load_experiment(Path("experiments/bench_scale.yaml")), worker, [])
    assert worker.fitted == []
