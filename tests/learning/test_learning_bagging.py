"""Tests for bootstrap resampling and the vote aggregation rules."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from chainlab.learning.bagging import aggregate, majority_vote, resample, soft_vote


def _onehot(classes: list[int], n_classes: int) -> NDArray[Any]:
    return np.eye(n_classes, dtype=np.float32)[classes]


def test_resample_is_a_bootstrap() -> None:
    idx = resample(1000, np.random.default_rng(0))
    assert idx.dtype == np.int64 and idx.shape == (1000,)
    assert idx.min() >= 0 and idx.max() < 1000
    # With replacement: about 1 - 1/e of the samples appear.
    assert 0.58 < len(np.unique(idx)) / 1000 < 0.68
    np.testing.assert_array_equal(idx, resample(1000, np.random.default_rng(0)))
    assert resample(0, np.random.default_rng(0)).shape == (0,)


def test_majority_vote_and_ties() -> None:
    a = _onehot([0, 2, 1], 3)
    b = _onehot([1, 2, 1], 3)
    c = _onehot([1, 0, 0], 3)
    np.testing.assert_array_equal(majority_vote([a, b, c]), [1, 2, 1])
    # One vote each: the lowest class index wins.
    np.testing.assert_array_equal(majority_vote([a, b]), [0, 2, 1])
    np.testing.assert_array_equal(majority_vote([b, a]), [0, 2, 1])
    # A model's own tie votes for its lowest class.
    flat = np.full((1, 3), 1 / 3, dtype=np.float32)
    np.testing.assert_array_equal(majority_vote([flat]), [0])


def test_soft_vote_differs_from_majority() -> None:
    confident = np.array([[0.0, 1.0]], dtype=np.float32)
    lukewarm = np.array([[0.6, 0.4]], dtype=np.float32)
    probas = [confident, lukewarm, lukewarm]
    np.testing.assert_array_equal(majority_vote(probas), [0])
    np.testing.assert_array_equal(soft_vote(probas), [1])
    np.testing.assert_array_equal(soft_vote([np.array([[0.5, 0.5]], dtype=np.float32)]), [0])


def test_aggregate_errors() -> None:
    with pytest.raises(ValueError):
        aggregate("majority", [])
    with pytest.raises(ValueError, match="rule"):
        aggregate("median", [_onehot([0], 2)])
    with pytest.raises(ValueError):
        aggregate("soft", [_onehot([0], 2), _onehot([0], 3)])


@st.composite
def _probas(draw: st.DrawFn) -> list[NDArray[Any]]:
    m = draw(st.integers(1, 7))
    n = draw(st.integers(1, 15))
    c = draw(st.integers(2, 6))
    unit = st.floats(0, 1, width=32)
    return [draw(arrays(np.float32, (n, c), elements=unit)) for _ in range(m)]


@given(_probas(), st.randoms(use_true_random=False))
def test_aggregate_invariants(probas: list[NDArray[Any]], shuffler: random.Random) -> None:
    n, c = probas[0].shape
    for rule in ("majority", "soft"):
        result = aggregate(rule, probas)
        assert result.shape == (n,) and result.dtype == np.int64
        assert result.min() >= 0 and result.max() < c
    permuted = list(probas)
    shuffler.shuffle(permuted)
    np.testing.assert_array_equal(aggregate("majority", permuted), aggregate("majority", probas))
    # The majority winner always received at least one vote.
    votes = np.stack([p.argmax(axis=1) for p in probas])
    winners = aggregate("majority", probas)
    assert all(winners[i] in votes[:, i] for i in range(n))
