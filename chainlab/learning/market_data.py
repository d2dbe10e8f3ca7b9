"""The data marketplace's stand-in for IMDB (protocols.md 4.5): binary MNIST, "digit < 5", with pixels binarised at
0.5 as binary word-presence features (or the 10 digits, for the common experiment); sample encoding as packed bits,
sample files; the owner's perceptron accuracy."""

from __future__ import annotations

import struct

import numpy as np
from numpy.typing import NDArray

from chainlab.learning.datasets import Dataset

THRESHOLD = 0.5
SMALL_DIGITS = 5  # label 1: the digit is < 5
SAMPLES_MAGIC = b"CLMS"  # the core's sample file (chainlab.protocols.datamarket.perceptron.encode_samples)


def binary_task(data: Dataset) -> Dataset:
    """Features X > 0.5 as 0/1, label 1 where the digit is < 5 (two classes)."""
    X = (data.X > THRESHOLD).astype(np.float32)
    y = (data.y < SMALL_DIGITS).astype(np.int64)
    return Dataset(X, y, 2, data.shape, f"{data.name}:binary")


def binary_features(data: Dataset) -> Dataset:
    """Features X > 0.5 as 0/1, the labels as they are (the 10-class task)."""
    X = (data.X > THRESHOLD).astype(np.float32)
    return Dataset(X, data.y, data.n_classes, data.shape, f"{data.name}:binarised")


def packed(data: Dataset) -> NDArray[np.uint8]:
    """Every sample's features as packed bits, one row per sample (numpy.packbits, most significant bit first)."""
    return np.packbits(data.X > THRESHOLD, axis=1)


def sample_bytes(data: Dataset, index: int) -> bytes:
    """Sample `index` as its packed bits followed by one label byte; IndexError past the end."""
    if not 0 <= index < len(data):
        raise IndexError(f"sample {index} of {len(data)}")
    bits = np.packbits(data.X[index] > THRESHOLD)
    return bits.tobytes() + bytes([int(data.y[index])])


def sample_file(data: Dataset, start: int, count: int) -> bytes:
    """Samples start .. start + count - 1 (fewer at the end) as a sample file: magic, features and count as
    little-endian u32s, then each sample's packed bits and label byte."""
    if start < 0 or count < 0:
        raise IndexError(f"samples {start} + {count} of {len(data)}")
    rows = np.packbits(data.X[start : start + count] > THRESHOLD, axis=1)
    labels = data.y[start : start + count].astype(np.uint8)[:, None]
    body = np.concatenate([rows, labels], axis=1).tobytes() if len(rows) else b""
    return struct.pack("<4sII", SAMPLES_MAGIC, data.X.shape[1], len(rows)) + body


def split_sample(data: bytes) -> tuple[bytes, int]:
    """sample_bytes' inverse: (packed bits, label)."""
    return data[:-1], data[-1]


def samples(data: Dataset) -> list[tuple[bytes, int]]:
    """Every sample as (packed bits, label), for the owner's initial fit."""
    rows = packed(data)
    return [(rows[i].tobytes(), int(data.y[i])) for i in range(len(data))]


def perceptron_accuracy(weights: bytes, data: Dataset) -> float:
    """Accuracy of an integer perceptron (little-endian int64, bias last) on a binarised dataset: predict 1 where
    w.x + b > 0, or with one row of weights per class, the class of the largest w_k.x + b_k (the first on a tie).
    ValueError if the weights do not match the dataset's features and classes."""
    if len(weights) % 8:
        raise ValueError(f"{len(weights)} bytes are not int64 weights")
    w = np.frombuffer(weights, dtype="<i8")
    features = data.X.shape[1]
    rows = len(w) // (features + 1)
    if len(w) % (features + 1) or rows not in (1, data.n_classes) or (rows == 1 and data.n_classes != 2):
        raise ValueError(f"{len(w)} weights for {features} features and {data.n_classes} classes")
    if len(data) == 0:
        return 0.0
    X = (data.X > THRESHOLD).astype(np.int64)
    if rows == 1:
        predicted = (X @ w[:-1] + w[-1] > 0).astype(np.int64)
    else:
        table = w.reshape(rows, features + 1)
        predicted = np.argmax(X @ table[:, :-1].T + table[:, -1], axis=1)  # argmax takes the first on a tie
    return float(np.mean(predicted == data.y))
