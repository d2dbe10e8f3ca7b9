"""The round rules a leader applies and every node recomputes: medians, selection, weights, blacklist, rewards."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from chainlab.protocols.bflc.messages import Reward, Scores
from chainlab.protocols.bflc.params import BflcParams


def median(values: Sequence[float]) -> float:
    """The median; for an even count the mean of the two middle values [C]."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("the median of nothing")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def update_scores(vectors: Iterable[Scores], params: BflcParams) -> dict[bytes, float]:
    """S_i = median over the members that scored update i, rounded as blocks write it."""
    collected: dict[bytes, list[float]] = {}
    for vector in vectors:
        for uploader, score in vector.entries():
            collected.setdefault(uploader, []).append(score)
    return {uploader: params.round_score(median(values)) for uploader, values in collected.items()}


def qualified_count(params: BflcParams, trainers: int) -> int:
    """k: how many updates a round packs at most, ceil(k_share * |A_t|)."""
    return max(1, math.ceil(params.k_share * trainers))


def model_floor(vectors: Iterable[Scores], params: BflcParams) -> float:
    """The score an update must reach under floor "model": the members' median score of w_t (0 without vectors
    or with floor "none")."""
    bases = [v.base for v in vectors]
    if params.floor == "none" or not bases:
        return 0.0
    return params.round_score(median(bases))


def select(scores: Mapping[bytes, float], params: BflcParams, trainers: int, floor: float = 0.0) -> tuple[bytes, ...]:
    """The qualified updates' uploaders, best first (ties to the smaller ID).

    rank: the top k by S_i. stream: those with S_i >= theta, at most k. (The arrival order the paper's stream
    implies is no part of the chain, so the best k qualify: a checkable reading.) Either way S_i >= floor.
    """
    ranked = sorted(scores, key=lambda u: (-scores[u], u))
    threshold = max(floor, params.theta) if params.selection == "stream" else floor
    ranked = [u for u in ranked if scores[u] >= threshold]
    return tuple(ranked[: qualified_count(params, trainers)])


def coefficients(n_samples: Sequence[int], params: BflcParams) -> tuple[float, ...]:
    """FedAvg weights of the packed updates: by self-reported n_samples, or equal (unweighted)."""
    if not n_samples:
        return ()
    total = sum(n_samples)
    if params.weighting == "unweighted" or total <= 0:
        return tuple(1.0 / len(n_samples) for _ in n_samples)
    return tuple(n / total for n in n_samples)


def blacklisted(scores: Mapping[bytes, float], params: BflcParams) -> tuple[bytes, ...]:
    """Providers whose S_i falls below blacklist_below are expelled (sorted by ID)."""
    return tuple(sorted(u for u, s in scores.items() if s < params.blacklist_below))


def rewards(packed: Sequence[tuple[bytes, float]], params: BflcParams) -> tuple[Reward, ...]:
    """[A] reward_i = R * S_i / sum of the packed S_j, rounded as blocks write it; nothing if every score is 0."""
    total = sum(score for _, score in packed)
    if total <= 0:
        return ()
    return tuple(
        Reward(uploader, params.round_score(params.reward * score / total))
        for uploader, score in sorted(packed)
        if score > 0
    )
