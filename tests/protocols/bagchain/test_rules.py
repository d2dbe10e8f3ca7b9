"""Rewards, ranking, queue rotation and the CFS parent vote."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.bagchain import rules
from chainlab.protocols.bagchain.messages import MiniBlock, RankedEnsemble

MINERS = [Identity.from_seed(bytes([i])) for i in range(6)]


def _mb(miner: int, parent: bytes = b"p", salt: int = 0) -> MiniBlock:
    key = MINERS[miner].public_key
    return MiniBlock(salt, key, b"task", sha256(bytes([miner, salt])), parent, 1)


@given(
    fee=st.integers(0, 10**9), reward=st.integers(0, 1000), picks=st.lists(st.integers(0, 5), min_size=1, max_size=12)
)
def test_fee_is_split_evenly_and_nothing_is_lost(fee: int, reward: int, picks: list[int]) -> None:
    winners = [_mb(m, salt=i) for i, m in enumerate(picks)]
    producer = MINERS[0].node_id
    allocation = rules.allocate_rewards(fee, winners, producer, reward)
    assert sum(r.amount for r in allocation) == fee + reward
    assert [r.recipient for r in allocation] == sorted({r.recipient for r in allocation})
    shares = {mb.hash: fee // len(winners) for mb in winners}
    for mb in sorted(winners, key=lambda m: m.hash)[: fee % len(winners)]:
        shares[mb.hash] += 1
    expected: dict[bytes, int] = {}
    for mb in winners:
        expected[mb.miner_id] = expected.get(mb.miner_id, 0) + shares[mb.hash]
    expected[producer] = expected.get(producer, 0) + reward
    assert {r.recipient: r.amount for r in allocation} == {k: v for k, v in expected.items() if v}


def test_no_winners_pays_only_the_block_reward() -> None:
    assert [(r.recipient, r.amount) for r in rules.allocate_rewards(100, [], b"me", 50)] == [(b"me", 50)]


@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.floats(0, 1)), max_size=8))
def test_rank_is_best_first_and_idempotent(entries: list[tuple[bytes, float]]) -> None:
    ranked = rules.rank(RankedEnsemble(h, m) for h, m in entries)
    assert [e.metric_e for e in ranked] == sorted((m for _, m in entries), reverse=True)
    assert rules.rank(ranked) == ranked
    assert rules.rank(reversed(ranked)) == ranked


@given(st.dictionaries(st.binary(min_size=1, max_size=4), st.sampled_from([0.25, 0.5, 0.75]), max_size=12))
def test_a_ranking_kept_as_entries_come_is_the_sorted_ranking(entries: dict[bytes, float]) -> None:
    ranking = rules.Ranking()
    for eb_hash, metric in entries.items():  # in arrival order, ties in Metric_E on purpose
        ranking.add(RankedEnsemble(eb_hash, metric))
    assert ranking.entries() == rules.rank(RankedEnsemble(h, m) for h, m in entries.items())


@given(st.binary(min_size=1, max_size=4), st.floats(allow_nan=False))
def test_a_ranking_entry_is_one_object_per_ensemble_block_and_metric(eb_hash: bytes, metric: float) -> None:
    entry = rules.ranked(eb_hash, metric)
    assert entry == RankedEnsemble(eb_hash, metric) and rules.ranked(eb_hash, metric) is entry
    assert entry.record == RankedEnsemble(eb_hash, metric).record


def test_ranking_entries_of_zero_and_negative_zero_stay_apart() -> None:
    # Equal as floats, but encoded apart: the interned entry must not stand in for the other.
    assert math.copysign(1.0, rules.ranked(b"e", -0.0).metric_e) == -1.0
    assert math.copysign(1.0, rules.ranked(b"e", 0.0).metric_e) == 1.0


def test_rotate_queue() -> None:
    assert rules.rotate_queue((b"a", b"b", b"c"), b"d") == (b"b", b"c", b"d")
    assert rules.rotate_queue((b"a", b"b"), None) == (b"b",)


def test_majority_parents_and_ties() -> None:
    assert rules.majority_parents([_mb(0, b"x"), _mb(1, b"x"), _mb(2, b"y")]) == {b"x"}
    assert rules.majority_parents([_mb(0, b"x"), _mb(1, b"y")]) == {b"x", b"y"}
    assert rules.majority_parents([]) == set()


def test_rewards_root_commits_to_every_entry() -> None:
    allocation = rules.allocate_rewards(10, [_mb(1), _mb(2)], MINERS[0].node_id, 5)
    root = rules.rewards_root(allocation)
    assert rules.rewards_root(allocation[::-1]) != root
    assert rules.rewards_root(allocation[:-1]) != root


def test_the_task_vocabulary_is_what_the_learning_layer_implements() -> None:
    """The core may not import chainlab.learning, so its defaults restate the names: this keeps them equal."""
    from chainlab.learning.bagging import RULES
    from chainlab.learning.metrics import METRICS
    from chainlab.learning.models import FAMILIES
    from chainlab.protocols.bagchain.params import BagChainParams

    params = BagChainParams()
    assert (params.task_families, params.task_aggregates, params.task_metrics) == (FAMILIES, RULES, METRICS)


@given(
    metric_min=st.floats(allow_nan=True, allow_infinity=True),
    fee=st.integers(min_value=0, max_value=2**64 - 1),
)
def test_task_terms_accept_exactly_finite_metric_min_in_range_and_a_sane_fee(metric_min: float, fee: int) -> None:
    from chainlab.protocols.bagchain.messages import Task
    from chainlab.protocols.bagchain.params import MAX_FEE, BagChainParams
    from chainlab.protocols.bagchain.reasons import Reason, Rejected
    from chainlab.protocols.spec import ModelSpec

    key = Identity.from_seed(b"terms")
    task = Task(b"t", b"v", b"e", ModelSpec("decision_tree"), "majority", "accuracy", metric_min, fee, key.public_key)
    good_min = math.isfinite(metric_min) and 0.0 <= metric_min < 1.0
    good_fee = 0 < fee <= MAX_FEE
    if good_min and good_fee:
        rules.check_task_terms(task, BagChainParams())
        return
    with pytest.raises(Rejected) as refused:
        rules.check_task_terms(task, BagChainParams())
    assert refused.value.reason == (Reason.BAD_FEE if good_min else Reason.BAD_METRIC_MIN)
