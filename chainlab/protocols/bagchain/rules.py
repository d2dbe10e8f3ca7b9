"""Rules a Key Block's producer applies and its validators recompute: rewards, ranking, queue, parent vote."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from chainlab.ledger.merkle import merkle_root
from chainlab.protocols.bagchain.messages import MiniBlock, RankedEnsemble, Reward


def allocate_rewards(
    fee: int, winners: Sequence[MiniBlock], producer_id: bytes, key_block_reward: int
) -> tuple[Reward, ...]:
    """Section III-C: the fee split evenly among the winning MiniBlocks' miners; the block reward to its producer.

    Integer amounts keep every node's arithmetic identical; the remainder of the split goes one unit each
    to the MiniBlocks with the smallest hashes.
    """
    totals: Counter[bytes] = Counter()
    if winners:
        share, remainder = divmod(fee, len(winners))
        for rank, mb in enumerate(sorted(winners, key=lambda m: m.hash)):
            totals[mb.miner_id] += share + (1 if rank < remainder else 0)
    totals[producer_id] += key_block_reward
    return tuple(Reward(recipient, amount) for recipient, amount in sorted(totals.items()) if amount > 0)


def rewards_root(rewards: Iterable[Reward]) -> bytes:
    """Merkle root of the Key Block payload (its reward entries)."""
    return merkle_root([r.encode() for r in rewards])


def rank(entries: Iterable[RankedEnsemble]) -> tuple[RankedEnsemble, ...]:
    """Best Metric_E first; equal metrics by Ensemble Block hash so every node sorts alike."""
    return tuple(sorted(entries, key=lambda e: (-e.metric_e, e.ensemble_block)))


def rotate_queue(queue: Sequence[bytes], next_task: bytes | None) -> tuple[bytes, ...]:
    """Section VI-C: drop the executed head and append the next task, if any is waiting."""
    rest = tuple(queue[1:])
    return (*rest, next_task) if next_task is not None else rest


def parent_votes(miniblocks: Iterable[MiniBlock]) -> Counter[bytes]:
    """Section V (CFS): each MiniBlock of the winning ensemble votes for the Key Block it points to."""
    return Counter(mb.prehash for mb in miniblocks)


def majority_parents(miniblocks: Iterable[MiniBlock]) -> set[bytes]:
    """The parents with the most votes (several when tied; any of them is a valid prehash)."""
    votes = parent_votes(miniblocks)
    if not votes:
        return set()
    top = max(votes.values())
    return {parent for parent, count in votes.items() if count == top}
