"""Tests for the model families and their safe byte encodings."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load as load_arrays
from safetensors.torch import save as save_safetensors

from chainlab.learning.codec import ModelCodecError, encode_arrays, encode_safetensors, read_header
from chainlab.learning.datasets import Dataset, load_dataset
from chainlab.learning.models import DecisionTreeFamily, LeNet5Family, TreeModel, make_family


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def tree(digits: tuple[Dataset, Dataset]) -> tuple[DecisionTreeFamily, TreeModel]:
    train, _ = digits
    family = DecisionTreeFamily(max_depth=8)
    return family, family.fit(train.X, train.y, train.n_classes, train.shape, seed=1)


def test_tree_round_trip(tree: tuple[DecisionTreeFamily, TreeModel], digits: tuple[Dataset, Dataset]) -> None:
    family, model = tree
    _, test = digits
    data = family.encode(model)
    assert family.encode(family.decode(data)) == data
    decoded = family.decode(data)
    np.testing.assert_array_equal(family.predict_proba(decoded, test.X), family.predict_proba(model, test.X))
    assert family.predict_proba(model, test.X).shape == (len(test), 10)


def test_tree_fit_is_deterministic(digits: tuple[Dataset, Dataset]) -> None:
    train, _ = digits
    family = DecisionTreeFamily(max_features="sqrt")
    a = family.encode(family.fit(train.X, train.y, 10, train.shape, seed=5))
    b = family.encode(family.fit(train.X, train.y, 10, train.shape, seed=5))
    c = family.encode(family.fit(train.X, train.y, 10, train.shape, seed=6))
    assert a == b and a != c


def test_tree_probabilities_cover_missing_classes(digits: tuple[Dataset, Dataset]) -> None:
    train, test = digits
    few = train.subset(np.flatnonzero(train.y < 4).astype(np.int64))
    family = DecisionTreeFamily()
    model = family.decode(family.encode(family.fit(few.X, few.y, 10, few.shape, seed=0)))
    proba = family.predict_proba(model, test.X)
    assert proba.shape == (len(test), 10) and proba.dtype == np.float32
    assert not proba[:, 4:].any()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("data", [b"", b"garbage", b"PK\x03\x04" + bytes(64), os.urandom(2048)])
def test_tree_rejects_garbage(data: bytes) -> None:
    with pytest.raises(ModelCodecError):
        DecisionTreeFamily().decode(data)


def _forge(model: TreeModel, **changes: np.ndarray[Any, Any]) -> bytes:
    """The tree's arrays with some replaced (or added), re-encoded with the original metadata."""
    data = DecisionTreeFamily().encode(model)
    arrays = dict(load_arrays(data))
    arrays.update(changes)
    return encode_arrays(arrays, read_header(data)[1])


def test_tree_rejects_forged_structure(tree: tuple[DecisionTreeFamily, TreeModel]) -> None:
    family, model = tree
    left = load_arrays(family.encode(model))["left_child"].copy()
    left[0] = 0  # a cycle back to the root: sklearn's predict would never return
    with pytest.raises(ModelCodecError, match="child"):
        family.decode(_forge(model, left_child=left))
    feature = load_arrays(family.encode(model))["feature"].copy()
    feature[0] = 10_000  # reads far outside each sample
    with pytest.raises(ModelCodecError, match="feature"):
        family.decode(_forge(model, feature=feature))
    with pytest.raises(ModelCodecError, match="length"):
        family.decode(_forge(model, threshold=np.zeros(3)))


def test_tree_rejects_unexpected_tensors_dtypes_and_metadata(tree: tuple[DecisionTreeFamily, TreeModel]) -> None:
    family, model = tree
    with pytest.raises(ModelCodecError, match="unexpected tensors"):
        family.decode(_forge(model, payload=np.zeros(4, dtype=np.uint8)))
    with pytest.raises(ModelCodecError, match="is not I64"):
        family.decode(_forge(model, feature=np.zeros(len(load_arrays(family.encode(model))["feature"]))))
    data = family.encode(model)
    arrays = load_arrays(data)
    meta = read_header(data)[1]
    with pytest.raises(ModelCodecError, match="class count"):
        family.decode(encode_arrays(arrays, {**meta, "n_classes": 0}))
    with pytest.raises(ModelCodecError, match="out of range"):
        family.decode(encode_arrays(arrays, {**meta, "n_classes": 5}))
    with pytest.raises(ModelCodecError):  # a LeNet file is not a tree
        family.decode(encode_safetensors({"w": torch.zeros(2)}, {"family": "lenet5", "format": 1, "n_classes": 10}))


def test_make_family() -> None:
    assert make_family("decision_tree", {"max_depth": 3}).name == "decision_tree"
    assert make_family("lenet5", {"epochs": 1}).name == "lenet5"
    with pytest.raises(ValueError, match="unknown"):
        make_family("svm", {})
    with pytest.raises(ValueError):
        make_family("decision_tree", {"random_state": 3})
    with pytest.raises(ValueError):
        make_family("decision_tree", {"no_such_param": 3})
    with pytest.raises(ValueError):
        make_family("lenet5", {"no_such_param": 3})


def test_lenet_tiny_mnist() -> None:
    train, test = load_dataset("mnist5k")
    small = train.subset(np.arange(300, dtype=np.int64))
    family = LeNet5Family(epochs=1, batch_size=32, device="cpu")
    model = family.fit(small.X, small.y, 10, small.shape, seed=3)
    data = family.encode(model)
    assert data == family.encode(family.fit(small.X, small.y, 10, small.shape, seed=3))
    decoded = family.decode(data)
    proba = family.predict_proba(model, test.X[:50])
    assert proba.shape == (50, 10) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(family.predict_proba(decoded, test.X[:50]), proba)


def test_lenet_colour_images() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((40, 3 * 32 * 32), dtype=np.float32)
    y = rng.integers(0, 3, size=40)
    family = LeNet5Family(epochs=1, device="cpu")
    model = family.fit(X, y, 5, (3, 32, 32), seed=0)
    assert family.predict_proba(family.decode(family.encode(model)), X[:7]).shape == (7, 5)
    with pytest.raises(ValueError):
        family.fit(X[:, :64], y, 5, (1, 8, 8), seed=0)


def test_lenet_rejects_bad_bytes() -> None:
    family = LeNet5Family(epochs=1, device="cpu")
    import torch

    good = family.encode(family.fit(np.zeros((4, 784), np.float32), np.zeros(4, np.int64), 10, (1, 28, 28), 0))
    meta = {"family": "lenet5", "format": 1, "shape": [1, 28, 28], "n_classes": 10}
    state = family.decode(good).net.state_dict()
    candidates = [
        b"",
        b"garbage bytes",
        (2**62).to_bytes(8, "little") + b"{}",
        good[:-10],
        save_safetensors({"w": torch.zeros(3)}),  # no metadata
        save_safetensors({"w": torch.zeros(3, dtype=torch.int64)}, metadata={"chainlab": json.dumps(meta)}),
        encode_safetensors({"w": torch.zeros(3)}, meta),  # wrong architecture
        encode_safetensors(state, {**meta, "n_classes": 7}),
        encode_safetensors(state, {**meta, "shape": [1, 8, 8]}),
        encode_safetensors(state, {**meta, "family": "decision_tree"}),
        DecisionTreeFamily().encode(
            DecisionTreeFamily().fit(np.zeros((2, 3), np.float32), np.array([0, 1]), 2, (3,), 0)
        ),
    ]
    for data in candidates:
        with pytest.raises(ModelCodecError):
            family.decode(data)
    with pytest.raises(ModelCodecError):
        DecisionTreeFamily().decode(good)
