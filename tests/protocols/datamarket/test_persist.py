"""Persist and restore: every node keeps the blocks it holds and the content they read; a restarted node
re-executes them, so a restarted sealer seals the next block on its own chain and replicas take it."""

from __future__ import annotations

import dataclasses

from chainlab.protocols.datamarket import MarketNode, SealerNode
from chainlab.protocols.datamarket.messages import AddData, Block, Transaction
from chainlab.protocols.datamarket.node import BLOCK_RECORD, CONTENT_RECORD, MISSING_RECORD
from chainlab.protocols.datamarket.timers import Seal
from chainlab.protocols.effects import Broadcast, Effect, Get, Persist, Send
from tests.protocols.datamarket.market import ALICE, BOB, OWNER, create_body, sample, tx
from tests.protocols.datamarket.test_node import GENESIS, PARAMS, SEALER, _rejections


def _seal(sealer: SealerNode, txs: list[Transaction], now: int) -> tuple[Block, list[Persist]]:
    for t in txs:
        sealer.on_message(t.sender, t, now - 1)
    sealed = sealer.on_timer(Seal(), now)
    (broadcast,) = [e for e in sealed if isinstance(e, Broadcast)]
    assert isinstance(broadcast.message, Block)
    return broadcast.message, _persisted(sealed)


def _persisted(effects: list[Effect]) -> list[Persist]:
    return [e for e in effects if isinstance(e, Persist)]


def _two_blocks() -> tuple[SealerNode, list[Block], list[Persist]]:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    b0, kept0 = _seal(sealer, [tx(OWNER, create_body(), 100)], 1)
    b1, kept1 = _seal(sealer, [tx(ALICE, AddData(sample(True), 1), 50)], 3)
    return sealer, [b0, b1], kept0 + kept1


def test_the_sealer_persists_each_block_it_seals_before_broadcasting_it() -> None:
    _, blocks, kept = _two_blocks()
    assert [(p.kind, p.key) for p in kept] == [(BLOCK_RECORD, b.hash) for b in blocks]


def test_a_restarted_sealer_takes_back_its_chain_and_seals_the_next_block_on_it() -> None:
    sealer, blocks, kept = _two_blocks()
    replica = MarketNode(ALICE, PARAMS, GENESIS)
    for block in blocks:
        assert _rejections(replica.on_message(SEALER.node_id, block, block.time + 1)) == []
    restarted = SealerNode(SEALER, PARAMS, GENESIS)
    restarted.restore(kept)
    assert restarted.blocks == sealer.blocks and restarted.roots == sealer.roots
    assert restarted.state.balances == sealer.state.balances and restarted.state.records == sealer.state.records
    b2, _ = _seal(restarted, [tx(BOB, AddData(sample(False, 2), 0), 50)], 5)
    assert (b2.number, b2.prev) == (2, blocks[1].hash)
    assert _rejections(replica.on_message(SEALER.node_id, b2, 6)) == []
    assert replica.roots == restarted.roots


def test_a_replica_takes_back_its_blocks_the_content_they_read_and_its_next_nonce() -> None:
    _, blocks, _ = _two_blocks()
    alice = MarketNode(ALICE, PARAMS, GENESIS)
    kept: list[Persist] = []
    for block in blocks:
        kept += _persisted(alice.on_message(SEALER.node_id, block, block.time + 1))
    assert [p.kind for p in kept] == [BLOCK_RECORD, BLOCK_RECORD]
    restarted = MarketNode(ALICE, PARAMS, GENESIS)
    restarted.restore(kept)
    assert restarted.roots == alice.roots and restarted.tip == blocks[1].hash
    (alice_tx,) = [t for t in blocks[1].txs if t.sender_key == ALICE.public_key]
    send = restarted._transaction(AddData(sample(True, 4), 1), 7)
    assert isinstance(send, Send) and isinstance(send.message, Transaction)
    assert send.message.nonce == alice_tx.nonce + 1  # not a replay of one it sent before the crash


def test_content_a_block_read_is_persisted_found_or_not() -> None:
    replica = MarketNode(BOB, PARAMS, GENESIS)
    gets = replica._get([b"address-found", b"address-missing"])
    jobs = [e.job for e in gets if isinstance(e, Get)]
    found = _persisted(replica.on_result(jobs[0], b"content", 1))
    missing = _persisted(replica.on_result(jobs[1], None, 1))
    assert [(p.kind, p.key, p.payload) for p in found + missing] == [
        (CONTENT_RECORD, b"address-found", b"content"),
        (MISSING_RECORD, b"address-missing", b""),
    ]
    restarted = MarketNode(BOB, PARAMS, GENESIS)
    restarted.restore(found + missing)
    assert restarted.contents == {b"address-found": b"content", b"address-missing": None}


def test_a_store_whose_block_no_longer_re_executes_ends_the_chain_there() -> None:
    """A store from another run (another genesis, a tampered file): the blocks before the bad one are kept."""
    _, blocks, kept = _two_blocks()
    wrong = dataclasses.replace(blocks[1], state_root=b"\x00" * 32).signed_by(SEALER)
    restarted = MarketNode(ALICE, PARAMS, GENESIS)
    restarted.restore([kept[0], Persist(BLOCK_RECORD, wrong.hash, wrong.encode())])
    assert restarted.blocks == blocks[:1] and restarted.state.records == []


def test_a_node_told_that_nothing_is_kept_builds_no_records() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    sealer.persisting = False
    assert _seal(sealer, [tx(OWNER, create_body(), 100)], 1)[1] == []
