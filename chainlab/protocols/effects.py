"""Effects: what a sans-IO protocol node asks its driver to do. Plain data, no behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chainlab.protocols.spec import ModelSpec


@dataclass(frozen=True)
class Broadcast:
    """Flood a message to every peer (Broadcast_M)."""

    message: Any  # the protocol's own message type
    size_mb: float


@dataclass(frozen=True)
class StartTimer:
    """Call on_timer(timer) after `after` rounds."""

    timer: str
    after: int


@dataclass(frozen=True)
class Train:
    """Train(Resample(D_T U D_Mi); f) on the node's private data; result: the model bytes."""

    job: int
    spec: ModelSpec
    train_commitment: bytes
    seed: int


@dataclass(frozen=True)
class Evaluate:
    """Metric(Aggregate(f(X; w_1..w_J)), y) on a dataset; result: the metric as a float."""

    job: int
    models: tuple[tuple[bytes, bytes], ...]  # (ModelHash, model bytes); a ModelHash is a cache key
    spec: ModelSpec
    dataset: bytes
    aggregate: str
    metric: str


@dataclass(frozen=True)
class Mine:
    """Search nonces n until H(prefix + suffix(n)) < target; result: the nonce."""

    job: int
    prefix: bytes
    target: int


@dataclass(frozen=True)
class CancelJob:
    """Abandon a Train, Evaluate, Mine or Fetch job; its result must not be delivered."""

    job: int


@dataclass(frozen=True)
class FetchModel:
    """Fetch(M_j, ModelHash) point to point; result: the model bytes, or None if refused or unreachable."""

    job: int
    peer: bytes
    request: Any  # the protocol's model request (BagChain: ModelRequest, carrying the D_V release)


@dataclass(frozen=True)
class FetchDataset:
    """Fetch(requester, Hash(D)) by content address; result: True once the dataset is held locally."""

    job: int
    peer: bytes
    commitment: bytes


@dataclass(frozen=True)
class Record:
    """An observation for metrics, logs and results; drivers never act on it."""

    event: str
    data: Mapping[str, Any] = field(default_factory=dict)


Effect = Broadcast | StartTimer | Train | Evaluate | Mine | CancelJob | FetchModel | FetchDataset | Record
