"""The ML work a driver performs for protocol nodes: train base models, score models and ensembles.

Shared by the simulator and the live driver, so both account for and cache ML work the same way.
"""

from __future__ import annotations

import operator
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from chainlab.learning.bagging import RULES, aggregate, resample
from chainlab.learning.codec import ModelCodecError
from chainlab.learning.datasets import Dataset
from chainlab.learning.metrics import METRICS, compute_metric
from chainlab.learning.models import ModelFamily, make_family

if TYPE_CHECKING:  # torch is imported on first use: tree-only runs and their worker processes never pay for it
    from chainlab.learning.federated import Federated

MAX_SEED = 2**32 - 1

ModelRef = tuple[bytes, bytes]
"""(model_key, model_bytes): the key names the bytes (e.g. their hash) and keys every cache."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model family to use and its hyper-parameters; hashable as long as the param values are."""

    family: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_mapping(cls, family: str, params: Mapping[str, Any]) -> ModelSpec:
        """A spec with `params` sorted by name, so equal mappings give equal specs."""
        return cls(family, tuple(sorted((str(k), v) for k, v in params.items())))

    def build(self) -> ModelFamily:
        """Instantiate the family."""
        return make_family(self.family, dict(self.params))


def from_mapping(family: str, params: Mapping[str, Any]) -> ModelSpec:
    """Same as ModelSpec.from_mapping."""
    return ModelSpec.from_mapping(family, params)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _LRU(Generic[K, V]):
    """A dict that forgets its least recently used entry beyond `capacity` entries."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("cache capacity must be positive")
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def drop(self, predicate: Callable[[K], bool]) -> None:
        for key in [k for k in self._items if predicate(k)]:
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: K) -> bool:
        return key in self._items  # a look that does not count as a use


class Worker:
    """Runs and caches a node's ML work; `ml_seconds` accumulates the wall time it spent.

    ml_seconds counts training (resampling, fitting, encoding), decoding and prediction; cache hits cost
    nothing. Caches and their bounds (least recently used entries are evicted beyond them):

    - decoded models, per model_key (`max_models`);
    - class probabilities, per (model_key, dataset commitment) (`max_probas`);
    - ensemble scores, per (sorted model keys, dataset commitment, rule, metric) (`max_results`).

    `clear_dataset` drops everything computed on one dataset, `clear` drops everything. Not thread-safe:
    use one Worker per thread.
    """

    def __init__(self, *, max_models: int = 256, max_probas: int = 4096, max_results: int = 65536) -> None:
        self.ml_seconds: float = 0.0
        self._federated: Federated | None = None
        self._families: dict[ModelSpec, ModelFamily] = {}
        self._models: _LRU[bytes, Any] = _LRU(max_models)
        self._probas: _LRU[tuple[bytes, bytes], NDArray[np.float32]] = _LRU(max_probas)
        self._results: _LRU[tuple[tuple[bytes, ...], bytes, str, str], float] = _LRU(max_results)

    @property
    def federated(self) -> Federated:
        """The weight-space operations of the federated protocols (made on first use: they pin torch to one
        thread, which BagChain's own training does not ask for)."""
        if self._federated is None:
            from chainlab.learning.federated import Federated

            self._federated = Federated()
        return self._federated

    # --- training ------------------------------------------------------------------------------------

    def train(self, spec: ModelSpec, data: Dataset, seed: int) -> bytes:
        """Train(Resample(data); f): fit on a bootstrap sample drawn with `seed`, and encode the model."""
        family = self._family(spec)
        _check_seed(seed)
        start = time.perf_counter()
        try:
            idx = resample(len(data), np.random.default_rng(seed))
            model = family.fit(data.X[idx], data.y[idx], data.n_classes, data.shape, seed)
            return family.encode(model)
        finally:
            self.ml_seconds += time.perf_counter() - start

    def fit_plain(self, spec: ModelSpec, data: Dataset, seed: int) -> bytes:
        """Fit on `data` as is, without resampling (the "public" baseline), and encode the model."""
        family = self._family(spec)
        _check_seed(seed)
        start = time.perf_counter()
        try:
            return family.encode(family.fit(data.X, data.y, data.n_classes, data.shape, seed))
        finally:
            self.ml_seconds += time.perf_counter() - start

    # --- evaluation ----------------------------------------------------------------------------------

    def probabilities(
        self, model_key: bytes, model_bytes: bytes, spec: ModelSpec, data: Dataset
    ) -> NDArray[np.float32]:
        """Class probabilities of the model on data.X, (len(data), n_classes), read-only and cached.

        Raises ModelCodecError if the bytes do not decode to a model of `spec`'s family that fits `data`
        (feature count, input shape, class count): a bad model from another node is an input error.
        """
        key = (model_key, data.commitment())
        cached = self._probas.get(key)
        if cached is not None:
            return cached
        proba = self.fresh_probabilities(model_key, model_bytes, spec, data)
        self._probas.put(key, proba)
        return proba

    def fresh_probabilities(
        self, model_key: bytes, model_bytes: bytes, spec: ModelSpec, data: Dataset
    ) -> NDArray[np.float32]:
        """probabilities() computed now and not kept: what a process computes for another (see adopt_probabilities).
        Raises ModelCodecError as probabilities() does."""
        proba = self._predict(model_key, model_bytes, spec, data.X)
        if proba.shape != (len(data), data.n_classes):
            raise ModelCodecError(f"model outputs {proba.shape}, expected {(len(data), data.n_classes)}")
        proba.flags.writeable = False
        return proba

    def has_probabilities(self, model_key: bytes, data: Dataset) -> bool:
        """Whether probabilities() of the model on data would come from the cache (without touching its order)."""
        return (model_key, data.commitment()) in self._probas

    def adopt_probabilities(self, model_key: bytes, data: Dataset, proba: NDArray[np.float32]) -> None:
        """Cache probabilities of the model on data that another Worker computed from the same model bytes
        (fresh_probabilities, in another process): probabilities() then returns them, as if computed here."""
        if proba.shape != (len(data), data.n_classes):
            raise ValueError(f"probabilities of shape {proba.shape}, expected {(len(data), data.n_classes)}")
        proba.flags.writeable = False
        self._probas.put((model_key, data.commitment()), proba)

    def base_metric(self, model_key: bytes, model_bytes: bytes, spec: ModelSpec, data: Dataset, metric: str) -> float:
        """Score one model's predictions on `data` with `metric`."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        pred = self.probabilities(model_key, model_bytes, spec, data).argmax(axis=1)
        return compute_metric(metric, pred, data.y, data.n_classes)

    def ensemble_metric(
        self, models: Sequence[ModelRef], spec: ModelSpec, data: Dataset, rule: str, metric: str
    ) -> float:
        """Score the bagged ensemble of `models` on `data`; independent of the order of `models`.

        One undecodable or ill-fitting model makes the whole call raise ModelCodecError; callers screen
        models individually (e.g. with base_metric) before ensembling them.
        """
        if rule not in RULES:
            raise ValueError(f"unknown aggregation rule {rule!r}; known: {', '.join(RULES)}")
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        if not models:
            raise ValueError("an ensemble needs at least one model")
        # Sorted on (key, bytes) pairs in C: keys name their bytes, so this is the order of the keys, and a list
        # already in order (as nodes send it) takes one pass.
        ordered = sorted(models)
        key = (tuple(map(operator.itemgetter(0), ordered)), data.commitment(), rule, metric)
        cached = self._results.get(key)
        if cached is not None:
            return cached
        probas = [self.probabilities(k, b, spec, data) for k, b in ordered]
        value = compute_metric(metric, aggregate(rule, probas), data.y, data.n_classes)
        self._results.put(key, value)
        return value

    def ensemble_predict(
        self, models: Sequence[ModelRef], spec: ModelSpec, X: NDArray[np.float32], rule: str
    ) -> NDArray[np.int64]:
        """The ensemble's predicted classes for X (not cached; for serving predictions)."""
        ordered = sorted(models, key=lambda ref: ref[0])
        return aggregate(rule, [self._predict(k, b, spec, X) for k, b in ordered])

    # --- caches --------------------------------------------------------------------------------------

    def clear_dataset(self, commitment: bytes) -> None:
        """Forget probabilities and scores computed on the dataset with this commitment."""
        self._probas.drop(lambda key: key[1] == commitment)
        self._results.drop(lambda key: key[1] == commitment)

    def clear(self) -> None:
        """Forget every cached model, probability and score."""
        self._models.clear()
        self._probas.clear()
        self._results.clear()

    # --- internals -----------------------------------------------------------------------------------

    def _family(self, spec: ModelSpec) -> ModelFamily:
        try:
            family = self._families.get(spec)
        except TypeError:  # unhashable parameter values: build afresh each time
            return spec.build()
        if family is None:
            family = self._families[spec] = spec.build()
        return family

    def _predict(
        self, model_key: bytes, model_bytes: bytes, spec: ModelSpec, X: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        family = self._family(spec)
        start = time.perf_counter()
        try:
            model = self._models.get(model_key)
            if model is None:
                model = family.decode(model_bytes)
                self._models.put(model_key, model)
            try:
                return family.predict_proba(model, X)
            except (ValueError, RuntimeError) as exc:
                # The data was validated on load; a model that cannot consume it was built for another task.
                raise ModelCodecError(f"model does not fit this data: {exc}") from exc
        finally:
            self.ml_seconds += time.perf_counter() - start


def _check_seed(seed: int) -> None:
    # scikit-learn accepts seeds in [0, 2**32); hash-derived seeds must be reduced by the caller.
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must lie in [0, {MAX_SEED}]")
