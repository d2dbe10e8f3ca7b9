"""LearningChain's aggregation (seed 003 Eq. 14-17) and the multi-Krum baseline, float64, in canonical message order.

Corrections of the paper's typos (protocols.md 3.3): Eq. 15-16 write w_{t+1} where w_t is meant (the messages
were computed on w_t); Eq. 15's "distance" is a cosine similarity, so the l *largest* are nearest; Eq. 17's sign
is wrong for minimisation: w_{t+1} = w_t - eta grad J.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from chainlab.learning.dp_gradients import LinearShape, Vector, decode_vector, decode_weights, encode_weights

RULES = ("l_nearest", "multi_krum")


def l_nearest(vectors: NDArray[np.float64], count: int) -> tuple[int, ...]:
    """Eq. 14-15: the `count` unit vectors of largest cosine to their sum v_s (ties to the earlier), ascending."""
    total = vectors.sum(axis=0)  # Eq. 14
    length = float(np.linalg.norm(total))
    cosines = vectors @ total / length if length > 0 else np.zeros(len(vectors))  # Eq. 15, vectors are unit
    order = np.argsort(-cosines, kind="stable")[:count]
    return tuple(sorted(int(i) for i in order))


def krum_f(byzantine: int, n: int) -> int:
    """f as multi-Krum can use it: at most floor((n - 3) / 2), since Krum needs n > 2f + 2 (protocols.md 3.4)."""
    return max(0, min(byzantine, (n - 3) // 2))


def multi_krum(gradients: NDArray[np.float64], byzantine: int) -> tuple[int, ...]:
    """Blanchard et al.: score each gradient by its summed squared distances to its n - f - 2 nearest others and
    keep the m = n - f lowest (ties to the earlier), ascending."""
    n = len(gradients)
    f = krum_f(byzantine, n)
    squares = (gradients**2).sum(axis=1)
    distances = np.maximum(squares[:, None] + squares[None, :] - 2.0 * (gradients @ gradients.T), 0.0)
    np.fill_diagonal(distances, np.inf)
    neighbours = max(1, n - f - 2)
    scores = np.sort(distances, axis=1)[:, :neighbours].sum(axis=1)
    order = np.argsort(scores, kind="stable")[: n - f]
    return tuple(sorted(int(i) for i in order))


def selected_count(rule: str, select: int, byzantine: int, n: int) -> int:
    """How many messages a rule aggregates out of n: l (l_nearest) or n - f (multi_krum)."""
    if rule == "l_nearest":
        return min(select, n)
    return n - krum_f(byzantine, n)


def aggregate(
    weights: bytes,
    shape: LinearShape,
    vectors: tuple[bytes, ...],
    norms: tuple[float, ...],
    *,
    rule: str,
    select: int,
    byzantine: int,
    lr: float,
    l2: float = 0.0,
) -> tuple[bytes, tuple[int, ...]]:
    """(w_{t+1} bytes, the aggregated indices): Eq. 16's mean of s_i g_i over the selection, Eq. 17 corrected.

    l_nearest selects on the unit vectors (Eq. 15); multi_krum scores the raw gradients s_i g_i (it runs without
    DP in Fig. 7). ModelCodecError if the weights or a vector do not decode (the block's author's fault).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if not vectors or len(vectors) != len(norms):
        raise ValueError("one norm per vector, and at least one vector, are needed")
    w = decode_weights(weights, shape)
    units = np.stack([decode_vector(v, shape.dimension) for v in vectors])
    scales = np.asarray(norms, dtype=np.float64)
    raw = units * scales[:, None]
    chosen = l_nearest(units, min(select, len(vectors))) if rule == "l_nearest" else multi_krum(raw, byzantine)
    index = np.asarray(chosen, dtype=np.int64)
    step: Vector = raw[index].sum(axis=0) / len(index)  # Eq. 16 (perturbed gradients with their own norms)
    if l2 > 0:
        step = step + l2 * w  # the option include_l2: Eq. 7's lambda w_t, which Eq. 16 drops
    return encode_weights(w - lr * step, shape), chosen
