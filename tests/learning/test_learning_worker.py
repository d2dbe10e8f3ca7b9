"""Tests for the Worker: deterministic training, cached and order-invariant ensemble scoring."""

from __future__ import annotations

import numpy as np
import pytest

from chainlab.learning.codec import ModelCodecError
from chainlab.learning.datasets import Dataset, load_dataset
from chainlab.learning.worker import ModelSpec, Worker, from_mapping

TREE = ModelSpec.from_mapping("decision_tree", {})


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def bagged(digits: tuple[Dataset, Dataset]) -> list[tuple[bytes, bytes]]:
    train, _ = digits
    worker = Worker()
    return [(f"model-{seed}".encode(), worker.train(TREE, train, seed)) for seed in range(10)]


def test_spec_from_mapping_sorts() -> None:
    spec = ModelSpec.from_mapping("lenet5", {"lr": 0.01, "epochs": 2})
    assert spec == from_mapping("lenet5", {"epochs": 2, "lr": 0.01})
    assert spec.params == (("epochs", 2), ("lr", 0.01))
    assert spec.build().name == "lenet5"


def test_train_is_deterministic(digits: tuple[Dataset, Dataset]) -> None:
    train, _ = digits
    worker = Worker()
    assert worker.train(TREE, train, 4) == Worker().train(TREE, train, 4)
    assert worker.train(TREE, train, 4) != worker.train(TREE, train, 5)
    assert worker.ml_seconds > 0
    # Without resampling the seed only breaks ties inside the tree.
    assert worker.fit_plain(TREE, train, 4) != worker.train(TREE, train, 4)
    with pytest.raises(ValueError):
        worker.train(TREE, train, -1)


def test_ensemble_beats_single_tree(digits: tuple[Dataset, Dataset], bagged: list[tuple[bytes, bytes]]) -> None:
    _, test = digits
    worker = Worker()
    single = [worker.base_metric(key, data, TREE, test, "accuracy") for key, data in bagged]
    ensemble = worker.ensemble_metric(bagged, TREE, test, "majority", "accuracy")
    assert ensemble > max(single) + 0.03
    assert worker.ensemble_metric(bagged, TREE, test, "soft", "f1") > max(single)


def test_ensemble_metric_order_invariant_and_cached(
    digits: tuple[Dataset, Dataset], bagged: list[tuple[bytes, bytes]]
) -> None:
    _, test = digits
    worker = Worker()
    results = {rule: worker.ensemble_metric(bagged, TREE, test, rule, "f1") for rule in ("majority", "soft")}
    spent = worker.ml_seconds
    for rule, value in results.items():
        assert worker.ensemble_metric(list(reversed(bagged)), TREE, test, rule, "f1") == value
        assert worker.ensemble_metric(bagged[3:] + bagged[:3], TREE, test, rule, "f1") == value
    assert worker.ml_seconds == spent
    # A fresh worker agrees with the cached value.
    assert Worker().ensemble_metric(bagged[::-1], TREE, test, "soft", "f1") == results["soft"]


def test_probabilities_cached_and_cleared(digits: tuple[Dataset, Dataset], bagged: list[tuple[bytes, bytes]]) -> None:
    _, test = digits
    worker = Worker()
    key, data = bagged[0]
    first = worker.probabilities(key, data, TREE, test)
    assert first.shape == (len(test), 10) and not first.flags.writeable
    assert worker.probabilities(key, data, TREE, test) is first
    worker.clear_dataset(test.commitment())
    again = worker.probabilities(key, data, TREE, test)
    assert again is not first
    np.testing.assert_array_equal(again, first)
    worker.clear()
    assert worker.probabilities(key, data, TREE, test) is not again


def test_probabilities_computed_elsewhere_are_adopted_as_if_computed_here(
    digits: tuple[Dataset, Dataset], bagged: list[tuple[bytes, bytes]]
) -> None:
    _, test = digits
    (key, model), (other, _) = bagged[0], bagged[1]
    there = Worker().fresh_probabilities(key, model, TREE, test)
    here = Worker()
    assert not here.has_probabilities(key, test)
    here.adopt_probabilities(key, test, there.copy())  # as from a pipe: a writeable copy
    assert here.has_probabilities(key, test) and not here.has_probabilities(other, test)
    adopted = here.probabilities(key, b"never decoded", TREE, test)
    assert np.array_equal(adopted, there) and not adopted.flags.writeable
    assert here.ml_seconds == 0.0
    with pytest.raises(ValueError, match="expected"):
        here.adopt_probabilities(other, test, there[:5])
    with pytest.raises(ModelCodecError):
        here.fresh_probabilities(other, b"not a model", TREE, test)
    assert not here.has_probabilities(other, test)  # neither a wrong shape nor a fresh computation is kept


def test_ensemble_predict_matches_metric(digits: tuple[Dataset, Dataset], bagged: list[tuple[bytes, bytes]]) -> None:
    _, test = digits
    worker = Worker()
    pred = worker.ensemble_predict(bagged, TREE, test.X, "majority")
    assert pred.dtype == np.int64 and pred.shape == (len(test),)
    assert float(np.mean(pred == test.y)) == worker.ensemble_metric(bagged, TREE, test, "majority", "accuracy")
    np.testing.assert_array_equal(worker.ensemble_predict(bagged[::-1], TREE, test.X, "majority"), pred)


def test_errors(digits: tuple[Dataset, Dataset], bagged: list[tuple[bytes, bytes]]) -> None:
    _, test = digits
    worker = Worker()
    with pytest.raises(ModelCodecError):
        worker.probabilities(b"bad", b"not a model", TREE, test)
    # A valid tree for another task (64 features) does not fit MNIST-5k's 784.
    mnist_test = load_dataset("mnist5k")[1]
    with pytest.raises(ModelCodecError, match="does not fit"):
        worker.base_metric(*bagged[0], TREE, mnist_test, "accuracy")
    with pytest.raises(ValueError):
        worker.ensemble_metric([], TREE, test, "majority", "accuracy")
    with pytest.raises(ValueError, match="rule"):
        worker.ensemble_metric(bagged, TREE, test, "mean", "accuracy")
    with pytest.raises(ValueError, match="metric"):
        worker.base_metric(*bagged[0], TREE, test, "auc")


def test_lenet_worker_tiny() -> None:
    train, test = load_dataset("mnist5k")
    spec = ModelSpec.from_mapping("lenet5", {"epochs": 1, "device": "cpu"})
    small = train.subset(np.arange(200, dtype=np.int64))
    worker = Worker()
    models = [(bytes([seed]), worker.train(spec, small, seed)) for seed in range(2)]
    assert models[0][1] == Worker().train(spec, small, 0)
    value = worker.ensemble_metric(models, spec, test.subset(np.arange(100, dtype=np.int64)), "soft", "accuracy")
    assert 0.0 <= value <= 1.0
