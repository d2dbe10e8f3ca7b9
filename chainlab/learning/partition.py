"""Split an original training set into the public set and the miners' private sets (BagChain, Appendix)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from chainlab.learning.datasets import Dataset

SCHEMES = ("iid", "dirichlet", "feature", "labels")


@dataclass(frozen=True)
class Partition:
    """The public training set D_T shared by all miners and one private set D_M_i per miner."""

    public: Dataset
    private: tuple[Dataset, ...]


def partition(
    train: Dataset,
    n_miners: int,
    *,
    kappa: float,
    zeta: float,
    phi: int | None = None,
    scheme: str = "iid",
    beta: float = 0.5,
    rng: np.random.Generator,
) -> Partition:
    """Partition the original training set D̂_T among `n_miners` miners.

    The public set D_T is a uniformly random round(κ·|D̂_T|) samples; the private sets come from the rest:

    - "iid" (the Appendix): the rest is shuffled and φ (default N) disjoint subsets D_S_j of round(ζ·|D̂_T|)
      samples are cut from it (ValueError if they do not fit, i.e. κ + φ·ζ > 1). Miner i gets D_S_i for
      i < φ and a uniformly random D_S_j otherwise, so with φ < N some miners share a private set.
    - "dirichlet" (label skew): the private pool D_P is a random N·round(ζ·|D̂_T|) samples of the rest, so
      that ζ keeps its meaning as the average private share per miner (the paper leaves |D_P| open). For
      each class k, p_k ~ Dir_N(β) and the class-k samples of D_P are split among miners in proportions p_k.
      A small β concentrates each class on few miners; a miner's private set may then be tiny or empty
      (its local set, D_T plus D_M_i, is still non-empty whenever κ > 0).
    - "feature" (feature skew): a stand-in for FEMNIST's per-writer split on datasets without writer ids.
      The private pool (N·round(ζ·|D̂_T|) random samples of the rest) is ordered by mean pixel intensity, a
      proxy for stroke thickness, and cut into N contiguous equal groups, one per miner (thinnest first).
    - "labels" (seed 001's "1node2labels"): miner i gets only labels {i, i+1} mod n_classes from the private pool
      (sized as for "dirichlet"); each label's samples are split evenly among the miners that hold it.

    φ only applies to "iid". Sizes are rounded to whole samples; the same `rng` state gives the same split.
    """
    if n_miners < 1:
        raise ValueError("n_miners must be at least 1")
    if not 0.0 <= kappa <= 1.0 or zeta <= 0.0:
        raise ValueError("need 0 <= kappa <= 1 and zeta > 0")
    n = len(train)
    n_public = round(kappa * n)
    share = round(zeta * n)
    perm = rng.permutation(n).astype(np.int64)
    public_idx, rest = perm[:n_public], perm[n_public:]

    if scheme == "iid":
        private_idx = _iid(rest, n_miners, share, n_miners if phi is None else phi, rng)
    elif scheme in ("dirichlet", "feature", "labels"):
        pool_size = n_miners * share
        if pool_size > len(rest):
            raise ValueError(f"kappa + n_miners * zeta = {kappa + n_miners * zeta:g} exceeds 1")
        pool = rest[:pool_size]
        if scheme == "dirichlet":
            if beta <= 0:
                raise ValueError("beta must be positive")
            private_idx = _dirichlet(pool, train.y, train.n_classes, n_miners, beta, rng)
        elif scheme == "labels":
            private_idx = _two_labels(pool, train.y, train.n_classes, n_miners)
        else:
            private_idx = _by_intensity(pool, train.X, n_miners)
    else:
        raise ValueError(f"unknown partition scheme {scheme!r}; known: {', '.join(SCHEMES)}")

    # Miners that share a subset (phi < N) share its Dataset too: 1,000 miners hold ten copies' worth, not 1,000.
    subsets: dict[int, Dataset] = {}
    for idx in private_idx:
        if id(idx) not in subsets:
            subsets[id(idx)] = train.subset(idx)
    return Partition(train.subset(public_idx), tuple(subsets[id(idx)] for idx in private_idx))


def _iid(
    rest: NDArray[np.int64], n_miners: int, share: int, phi: int, rng: np.random.Generator
) -> list[NDArray[np.int64]]:
    if phi < 1:
        raise ValueError("phi must be at least 1")
    if phi * share > len(rest):
        raise ValueError(f"{phi} private subsets of {share} samples exceed the {len(rest)} non-public ones")
    subsets = [rest[j * share : (j + 1) * share] for j in range(phi)]
    return [subsets[i] if i < phi else subsets[int(rng.integers(phi))] for i in range(n_miners)]


def _dirichlet(
    pool: NDArray[np.int64],
    y: NDArray[np.int64],
    n_classes: int,
    n_miners: int,
    beta: float,
    rng: np.random.Generator,
) -> list[NDArray[np.int64]]:
    parts: list[list[NDArray[np.int64]]] = [[] for _ in range(n_miners)]
    for k in range(n_classes):
        # `pool` is already in random order, so cutting it in place is a random split of class k.
        members = pool[y[pool] == k]
        p_k = rng.dirichlet(np.full(n_miners, beta))
        cuts = np.floor(np.cumsum(p_k)[:-1] * len(members)).astype(np.int64)
        for j, chunk in enumerate(np.split(members, cuts)):
            parts[j].append(chunk)
    return [np.concatenate(chunks) for chunks in parts]


def _by_intensity(pool: NDArray[np.int64], X: NDArray[np.float32], n_miners: int) -> list[NDArray[np.int64]]:
    intensity = X[pool].mean(axis=1)
    ordered = pool[np.argsort(intensity, kind="stable")]
    return list(np.array_split(ordered, n_miners))


def _two_labels(
    pool: NDArray[np.int64], y: NDArray[np.int64], n_classes: int, n_miners: int
) -> list[NDArray[np.int64]]:
    holders: list[list[int]] = [[] for _ in range(n_classes)]
    for i in range(n_miners):
        for k in (i % n_classes, (i + 1) % n_classes):
            holders[k].append(i)
    parts: list[list[NDArray[np.int64]]] = [[] for _ in range(n_miners)]
    for k in range(n_classes):
        if holders[k]:
            for j, chunk in zip(holders[k], np.array_split(pool[y[pool] == k], len(holders[k])), strict=True):
                parts[j].append(chunk)
    return [np.concatenate(chunks) if chunks else np.empty(0, np.int64) for chunks in parts]
