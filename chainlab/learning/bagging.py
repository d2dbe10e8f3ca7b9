"""Bagging: bootstrap resampling and the rules that combine base-model outputs into one prediction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

RULES = ("majority", "soft")


def resample(n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Bootstrap sample: n indices drawn uniformly from range(n) with replacement."""
    if n < 0:
        raise ValueError("n must be non-negative")
    return rng.integers(0, n, size=n, dtype=np.int64) if n else np.empty(0, dtype=np.int64)


def _stack(probas: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
    if len(probas) == 0:
        raise ValueError("no base-model outputs to aggregate")
    first = np.shape(probas[0])
    if len(first) != 2 or any(np.shape(p) != first for p in probas):
        raise ValueError("base-model outputs must all be (n, n_classes) arrays of one shape")
    return np.stack([np.asarray(p, dtype=np.float32) for p in probas])


def majority_vote(probas: Sequence[NDArray[np.float32]]) -> NDArray[np.int64]:
    """Each base model votes for its most probable class; the most-voted class wins, ties to the lowest."""
    stacked = _stack(probas)
    _, n, n_classes = stacked.shape
    votes = stacked.argmax(axis=2)
    counts = np.zeros((n, n_classes), dtype=np.int64)
    rows = np.broadcast_to(np.arange(n), votes.shape)
    np.add.at(counts, (rows, votes), 1)
    # argmax returns the first maximum, which is the lowest class index among tied ones.
    winners: NDArray[np.int64] = counts.argmax(axis=1).astype(np.int64)
    return winners


def soft_vote(probas: Sequence[NDArray[np.float32]]) -> NDArray[np.int64]:
    """The class with the highest mean probability across base models (ties to the lowest index)."""
    stacked = _stack(probas)
    # float64 accumulation keeps the result stable against the order the models arrive in.
    winners: NDArray[np.int64] = stacked.astype(np.float64).mean(axis=0).argmax(axis=1).astype(np.int64)
    return winners


def aggregate(rule: str, probas: Sequence[NDArray[np.float32]]) -> NDArray[np.int64]:
    """Combine base-model probabilities with `rule` ("majority" or "soft")."""
    if rule == "majority":
        return majority_vote(probas)
    if rule == "soft":
        return soft_vote(probas)
    raise ValueError(f"unknown aggregation rule {rule!r}; known: {', '.join(RULES)}")
