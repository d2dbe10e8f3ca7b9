"""Tests for the public/private partitioning schemes of the BagChain Appendix."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from chainlab.learning.datasets import Dataset
from chainlab.learning.partition import Partition, partition


def _synthetic(n: int = 1000, n_classes: int = 10, seed: int = 0) -> Dataset:
    """Feature 0 is the sample's id (so subsets can be compared), feature 1 a per-sample intensity."""
    rng = np.random.default_rng(seed)
    X = np.stack([np.arange(n) / n, rng.random(n), rng.random(n)], axis=1).astype(np.float32)
    y = np.arange(n, dtype=np.int64) % n_classes
    return Dataset(X, y, n_classes, (3,), "synthetic")


def _ids(data: Dataset, n: int = 1000) -> set[int]:
    return set(np.rint(data.X[:, 0] * n).astype(int).tolist())


def test_iid_sizes_and_disjointness() -> None:
    train = _synthetic()
    part = partition(train, 10, kappa=0.1, zeta=0.06, rng=np.random.default_rng(0))
    assert isinstance(part, Partition)
    assert len(part.public) == 100
    assert [len(p) for p in part.private] == [60] * 10
    seen = _ids(part.public)
    assert len(seen) == 100
    for private in part.private:
        ids = _ids(private)
        assert len(ids) == 60 and not ids & seen
        seen |= ids


def test_iid_phi_smaller_than_n_shares_subsets() -> None:
    train = _synthetic()
    part = partition(train, 10, kappa=0.1, zeta=0.06, phi=4, rng=np.random.default_rng(3))
    firsts = [frozenset(_ids(p)) for p in part.private[:4]]
    assert len(set(firsts)) == 4
    for private in part.private[4:]:
        assert frozenset(_ids(private)) in firsts


def test_iid_phi_larger_than_n_uses_first_subsets() -> None:
    part = partition(_synthetic(), 3, kappa=0.2, zeta=0.1, phi=8, rng=np.random.default_rng(0))
    assert [len(p) for p in part.private] == [100] * 3


def test_iid_too_large() -> None:
    with pytest.raises(ValueError):
        partition(_synthetic(), 10, kappa=0.5, zeta=0.06, rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        partition(_synthetic(), 2, kappa=0.5, zeta=0.06, phi=9, rng=np.random.default_rng(0))


def test_deterministic_for_a_seed() -> None:
    train = _synthetic()
    a = partition(train, 5, kappa=0.1, zeta=0.1, scheme="dirichlet", rng=np.random.default_rng(7))
    b = partition(train, 5, kappa=0.1, zeta=0.1, scheme="dirichlet", rng=np.random.default_rng(7))
    assert a.public.commitment() == b.public.commitment()
    assert [p.commitment() for p in a.private] == [p.commitment() for p in b.private]


def _mean_label_entropy(part: Partition, n_classes: int) -> float:
    entropies = []
    for private in part.private:
        if len(private) == 0:
            entropies.append(0.0)
            continue
        p = np.bincount(private.y, minlength=n_classes) / len(private)
        p = p[p > 0]
        entropies.append(float(-(p * np.log(p)).sum()))
    return float(np.mean(entropies))


def test_dirichlet_sizes_and_label_skew() -> None:
    train = _synthetic(n=10000)
    skewed = partition(train, 10, kappa=0.1, zeta=0.06, scheme="dirichlet", beta=0.05, rng=np.random.default_rng(1))
    even = partition(train, 10, kappa=0.1, zeta=0.06, scheme="dirichlet", beta=100.0, rng=np.random.default_rng(1))
    for part in (skewed, even):
        assert len(part.public) == 1000
        assert sum(len(p) for p in part.private) == 6000
        ids = [_ids(p, 10000) for p in [part.public, *part.private]]
        assert len(set().union(*ids)) == sum(len(i) for i in ids)
    assert _mean_label_entropy(skewed, 10) < 0.5 * _mean_label_entropy(even, 10)
    assert _mean_label_entropy(even, 10) > 0.95 * np.log(10)


def test_feature_scheme_orders_by_intensity() -> None:
    train = _synthetic()
    part = partition(train, 4, kappa=0.2, zeta=0.1, scheme="feature", rng=np.random.default_rng(2))
    assert len(part.public) == 200
    assert [len(p) for p in part.private] == [100] * 4
    intensity = [p.X.mean(axis=1) for p in part.private]
    for lower, higher in itertools.pairwise(intensity):
        assert lower.max() <= higher.min()
    ids = [_ids(p) for p in [part.public, *part.private]]
    assert len(set().union(*ids)) == 600


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="scheme"):
        partition(_synthetic(), 2, kappa=0.1, zeta=0.1, scheme="weird", rng=np.random.default_rng(0))


def test_labels_scheme_gives_node_i_labels_i_and_i_plus_1() -> None:
    data = _synthetic()
    part = partition(data, 10, kappa=0.0, zeta=0.1, scheme="labels", rng=np.random.default_rng(0))
    for i, shard in enumerate(part.private):
        assert set(shard.y.tolist()) == {i, (i + 1) % 10}
    # Each label is split between its two holders; nothing is dealt twice.
    assert sum(len(s) for s in part.private) == len(data)
