"""Who does what in a round, drawn from the chain alone: the initial committee, trainers, leader and election.

Every draw is a hash-seeded sample, so every node computes the same roles from the same block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from chainlab.ledger.hashing import sha256


def draw(seed: bytes, label: bytes, candidates: Iterable[bytes], count: int) -> tuple[bytes, ...]:
    """A uniform sample of `count` distinct candidates: those with the smallest H(seed || label || candidate).

    Sorting by a keyed hash is a uniformly random permutation for a fresh seed, so the first `count` are a uniform
    sample without replacement; the result is sorted by ID so that equal sets compare equal.
    """
    ranked = sorted(set(candidates), key=lambda c: sha256(seed, label, c))
    return tuple(sorted(ranked[: max(count, 0)]))


def active_count(active: float, members: int) -> int:
    """|A_t|: the active share of all members, at least one."""
    return max(1, round(active * members))


def seats(committee_share: float, trainers: int) -> int:
    """M = p * |A_t| seats, at least one."""
    return max(1, round(committee_share * trainers))


def initial_committee(genesis_seed: bytes, members: Iterable[bytes], count: int) -> tuple[bytes, ...]:
    """C_0: a random draw seeded from the genesis seed ([A] the paper is silent; the demo takes the first nodes)."""
    return draw(genesis_seed, b"committee", members, count)


def trainers(
    block_hash: bytes, members: Iterable[bytes], committee: Iterable[bytes], blacklist: Iterable[bytes], count: int
) -> tuple[bytes, ...]:
    """A_t: `count` nodes drawn (seeded by model block t's hash) from the members outside C_t and the blacklist."""
    excluded = set(committee) | set(blacklist)
    return draw(block_hash, b"trainers", (m for m in members if m not in excluded), count)


def leader(committee: Sequence[bytes], attempt: int) -> bytes:
    """The member that assembles the round's blocks: the lowest ID first, the next one on each takeover."""
    ordered = sorted(committee)
    return ordered[attempt % len(ordered)]


def elect(
    scores: Mapping[bytes, float], count: int, election: str, seed: bytes, blacklist: Iterable[bytes] = ()
) -> tuple[bytes, ...]:
    """C_{t+1} from the round's scored providers: the top `count` by S_i (score), or a seeded draw (random).

    Ties in score go to the smaller ID. Providers being blacklisted this round cannot be elected.
    """
    barred = set(blacklist)
    candidates = {uploader: s for uploader, s in scores.items() if uploader not in barred}
    if election == "random":
        return draw(seed, b"election", candidates, count)
    ranked = sorted(candidates, key=lambda u: (-candidates[u], u))
    return tuple(sorted(ranked[:count]))
