"""Catch-up: a node that missed blocks asks the sender of a block it cannot place, in batches, and judges what it
gets as it judges any block; a peer's answers cannot make it loop, crash or take a bad block."""

from __future__ import annotations

from functools import cache

import pytest

from chainlab.ledger import encoding
from chainlab.ledger.identity import Identity
from chainlab.protocols.learningchain import node as node_module
from chainlab.protocols.learningchain.messages import Block, Chain, ChainRequest
from tests.protocols.learningchain.net import Driver, block, gen, message, node, params, shard

MINER = Identity.from_seed(b"miner")
ROUNDS = 5


@cache
def chain() -> tuple[Block, ...]:
    """B_1 .. B_4 of an honest chain, each on four holders' messages."""
    blocks = [gen()]
    for _ in range(ROUNDS - 1):
        parent = blocks[-1]
        blocks.append(block(parent, [message(parent, i) for i in range(1, 5)], MINER, params(rounds=ROUNDS)))
    return tuple(blocks[1:])


def source(upto: int) -> Driver:
    """Agent 1, which holds B_1 .. B_upto."""
    d = Driver(node(1, params(rounds=ROUNDS)), shard(1), mine=False)
    d.start()
    for b in chain()[:upto]:
        d.deliver(b)
    assert d.node.head.height == upto
    return d


def late(peer: Driver | None = None, **changes: object) -> Driver:
    """Agent 0, at genesis: it missed every block (it was down)."""
    d = Driver(node(0, params(rounds=ROUNDS, **changes)), shard(0), mine=False)
    if peer is not None:
        d.peers[peer.node.node_id] = peer.node
    d.start()
    return d


def test_a_node_that_missed_blocks_asks_the_sender_of_one_it_cannot_place_and_catches_up() -> None:
    src = source(3)
    d = late(src)
    d.deliver(chain()[3], sender=src.node.node_id)  # B_4: its parent B_3 is unknown here
    assert [r.request for r in d.requests] == [ChainRequest(1, node_module.SYNC_BATCH)]
    assert d.node.head.hash == chain()[3].hash
    assert d.rejections() == ["blk.unknown_parent"]
    assert [r.event for r in d.records if r.event.startswith("catch_up")] == ["catch_up"]


def test_a_far_behind_node_asks_batch_after_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_module, "SYNC_BATCH", 1)
    src = source(3)
    d = late(src)
    d.deliver(chain()[3], sender=src.node.node_id)
    # Full answers ask on; the answer past the peer's head is empty and ends it.
    assert [r.request for r in d.requests] == [ChainRequest(h, 1) for h in (1, 2, 3, 4)]
    assert d.node.head.hash == chain()[3].hash


def test_blocks_mined_while_the_node_was_away_are_not_held_to_strict_mode() -> None:
    """Strict mode rejects a block holding a message this node never received: B_1 delivered as news is. Blocks
    mined while the node was away (a catch-up answer's, and B_3, which waited on them) are judged without it."""
    direct = late(strict=True)
    direct.deliver(chain()[0])
    assert direct.rejections() == ["blk.unknown_message"]
    src = source(2)
    d = late(src, strict=True)
    d.deliver(chain()[2], sender=src.node.node_id)
    assert d.node.head.hash == chain()[2].hash and d.rejections() == ["blk.unknown_parent"]


def test_an_answer_that_does_not_decode_is_blk_bad_chain_and_the_peer_is_not_asked_again_at_that_head() -> None:
    d = late()
    liar = Identity.from_seed(b"liar").node_id

    class Garbage:
        node_id = liar

        def on_request(self, sender: bytes, request: object, now: int) -> bytes:
            return b"\xff\x00not a chain"

    d.peers[liar] = Garbage()  # type: ignore[assignment]
    d.deliver(chain()[3], sender=liar)
    d.deliver(chain()[2], sender=liar)
    assert len(d.requests) == 1
    assert d.rejections() == ["blk.unknown_parent", "blk.bad_chain", "blk.unknown_parent"]
    assert d.node.head.hash == gen().hash


def test_a_peer_that_cannot_answer_is_asked_again_on_its_next_block() -> None:
    d = late()
    nobody = Identity.from_seed(b"gone").node_id
    d.deliver(chain()[3], sender=nobody)
    d.deliver(chain()[2], sender=nobody)
    assert len(d.requests) == 2
    assert [r.event for r in d.records if r.event.startswith("catch_up")] == ["catch_up", "catch_up_failed"] * 2


def test_an_answer_longer_than_asked_is_cut_to_the_batch_and_a_bad_block_in_it_ends_the_catch_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(node_module, "SYNC_BATCH", 2)
    d = late()
    peer = Identity.from_seed(b"peer").node_id
    tampered = Block(chain()[1].header, chain()[0].weights, chain()[1].messages)  # B_2 with B_1's model

    class Pushy:
        node_id = peer

        def on_request(self, sender: bytes, request: object, now: int) -> bytes:
            return encoding.encode(Chain((chain()[0], tampered, chain()[2], chain()[3])))

    d.peers[peer] = Pushy()  # type: ignore[assignment]
    d.deliver(chain()[3], sender=peer)
    assert d.node.head.hash == chain()[0].hash  # B_1 only: B_2 is bad, B_3 was never looked at
    assert "blk.bad_model" in d.rejections()
    assert chain()[2].hash not in d.node.blocks and chain()[2].hash not in d.node.rejected
    # B_2 waited on B_1's re-execution when the first answer was read, so the node asked on once; the second
    # answer's last block was already rejected, and that ended it.
    assert [r.request for r in d.requests] == [ChainRequest(1, 2), ChainRequest(3, 2)]


def test_a_peer_that_answers_the_same_blocks_again_is_not_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_module, "SYNC_BATCH", 2)
    d = late()
    peer = Identity.from_seed(b"peer").node_id

    class Stuck:
        node_id = peer

        def on_request(self, sender: bytes, request: object, now: int) -> bytes:
            return encoding.encode(Chain(chain()[:2]))  # whatever is asked

    d.peers[peer] = Stuck()  # type: ignore[assignment]
    d.deliver(chain()[3], sender=peer)
    assert [r.request for r in d.requests] == [ChainRequest(1, 2), ChainRequest(3, 2)]
    assert d.node.head.hash == chain()[1].hash
