"""Nodes: the sealer orders transactions into blocks only when it has some; replicas re-execute every block and
reject a wrong state root, a foreign sealer, a bad signature or position; a gap is filled from the sealer."""

from __future__ import annotations

import dataclasses

from chainlab.ledger.identity import Identity
from chainlab.protocols.datamarket import Genesis, MarketNode, MarketParams, SealerNode
from chainlab.protocols.datamarket.messages import AddData, Block, ChainRequest, Transaction
from chainlab.protocols.datamarket.timers import Seal
from chainlab.protocols.effects import RECORD_REJECTED, Broadcast, Effect, Record, Request, StartTimer
from tests.protocols.datamarket.market import ALICE, BOB, OWNER, START, create_body, sample, tx

SEALER = Identity.from_seed(b"dm-test:sealer")
PARAMS = MarketParams(day=100)
GENESIS = Genesis(
    {OWNER.node_id: 5 * START, ALICE.node_id: START, BOB.node_id: START}, SEALER.public_key, {}, frozenset()
)


def _rejections(effects: list[Effect]) -> list[str]:
    return [
        f"{e.data['kind']}.{e.data['reason']}" for e in effects if isinstance(e, Record) and e.event == RECORD_REJECTED
    ]


def _seal(sealer: SealerNode, txs: list[Transaction], now: int) -> Block:
    effects: list[Effect] = []
    for t in txs:
        effects += sealer.on_message(t.sender, t, now - 1)
    assert any(isinstance(e, StartTimer) for e in effects) or not txs
    sealed = sealer.on_timer(Seal(), now)
    (broadcast,) = [e for e in sealed if isinstance(e, Broadcast)]
    assert isinstance(broadcast.message, Block)
    return broadcast.message


def test_the_sealer_seals_only_when_it_has_transactions() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    assert sealer.on_timer(Seal(), 5) == []
    block = _seal(sealer, [tx(OWNER, create_body(), 100)], 1)
    assert block.number == 0 and len(block.txs) == 1 and sealer.state.terms is not None


def test_replicas_follow_the_sealer_and_agree_on_the_state() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    replica = MarketNode(ALICE, PARAMS, GENESIS)
    b0 = _seal(sealer, [tx(OWNER, create_body(), 100)], 1)
    b1 = _seal(sealer, [tx(ALICE, AddData(sample(True), 1), 50), tx(BOB, AddData(sample(True, 3), 1), 50)], 3)
    assert _rejections(replica.on_message(SEALER.node_id, b0, 2)) == []
    assert replica.on_message(SEALER.node_id, b1, 4) == []
    assert replica.roots == sealer.roots and replica.state.balances == sealer.state.balances
    assert len(replica.state.records) == 1  # the second addition came in the same second: add.too_soon


def test_a_block_with_a_wrong_state_root_is_rejected_and_leaves_the_state_alone() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    replica = MarketNode(ALICE, PARAMS, GENESIS)
    replica.on_message(SEALER.node_id, _seal(sealer, [tx(OWNER, create_body(), 100)], 1), 2)
    honest = _seal(sealer, [tx(ALICE, AddData(sample(True), 1), 50)], 3)
    forged = dataclasses.replace(honest, state_root=b"\x00" * 32).signed_by(SEALER)
    assert _rejections(replica.on_message(SEALER.node_id, forged, 4)) == ["blk.bad_state_root"]
    assert len(replica.blocks) == 1 and replica.state.records == [] and replica.state.escrow == 0
    assert _rejections(replica.on_message(SEALER.node_id, honest, 5)) == []


def test_blocks_from_another_sealer_badly_signed_or_out_of_place_are_rejected() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    replica = MarketNode(ALICE, PARAMS, GENESIS)
    b0 = _seal(sealer, [tx(OWNER, create_body(), 100)], 1)
    foreign = dataclasses.replace(b0, sealer_key=BOB.public_key).signed_by(BOB)
    assert _rejections(replica.on_message(BOB.node_id, foreign, 2)) == ["blk.not_sealer"]
    unsigned = dataclasses.replace(b0, signature=b"\x01" * 64)
    assert _rejections(replica.on_message(SEALER.node_id, unsigned, 2)) == ["blk.bad_signature"]
    replica.on_message(SEALER.node_id, b0, 2)
    rewritten = dataclasses.replace(b0, time=9).signed_by(SEALER)
    assert _rejections(replica.on_message(SEALER.node_id, rewritten, 3)) == ["blk.bad_position"]
    b1 = _seal(sealer, [tx(ALICE, AddData(sample(True), 1), 50)], 3)
    stale = dataclasses.replace(b1, time=1).signed_by(SEALER)
    assert _rejections(replica.on_message(SEALER.node_id, stale, 4)) == ["blk.bad_time"]
    wrong_parent = dataclasses.replace(b1, prev=b"\x07" * 32).signed_by(SEALER)
    assert _rejections(replica.on_message(SEALER.node_id, wrong_parent, 4)) == ["blk.bad_position"]


def test_a_gap_is_filled_from_the_sealer() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    replica = MarketNode(ALICE, PARAMS, GENESIS)
    b0 = _seal(sealer, [tx(OWNER, create_body(), 100)], 1)
    b1 = _seal(sealer, [tx(ALICE, AddData(sample(True), 1), 50)], 3)
    effects = replica.on_message(SEALER.node_id, b1, 4)
    (request,) = [e for e in effects if isinstance(e, Request)]
    assert request.peer == SEALER.node_id and request.request == ChainRequest(0)
    answer = sealer.on_request(ALICE.node_id, request.request, 4)
    assert isinstance(answer, bytes)
    replica.on_result(request.job, answer, 5)
    assert [b.hash for b in replica.blocks] == [b0.hash, b1.hash]


def test_the_sealer_does_not_order_a_forged_transaction() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    forged = dataclasses.replace(tx(ALICE, AddData(sample(True), 1), 50), signature=b"\x00" * 64)
    assert _rejections(sealer.on_message(ALICE.node_id, forged, 1)) == ["tx.bad_signature"]
