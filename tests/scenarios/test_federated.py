"""Data for the federated protocols: shards by partition scheme, label-matched test sets, poisoned data."""

from __future__ import annotations

import numpy as np
import pytest

from chainlab.learning.datasets import Dataset
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import federated_data, label_flipped, label_matched, model_spec, noise_images


def _shard() -> Dataset:
    X = np.random.default_rng(0).random((50, 4), dtype=np.float32)
    return Dataset(X, np.array([1] * 40 + [2] * 10, dtype=np.int64), 3, (4,), "shard")


def test_shards_deal_the_whole_training_set_by_the_partition_scheme() -> None:
    exp = Experiment.from_mapping({"protocol": {"name": "bagchain"}, "partition": {"scheme": "labels"}})
    data = federated_data(exp, 10)
    assert len(data.test) == 10_000 and len(data.train) == 60_000
    assert sum(len(s) for s in data.shards) == len(data.train)
    assert set(data.shards[3].y.tolist()) == {3, 4}


def test_label_matched_test_sets_follow_the_shards_labels() -> None:
    test = _shard()
    matched = label_matched(test, _shard(), 1000, np.random.default_rng(1))
    counts = np.bincount(matched.y, minlength=3)
    assert counts[0] == 0 and 0.7 < counts[1] / 1000 < 0.9


def test_poisoned_data_keeps_what_the_attack_keeps() -> None:
    shard = _shard()
    noisy = noise_images(shard, np.random.default_rng(2))
    assert np.array_equal(noisy.y, shard.y) and not np.array_equal(noisy.X, shard.X)
    flipped = label_flipped(shard)
    assert np.array_equal(flipped.X, shard.X) and np.array_equal(flipped.y, (shard.y + 1) % 3)


def test_model_spec_fills_in_the_data_shape_and_refuses_unknown_families() -> None:
    spec = model_spec({"family": "mlp", "hidden": 8}, _shard())
    assert spec.family == "mlp" and spec.params == {"hidden": 8, "input": [4], "classes": 3}
    with pytest.raises(ValueError, match="unknown federated model family"):
        model_spec({"family": "decision_tree"}, _shard())
