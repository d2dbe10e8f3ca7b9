"""Tests for the CIFAR-10, SVHN and FEMNIST loaders on tiny files written in each source's format."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.io import savemat

from chainlab.learning.datasets import load_cifar10, load_femnist, load_svhn


def _write_cifar_batch(path: Path, pixels: NDArray[np.uint8], labels: list[int], protocol: int) -> None:
    batch = {
        b"batch_label": b"training batch",
        b"labels": labels,
        b"data": pixels,
        b"filenames": [f"img{i}.png".encode() for i in range(len(labels))],
    }
    path.write_bytes(pickle.dumps(batch, protocol=protocol))


def test_cifar10(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    batches = []
    for i, protocol in enumerate((2, 4, 2), start=1):
        pixels = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
        labels = [i, i + 1, 9]
        batches.append((pixels, labels))
        _write_cifar_batch(root / f"data_batch_{i}", pixels, labels, protocol)
    test_pixels = np.zeros((2, 3072), dtype=np.uint8)
    test_pixels[1, 1024] = 255  # green channel, pixel (0, 0)
    _write_cifar_batch(root / "test_batch", test_pixels, [0, 5], 2)

    train, test = load_cifar10(tmp_path)  # the parent directory is accepted too
    assert (len(train), len(test)) == (9, 2)
    assert train.shape == (3, 32, 32) and train.n_classes == 10 and train.name == "cifar10"
    np.testing.assert_array_equal(train.y, [1, 2, 9, 2, 3, 9, 3, 4, 9])
    np.testing.assert_allclose(train.X[:3], batches[0][0] / 255.0, rtol=1e-6)
    image = test.X[1].reshape(3, 32, 32)
    assert image[1, 0, 0] == 1.0 and image.sum() == 1.0


def test_cifar10_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "executed"

    class Shell:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Shell()}, protocol=2))
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Shell()}))
    with pytest.raises(pickle.UnpicklingError):
        load_cifar10(tmp_path)
    assert not marker.exists()


def test_cifar10_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_cifar10(tmp_path)


def test_svhn(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(32, 32, 3, 4), dtype=np.uint8)
    savemat(tmp_path / "train_32x32.mat", {"X": X, "y": np.array([[10], [1], [9], [10]], dtype=np.uint8)})
    savemat(tmp_path / "test_32x32.mat", {"X": X[..., :2], "y": np.array([[3], [10]], dtype=np.uint8)})
    train, test = load_svhn(tmp_path / "train_32x32.mat", tmp_path / "test_32x32.mat")
    assert (len(train), len(test)) == (4, 2)
    np.testing.assert_array_equal(train.y, [0, 1, 9, 0])
    np.testing.assert_array_equal(test.y, [3, 0])
    assert train.shape == (3, 32, 32)
    # Sample i, channel c, row h, column w comes from X[h, w, c, i].
    image = train.X[2].reshape(3, 32, 32)
    assert image[1, 5, 7] == np.float32(X[5, 7, 1, 2]) / np.float32(255)


def _leaf_shard(path: Path, users: dict[str, list[int]], rng: np.random.Generator) -> None:
    user_data = {
        user: {"x": rng.random((len(labels), 784)).round(3).tolist(), "y": labels} for user, labels in users.items()
    }
    counts = [len(labels) for labels in users.values()]
    path.write_text(json.dumps({"users": list(users), "num_samples": counts, "user_data": user_data}))


def test_femnist(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    _leaf_shard(tmp_path / "a.json", {"f0001": [1, 2, 40], "f0002": [7]}, rng)
    _leaf_shard(tmp_path / "b.json", {"f0003": [61, 0]}, rng)
    data, writers = load_femnist([tmp_path / "a.json", tmp_path / "b.json"])
    assert len(data) == 6 and data.n_classes == 62 and data.shape == (1, 28, 28)
    assert writers == ["f0001", "f0001", "f0001", "f0002", "f0003", "f0003"]
    np.testing.assert_array_equal(data.y, [1, 2, 40, 7, 61, 0])
    assert float(data.X.min()) >= 0.0 and float(data.X.max()) <= 1.0

    digits, digit_writers = load_femnist([tmp_path / "a.json", tmp_path / "b.json"], digits_only=True)
    assert digits.n_classes == 10
    np.testing.assert_array_equal(digits.y, [1, 2, 7, 0])
    assert digit_writers == ["f0001", "f0001", "f0002", "f0003"]
