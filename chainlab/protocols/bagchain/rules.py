"""Rules a Key Block's producer applies and its validators recompute: rewards, ranking, queue, parent vote."""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from chainlab.ledger.merkle import merkle_root
from chainlab.protocols.bagchain.messages import KeyBlock, MiniBlock, RankedEnsemble, Reward, Task
from chainlab.protocols.bagchain.params import MAX_FEE, BagChainParams
from chainlab.protocols.bagchain.reasons import Reason, Rejected


def check_task_terms(task: Task, params: BagChainParams) -> None:
    """A Task's terms must be ones miners can meet and validators can check; Rejected names the first that is not.

    Metric_min is a score in [0, 1) (a NaN would make every comparison false, so no ensemble could ever
    qualify); the fee is positive and not absurd; family, aggregation and metric are ones the network knows.
    """
    if not math.isfinite(task.metric_min) or not 0.0 <= task.metric_min < 1.0:
        raise Rejected(Reason.BAD_METRIC_MIN, f"{task.metric_min!r} is not in [0, 1)")
    if not 0 < task.fee <= MAX_FEE:
        raise Rejected(Reason.BAD_FEE, f"{task.fee} is not in 1..{MAX_FEE}")
    if task.train.family not in params.task_families:
        raise Rejected(Reason.UNKNOWN_MODEL, f"{task.train.family!r} (known: {', '.join(params.task_families)})")
    try:
        hyper = json.loads(task.train.params_json)
    except ValueError as exc:
        raise Rejected(Reason.BAD_MODEL_SPEC, f"params are not JSON: {exc}") from None
    if not isinstance(hyper, dict):
        raise Rejected(Reason.BAD_MODEL_SPEC, "params must be a JSON object")
    if task.aggregate not in params.task_aggregates:
        raise Rejected(Reason.UNKNOWN_AGGREGATE, f"{task.aggregate!r} (known: {', '.join(params.task_aggregates)})")
    if task.metric not in params.task_metrics:
        raise Rejected(Reason.UNKNOWN_METRIC, f"{task.metric!r} (known: {', '.join(params.task_metrics)})")


def balances(chain: Sequence[KeyBlock], tasks: Mapping[bytes, Task]) -> dict[bytes, int]:
    """Balances along a chain from genesis: allocations and rewards earned, minus the fees requesters paid.

    A requester pays a task's fee when its Key Block ranks a winner; a task that no ensemble qualified for
    costs nothing.
    """
    totals: Counter[bytes] = Counter()
    for kb in chain:
        for reward in kb.rewards:
            totals[reward.recipient] += reward.amount
        task = tasks.get(kb.task_id)
        if kb.ranking and task is not None:
            totals[task.requester_id] -= task.fee
    return dict(totals)


def check_funds(task: Task, chain: Sequence[KeyBlock], tasks: Mapping[bytes, Task]) -> None:
    """The requester's balance, less the fees of its tasks not yet finished on the chain, must cover the fee."""
    finished = {kb.task_id for kb in chain}
    owed = sum(
        t.fee
        for t in tasks.values()
        if t.requester_id == task.requester_id and t.task_id not in finished and t.task_id != task.task_id
    )
    available = balances(chain, tasks).get(task.requester_id, 0) - owed
    if available < task.fee:
        raise Rejected(Reason.INSUFFICIENT_FUNDS, f"fee {task.fee} > {available} available to the requester")


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
    return tuple(_reward(recipient, amount) for recipient, amount in sorted(totals.items()) if amount > 0)


def rewards_root(rewards: Iterable[Reward]) -> bytes:
    """Merkle root of the Key Block payload (its reward entries)."""
    return merkle_root([r.leaf for r in rewards])


@lru_cache(maxsize=1 << 16)
def _reward(recipient: bytes, amount: int) -> Reward:
    """One object per entry: a miner's candidates, and every node's check of a Key Block, list the same entries again
    and again, and an entry's encodings are kept on its object (Reward.leaf, Reward.record)."""
    return Reward(recipient, amount)


def rewards_error(kb: KeyBlock, fee: int, winners: Sequence[MiniBlock], key_block_reward: int) -> Reason | None:
    """What is wrong with a Key Block's payments (Algorithm 2.3): WRONG_REWARDS unless they are the fee split among
    its winning MiniBlocks' miners plus the block reward to its producer, BAD_MERKLE_ROOT unless its root commits
    to them; None when they are right."""
    if kb.rewards != allocate_rewards(fee if winners else 0, winners, kb.miner_id, key_block_reward):
        return Reason.WRONG_REWARDS
    if kb.merkle_root != rewards_root(kb.rewards):
        return Reason.BAD_MERKLE_ROOT
    return None


def rank(entries: Iterable[RankedEnsemble]) -> tuple[RankedEnsemble, ...]:
    """Best Metric_E first; equal metrics by Ensemble Block hash so every node sorts alike."""
    return tuple(sorted(entries, key=rank_key))


def rank_key(entry: RankedEnsemble) -> tuple[float, bytes]:
    """An entry's place in a ranking (see rank): ascending keys are best first."""
    return (-entry.metric_e, entry.ensemble_block)


class Ranking:
    """Entries kept in rank's order as they come (a binary search each), so that reading the ranking is a copy
    rather than a sort: a miner reads it for every Key Block candidate, and ranks one Ensemble Block per miner."""

    def __init__(self) -> None:
        self._entries: list[RankedEnsemble] = []
        self._keys: list[tuple[float, bytes]] = []  # rank_key of each entry: searched without calling it again

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: RankedEnsemble) -> None:
        """Place entry (an Ensemble Block not yet in the ranking) after any entry with an equal key."""
        key = rank_key(entry)
        at = bisect.bisect_right(self._keys, key)
        self._keys.insert(at, key)
        self._entries.insert(at, entry)

    def entries(self) -> tuple[RankedEnsemble, ...]:
        """Best first, as rank orders them."""
        return tuple(self._entries)


def ranked(ensemble_block: bytes, metric_e: float) -> RankedEnsemble:
    """The ranking entry of an Ensemble Block of this Metric_E, one object per entry (as _reward): every miner
    ranks the same Ensemble Blocks, and an entry keeps its encoding (RankedEnsemble.record)."""
    return _ranked(ensemble_block, metric_e.hex())  # the float's exact bits: 0.0 and -0.0 encode apart


@lru_cache(maxsize=1 << 16)
def _ranked(ensemble_block: bytes, metric_e: str) -> RankedEnsemble:
    return RankedEnsemble(ensemble_block, float.fromhex(metric_e))


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
