"""Nodes: the sealer orders transactions into blocks only when it has some; replicas re-execute every block and
reject a wrong state root, a foreign sealer, a bad signature or position; a gap is filled from the sealer."""

from __future__ import annotations

import dataclasses

from chainlab.ledger.identity import Identity
from chainlab.protocols.datamarket import (
    AgentParams,
    ContributorNode,
    Genesis,
    MarketNode,
    MarketParams,
    OwnerNode,
    SealerNode,
    perceptron,
)
from chainlab.protocols.datamarket.messages import (
    AddData,
    Block,
    ChainRequest,
    RevealTestSet,
    Transaction,
    UploadModel,
)
from chainlab.protocols.datamarket.node import TrainerNode
from chainlab.protocols.datamarket.timers import Act, Publish, Refetch, Seal, Train
from chainlab.protocols.effects import (
    PRIVATE,
    RECORD_REJECTED,
    Broadcast,
    Compute,
    Effect,
    Get,
    JobFailed,
    Put,
    ReadSamples,
    Record,
    Request,
    Send,
    StartTimer,
)
from tests.protocols.datamarket.market import (
    ALICE,
    BOB,
    CID_V0,
    FEATURES,
    OWNER,
    START,
    create_body,
    sample,
    sample_file,
    stored,
    tx,
)

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
    assert [type(e).__name__ for e in replica.on_message(SEALER.node_id, b1, 4)] == ["Persist"]  # the block kept
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


# -- content from storage ------------------------------------------------------------------------------------------


def _gets(effects: list[Effect]) -> list[Get]:
    return [e for e in effects if isinstance(e, Get)]


def test_the_sealer_and_every_replica_wait_for_the_content_a_block_names() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    replica = MarketNode(BOB, PARAMS, GENESIS)
    replica.on_message(SEALER.node_id, _seal(sealer, [tx(OWNER, create_body(), 100)], 1), 2)
    store: dict[bytes, bytes | None] = {}
    address = stored(sample_file((sample(True, 1), 1), (sample(True, 2), 1)), store)
    sealer.on_message(ALICE.node_id, tx(ALICE, AddData(cid=address), 60), 2)
    (get,) = _gets(sealer.on_timer(Seal(), 3))  # nothing sealed before the content is in
    assert get.address == address and len(sealer.blocks) == 1
    sealed = sealer.on_result(get.job, store[address], 4)
    (broadcast,) = [e for e in sealed if isinstance(e, Broadcast)]
    assert isinstance(broadcast.message, Block) and broadcast.message.time == 4
    (replica_get,) = _gets(replica.on_message(SEALER.node_id, broadcast.message, 5))
    assert len(replica.blocks) == 1  # the block waits for its content
    assert _rejections(replica.on_result(replica_get.job, store[address], 6)) == []
    assert replica.roots == sealer.roots and len(replica.state.records[0].samples) == 2


def test_content_storage_does_not_hold_is_rejected_alike_in_every_replica() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    replica = MarketNode(BOB, PARAMS, GENESIS)
    replica.on_message(SEALER.node_id, _seal(sealer, [tx(OWNER, create_body(), 100)], 1), 2)
    sealer.on_message(ALICE.node_id, tx(ALICE, AddData(cid=CID_V0), 60), 2)
    (get,) = _gets(sealer.on_timer(Seal(), 3))
    sealed = sealer.on_result(get.job, None, 4)
    assert _rejections(sealed) == ["add.bad_cid"]
    (broadcast,) = [e for e in sealed if isinstance(e, Broadcast)]
    (replica_get,) = _gets(replica.on_message(SEALER.node_id, broadcast.message, 5))
    assert _rejections(replica.on_result(replica_get.job, None, 6)) == [] and replica.roots == sealer.roots


def test_a_failed_get_is_asked_again_later_and_blames_nobody() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    _seal(sealer, [tx(OWNER, create_body(), 100)], 1)
    sealer.on_message(ALICE.node_id, tx(ALICE, AddData(cid=CID_V0), 60), 2)
    (get,) = _gets(sealer.on_timer(Seal(), 3))
    effects = sealer.on_result(get.job, JobFailed("storage down"), 4)
    assert _rejections(effects) == []
    (timer,) = [e for e in effects if isinstance(e, StartTimer)]
    assert timer.timer == Refetch(CID_V0)
    (again,) = _gets(sealer.on_timer(timer.timer, 14))
    assert again.address == CID_V0 and len(sealer.blocks) == 1


def test_a_contributor_puts_a_labelled_sample_file_and_adds_it_by_cid() -> None:
    params = dataclasses.replace(PARAMS, cid_share=1.0, cid_samples=2)
    genesis = dataclasses.replace(GENESIS, streams={BOB.node_id: 3})
    bad = ContributorNode(BOB, params, genesis, AgentParams.of({"behaviour": "bad"}), b"seed")
    bad.on_message(SEALER.node_id, _seal(SealerNode(SEALER, params, genesis), [tx(OWNER, create_body(), 100)], 1), 2)
    (read,) = [e for e in bad.on_timer(Act(0), 3) if isinstance(e, Compute)]
    assert read.op == ReadSamples(PRIVATE, 0, 2) and bad.next_sample == 2
    (put,) = [e for e in bad.on_result(read.job, sample_file((sample(True, 1), 1), (sample(False, 2), 0)), 4)]
    assert isinstance(put, Put)
    assert perceptron.decode_samples(put.content, FEATURES, 2, 9) == [(sample(True, 1), 0), (sample(False, 2), 1)]
    send, _ = bad.on_result(put.job, CID_V0, 5)
    assert isinstance(send, Send) and isinstance(send.message, Transaction)
    assert send.message.add == AddData(cid=CID_V0) and send.message.value > 0


def test_the_owner_reveals_its_test_set_through_storage() -> None:
    params = dataclasses.replace(PARAMS, days=0.01)
    owner = OwnerNode(OWNER, params, GENESIS, tx(OWNER, create_body(), 100), b"t" * 32)
    sealer = SealerNode(SEALER, params, GENESIS)
    owner.on_message(SEALER.node_id, _seal(sealer, [owner.create], 1), 2)
    reads = [e for e in owner.on_timer(Publish(), 3) if isinstance(e, Compute) and isinstance(e.op, ReadSamples)]
    (read,) = reads
    (put,) = owner.on_result(read.job, b"the hidden test set", 4)
    assert isinstance(put, Put) and put.content == b"the hidden test set"
    store: dict[bytes, bytes | None] = {}
    address = stored(put.content, store)
    send = owner.on_result(put.job, address, 5)[0]
    assert isinstance(send, Send) and isinstance(send.message, Transaction)
    assert send.message.reveal == RevealTestSet(address)


def test_an_off_chain_trainer_uploads_a_model_trained_on_the_cid_data() -> None:
    sealer = SealerNode(SEALER, PARAMS, GENESIS)
    trainer = TrainerNode(BOB, PARAMS, GENESIS)
    store: dict[bytes, bytes | None] = {}
    address = stored(sample_file((sample(False, 1), 1), (sample(False, 2), 1)), store)
    blocks = [_seal(sealer, [tx(OWNER, create_body(), 100)], 1)]
    sealer.on_message(ALICE.node_id, tx(ALICE, AddData(cid=address), 60), 2)
    (get,) = _gets(sealer.on_timer(Seal(), 3))
    blocks += [e.message for e in sealer.on_result(get.job, store[address], 4) if isinstance(e, Broadcast)]  # type: ignore[misc]
    trainer.on_message(SEALER.node_id, blocks[0], 5)
    (tget,) = _gets(trainer.on_message(SEALER.node_id, blocks[1], 5))
    trainer.on_result(tget.job, store[address], 6)
    (put,) = [e for e in trainer.on_timer(Train(), 100) if isinstance(e, Put)]
    model = perceptron.decode_model(put.content, FEATURES, 0)
    assert model.c == trainer.state.model.c + 2  # the on-chain model (which trained on them too), two more samples
    assert trainer.on_timer(Train(), 200) == [StartTimer(Train(), PARAMS.rounds(PARAMS.trainer_every_days))]
    weights = stored(put.content, store)
    send = trainer.on_result(put.job, weights, 101)[0]
    assert isinstance(send, Send) and isinstance(send.message, Transaction)
    assert send.message.upload == UploadModel(0, weights, (address,), FEATURES)
