"""Persistence and catch-up of one BagChain node, driven synchronously against a finished honest run."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.ledger import encoding
from chainlab.ledger.identity import Identity
from chainlab.protocols.bagchain import BagChainParams, FullNode, Miner, Reason, persist, sync
from chainlab.protocols.bagchain.messages import KeyBlock, SyncReply, SyncRequest, from_wire, to_wire
from chainlab.protocols.bagchain.reasons import Rejected
from chainlab.protocols.bagchain.timers import SyncDue
from chainlab.protocols.bagchain.wire import CODEC
from chainlab.protocols.base import Restorable
from chainlab.protocols.effects import Persist, Record, Request
from tests.protocols.bagchain.conftest import Harness, Honest


def fresh_validator(honest: Honest, seed: bytes = b"catching-up", **overrides: Any) -> FullNode:
    params = dataclasses.replace(honest.params, **overrides)
    peers = tuple(m.node_id for m in honest.net.miners)
    return FullNode(Identity.from_seed(seed), params, honest.observer.genesis, peers=peers)


def persisted(harness: Harness) -> list[Persist]:
    return [e for e in harness.effects if isinstance(e, Persist)]


def test_a_key_block_with_an_unknown_parent_makes_the_node_ask_its_sender_and_converge(honest: Honest) -> None:
    node = fresh_validator(honest)
    h = Harness(node, honest)
    assert not node.status().syncing
    tip = honest.key_block(2)
    miner = honest.net.miners[0].node_id
    h.deliver(miner, *honest.net.tasks, tip)
    assert node.chain.tip.height == 0  # KB_2 waits for KB_1, which never came by gossip
    due = [t for t in h.timers if isinstance(t, SyncDue)]
    assert [t.block_hash for t in due] == [tip.hash]
    h.fire(due[0])
    # It asked the sender for what it lacks, from the bottom up, checked it all (models fetched, metrics computed)
    # and followed the chain to the same tip as the network.
    asked = [e.request for e in h.effects if isinstance(e, Request) and isinstance(e.request, SyncRequest)]
    assert asked and asked[0] == SyncRequest(tip.hash, 1, honest.params.sync_max_blocks)
    assert node.chain.tip.block_hash == tip.hash
    assert node.balances() == honest.observer.balances()
    assert not node.status().syncing
    assert h.rejections() == []


def test_a_node_whose_driver_keeps_no_records_makes_none_and_reaches_the_same_state(honest: Honest) -> None:
    keeping, not_keeping = fresh_validator(honest), fresh_validator(honest)
    not_keeping.persisting = False
    runs = [Harness(keeping, honest), Harness(not_keeping, honest)]
    for h in runs:
        h.deliver(b"peer", *honest.history(2), honest.key_block(2))
    assert persisted(runs[0]) and not persisted(runs[1])
    assert [e for e in runs[0].effects if not isinstance(e, Persist)] == runs[1].effects
    assert not_keeping.chain.tip.block_hash == keeping.chain.tip.block_hash == honest.key_block(2).hash


def test_a_node_whose_driver_keeps_few_events_records_only_those_and_reaches_the_same_state(honest: Honest) -> None:
    recording, selective = fresh_validator(honest), fresh_validator(honest)
    selective.kept_events = frozenset({"tip"})
    runs = [Harness(recording, honest), Harness(selective, honest)]
    for h in runs:
        h.deliver(b"peer", *honest.history(2), honest.key_block(2))
    events = [{e.event for e in h.effects if isinstance(e, Record)} for h in runs]
    assert {"accepted", "tip"} <= events[0] and events[1] == {"tip"}
    kept = [e for e in runs[0].effects if not isinstance(e, Record) or e.event == "tip"]
    assert kept == runs[1].effects
    assert selective.chain.tip.block_hash == recording.chain.tip.block_hash == honest.key_block(2).hash


def test_a_node_started_late_catches_up_from_its_peers(honest: Honest) -> None:
    node = fresh_validator(honest, sync_max_blocks=1)
    h = Harness(node, honest, now=500)  # one block per answer: the node asks again as its tip gets there
    asked = [e.request for e in h.effects if isinstance(e, Request) and isinstance(e.request, SyncRequest)]
    assert [r.from_height for r in asked] == [1, 2, 3]
    assert node.chain.tip.block_hash == honest.observer.chain.tip.block_hash
    assert not node.status().syncing


def test_a_restored_node_comes_back_with_its_chain_blocks_verdicts_and_balances(honest: Honest) -> None:
    first = fresh_validator(honest)
    h = Harness(first, honest)
    h.deliver(b"peer", *honest.history(2), honest.key_block(2))
    assert first.chain.tip.height == 2
    records = persisted(h)
    kinds = {r.kind for r in records}
    assert {persist.TASK, persist.RELEASE, persist.MINIBLOCK, persist.ENSEMBLE, persist.KEY_BLOCK} <= kinds
    assert {persist.VERDICT, persist.MODEL, persist.METRIC} <= kinds

    again = fresh_validator(honest)
    assert isinstance(again, Restorable)
    again.restore(records)
    assert again.chain.tip.block_hash == first.chain.tip.block_hash
    assert again.balances() == first.balances()
    assert again.mb_verdict == first.mb_verdict and again.eb_verdict == first.eb_verdict
    assert again.releases == first.releases and again.models == first.models and again.metrics == first.metrics
    # Restored without peers to ask, it is not behind: it serves at once and checks nothing twice.
    lonely = FullNode(again.identity, again.params, again.genesis)
    lonely.restore(records)
    lonely.start(10)
    assert not lonely.status().syncing


def test_a_restored_miner_does_not_train_or_aggregate_twice(honest: Honest) -> None:
    miner = honest.net.miners[1]
    records = [persist.of_block(t) for t in honest.net.tasks]
    for h in (1, 2):
        records += [persist.of_block(mb) for mb in honest.miniblocks(h)]
    records += [persist.of_model(d, m) for d, m in miner.own_models().items()]
    again = Miner(miner.identity, miner.params, miner.genesis, seed=miner.seed, held=frozenset(miner.datasets))
    again.restore(records)
    assert set(again.own_models()) == set(miner.own_models())
    assert {(1, honest.net.tasks[0].task_id, honest.observer.genesis.hash)} <= again._trained  # (height, task, parent)


def test_an_answer_holds_at_most_sync_max_blocks_and_only_what_was_asked(honest: Honest) -> None:
    observer = honest.observer
    reply = observer.serve_sync(SyncRequest(b"", 1, 100))
    key_blocks = [m for m in map(from_wire, reply.messages) if isinstance(m, KeyBlock)]
    assert [kb.height for kb in key_blocks] == [1, 2][: honest.params.sync_max_blocks]
    assert observer.serve_sync(SyncRequest(b"\x01" * 32, 1, 3)) == SyncReply(())


def test_sync_read_refuses_oversized_and_unasked_answers(honest: Honest) -> None:
    params = dataclasses.replace(honest.params, sync_max_blocks=1)
    both = SyncReply(tuple(to_wire(honest.key_block(h)) for h in (1, 2)))
    request = SyncRequest(b"", 1, 1)
    for reply, reason in (
        (both, "sync_reply_too_large"),
        (SyncReply((to_wire(honest.key_block(2)),)), "sync_reply_unasked"),
    ):
        try:
            sync.read(encoding.encode(reply), request, params)
        except Rejected as exc:
            assert str(exc.reason) == reason
        else:
            raise AssertionError(f"{reason} not raised")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=32), st.integers(0, 2**63), st.integers(0, 2**63))
def test_sync_requests_round_trip_through_the_codec(to_hash: bytes, from_height: int, count: int) -> None:
    request = SyncRequest(to_hash, from_height, count)
    assert CODEC.decode_request(CODEC.encode_request(request)) == request


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_a_sync_answer_of_random_bytes_is_refused_by_name(data: bytes) -> None:
    params = BagChainParams()
    try:
        sync.read(data, SyncRequest(b"", 1, params.sync_max_blocks), params)
    except Rejected as exc:
        assert exc.reason in (Reason.MALFORMED, Reason.SYNC_REPLY_TOO_LARGE, Reason.SYNC_REPLY_UNASKED)
