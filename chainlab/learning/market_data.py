"""The data marketplace's stand-in for IMDB (protocols.md 4.5): binary MNIST, "digit < 5", with pixels binarised at
0.5 as binary word-presence features; sample encoding as packed bits; the owner's perceptron accuracy."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from chainlab.learning.datasets import Dataset

THRESHOLD = 0.5
SMALL_DIGITS = 5  # label 1: the digit is < 5


def binary_task(data: Dataset) -> Dataset:
    """Features X > 0.5 as 0/1, label 1 where the digit is < 5 (two classes)."""
    X = (data.X > THRESHOLD).astype(np.float32)
    y = (data.y < SMALL_DIGITS).astype(np.int64)
    return Dataset(X, y, 2, data.shape, f"{data.name}:binary")


def packed(data: Dataset) -> NDArray[np.uint8]:
    """Every sample's features as packed bits, one row per sample (numpy.packbits, most significant bit first)."""
    return np.packbits(data.X > THRESHOLD, axis=1)


def sample_bytes(data: Dataset, index: int) -> bytes:
    """Sample `index` as its packed bits followed by one label byte; IndexError past the end."""
    if not 0 <= index < len(data):
        raise IndexError(f"sample {index} of {len(data)}")
    bits = np.packbits(data.X[index] > THRESHOLD)
    return bits.tobytes() + bytes([int(data.y[index])])


def split_sample(data: bytes) -> tuple[bytes, int]:
    """sample_bytes' inverse: (packed bits, label)."""
    return data[:-1], data[-1]


def samples(data: Dataset) -> list[tuple[bytes, int]]:
    """Every sample as (packed bits, label), for the owner's initial fit."""
    rows = packed(data)
    return [(rows[i].tobytes(), int(data.y[i])) for i in range(len(data))]


def perceptron_accuracy(weights: bytes, data: Dataset) -> float:
    """Accuracy of an integer perceptron (little-endian int64, bias last) on a binary dataset: predict 1 where
    w.x + b > 0. ValueError if the weights do not match the dataset's features."""
    if len(weights) % 8:
        raise ValueError(f"{len(weights)} bytes are not int64 weights")
    w = np.frombuffer(weights, dtype="<i8")
    features = data.X.shape[1]
    if len(w) != features + 1:
        raise ValueError(f"{len(w) - 1} weights for {features} features")
    if len(data) == 0:
        return 0.0
    X = (data.X > THRESHOLD).astype(np.int64)
    predicted = (X @ w[:-1] + w[-1] > 0).astype(np.int64)
    return float(np.mean(predicted == data.y))
