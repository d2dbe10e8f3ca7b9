"""A node's life: it sends a DP gradient, mines once it holds l messages, follows the longest chain, stops at T."""

from __future__ import annotations

from chainlab.ledger.identity import Identity
from chainlab.protocols.effects import AggregateGradients, Compute, PrivateGradient
from chainlab.protocols.learningchain.messages import Block, GradientMessage
from chainlab.protocols.learningchain.timers import Collect
from tests.protocols.learningchain.net import Driver, block, gen, message, node, params, shard

MINER = Identity.from_seed(b"miner")


def test_a_holder_sends_one_signed_message_under_a_fresh_pseudonym_per_height() -> None:
    d = Driver(node(0), shard(0), mine=False)
    d.start()
    (sent,) = d.broadcasts
    assert isinstance(sent, GradientMessage) and sent.height == 0
    assert sent.pseudonym != d.node.node_id and sent.signature_valid(sent.pseudonym_key)
    assert abs(sent.norm) > 0


def test_without_fresh_pseudonyms_the_node_key_signs() -> None:
    d = Driver(node(0, params(fresh_pseudonyms=False)), shard(0), mine=False)
    d.start()
    (sent,) = d.broadcasts
    assert isinstance(sent, GradientMessage) and sent.pseudonym == d.node.node_id


def test_the_gradient_op_carries_the_per_iteration_budget() -> None:
    n = node(0, params(epsilon=0.6, budget="uniform", rounds=3))
    (op,) = [e.op for e in n.start(0) if isinstance(e, Compute)]
    assert isinstance(op, PrivateGradient) and op.epsilon == 0.6 / 3 and op.clip == "per_example"


def test_a_miner_aggregates_once_it_holds_l_messages_and_never_restarts() -> None:
    d = Driver(node(0, params(collect_rounds=2)), shard(0), mine=False)
    d.start()
    d.deliver(message(gen(), 1))
    d.deliver(message(gen(), 2))
    assert all(r.event != "mining" for r in d.records)
    d.fire_timers()
    assert [r.data["messages"] for r in d.records if r.event == "mining"] == [3]
    d.deliver(message(gen(), 3))  # more messages do not restart the search (memoryless)
    assert [r.data["messages"] for r in d.records if r.event == "mining"] == [3]


def test_a_miner_that_solves_broadcasts_its_block_and_moves_on() -> None:
    d = Driver(node(0), shard(0))
    d.start()
    for i in range(1, 3):
        d.deliver(message(gen(), i))
    d.fire_timers()
    blocks = [b for b in d.broadcasts if isinstance(b, Block)]
    assert len(blocks) == 1 and d.node.head == blocks[0] and blocks[0].height == 1
    assert len(blocks[0].messages) == 3 and len(blocks[0].header.selected) == 3


def test_a_peer_block_cancels_this_miners_search() -> None:
    d = Driver(node(0), shard(0), mine=False)
    d.start()
    for i in range(1, 3):
        d.deliver(message(gen(), i))
    effects = d.node.on_timer(Collect(gen().hash), 0)
    (agg,) = [e for e in effects if isinstance(e, Compute)]
    assert isinstance(agg.op, AggregateGradients)
    d.run(effects)
    peer = block(gen(), [message(gen(), i) for i in range(1, 5)], MINER, params())
    cancelled = d.node.on_message(b"peer", peer, 0)
    d.run(cancelled)
    assert d.node.head == peer
    assert d.node.on_result(max(d.node._jobs, default=0) + 99, 0, 0) == []  # nothing stale survives


def test_the_longest_valid_chain_wins_and_a_tie_keeps_the_first_seen() -> None:
    d = Driver(node(0), shard(0), mine=False)
    d.start()
    a = block(gen(), [message(gen(), i) for i in range(1, 5)], MINER, params())
    b = block(gen(), [message(gen(), i) for i in range(2, 6)], Identity.from_seed(b"other"), params())
    d.deliver(a)
    d.deliver(b)
    assert d.node.head == a and d.node.forks() == 1
    b2 = block(b, [message(b, i) for i in range(1, 5)], MINER, params())
    d.deliver(b2)
    assert d.node.head == b2 and [x.height for x in d.node.main_chain()] == [0, 1, 2]
    assert d.node.main_chain()[1] == b and d.node.forks() == 1


def test_a_node_stops_at_height_T() -> None:
    d = Driver(node(0, params(rounds=1)), shard(0), mine=False)
    d.start()
    d.deliver(block(gen(), [message(gen(), i) for i in range(1, 5)], MINER, params()))
    status = d.node.status()
    assert status.done and status.height == 1
    assert any(r.event == "done" for r in d.records)
    assert d.node.on_message(b"peer", message(d.node.head, 1), 0) == []
    assert not d.node._jobs


def _byzantine_block(attack: str) -> Block:
    p = params(miner_attack=attack)
    d = Driver(node(4, p, byzantine_miner=True), shard(4))
    d.start()
    for i in range(1, 4):
        d.deliver(message(gen(), i))
    d.fire_timers()
    (b,) = [x for x in d.broadcasts if isinstance(x, Block)]
    return b


def test_byzantine_miners_blocks_are_rejected_with_their_reason() -> None:
    for attack, reason in (
        ("model", "blk.bad_model"),
        ("selection", "blk.bad_selection"),
        ("forge", "blk.invalid_msg"),
    ):
        bad = _byzantine_block(attack)
        honest = Driver(node(0, params(miner_attack=attack)), shard(0), mine=False)
        honest.start()
        for i in range(1, 4):
            honest.deliver(message(gen(), i))
        honest.deliver(bad)
        assert honest.rejections() == [reason], attack
        assert honest.node.head.height == 0


def test_a_byzantine_holder_sends_a_huge_gradient() -> None:
    d = Driver(node(0, byzantine_holder=True), shard(0), mine=False)
    d.start()
    (sent,) = d.broadcasts
    assert isinstance(sent, GradientMessage) and sent.norm > 200 * 4  # ~ 200 sqrt(22)
