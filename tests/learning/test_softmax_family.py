"""The softmax-regression base-model family: deterministic fits, a safe byte encoding, rejections of bad bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.learning.codec import encode_arrays
from chainlab.learning.datasets import load_dataset
from chainlab.learning.models import ModelCodecError, SoftmaxFamily, SoftmaxModel, make_family


def test_fit_is_deterministic_and_learns_digits() -> None:
    train, test = load_dataset("digits")
    family = SoftmaxFamily(epochs=3, lr=0.05)
    a = family.fit(train.X, train.y, train.n_classes, train.shape, 4)
    b = family.fit(train.X, train.y, train.n_classes, train.shape, 4)
    assert family.encode(a) == family.encode(b)
    c = family.fit(train.X, train.y, train.n_classes, train.shape, 5)
    assert family.encode(c) != family.encode(a)
    proba = family.predict_proba(a, test.X)
    assert proba.shape == (len(test), 10) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert float(np.mean(proba.argmax(axis=1) == test.y)) > 0.85


def test_round_trip() -> None:
    family = SoftmaxFamily()
    model = SoftmaxModel(np.arange(12, dtype=np.float32).reshape(3, 4), np.ones(3, dtype=np.float32))
    back = family.decode(family.encode(model))
    assert np.array_equal(back.weight, model.weight) and np.array_equal(back.bias, model.bias)


@pytest.mark.parametrize(
    ("arrays", "meta", "message"),
    [
        ({"weight": np.zeros((3, 4), np.float32), "bias": np.zeros(2, np.float32)}, 3, "bias"),
        ({"weight": np.zeros((2, 4), np.float32), "bias": np.zeros(3, np.float32)}, 3, "weight"),
        ({"weight": np.full((3, 4), np.nan, np.float32), "bias": np.zeros(3, np.float32)}, 3, "finite"),
        ({"weight": np.zeros((3, 4), np.float32), "bias": np.zeros(3, np.float32)}, 0, "class count"),
        ({"weight": np.zeros((3, 4), np.float64), "bias": np.zeros(3, np.float32)}, 3, "not F32"),
    ],
)
def test_decode_rejects(arrays: dict[str, np.ndarray], meta: int, message: str) -> None:  # type: ignore[type-arg]
    data = encode_arrays(arrays, {"family": "softmax", "format": 1, "n_classes": meta})
    with pytest.raises(ModelCodecError, match=message):
        SoftmaxFamily().decode(data)


def test_decode_rejects_another_family() -> None:
    arrays = {"weight": np.zeros((3, 4), np.float32), "bias": np.zeros(3, np.float32)}
    with pytest.raises(ModelCodecError, match="not a softmax model"):
        SoftmaxFamily().decode(encode_arrays(arrays, {"family": "lenet5", "format": 1, "n_classes": 3}))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300))
def test_decode_never_crashes_on_garbage(data: bytes) -> None:
    with pytest.raises(ModelCodecError):
        SoftmaxFamily().decode(data)


@pytest.mark.parametrize(
    "params", [{"epochs": 0}, {"batch_size": 0}, {"lr": 0}, {"weight_decay": -1}, {"lr": "x"}, {"momentum": 0.9}]
)
def test_bad_parameters(params: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="softmax"):
        make_family("softmax", params)


def test_make_family_and_empty_data() -> None:
    family = make_family("softmax", {"epochs": 1})
    assert isinstance(family, SoftmaxFamily)
    with pytest.raises(ValueError, match="empty"):
        family.fit(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 3, (4,), 0)
