"""The requester (a light client) on bad gossip: signatures checked whatever it already holds, orphans bounded."""

from __future__ import annotations

import dataclasses
from typing import Any

from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.bagchain import Requester
from chainlab.protocols.bagchain.messages import EnsembleBlock, KeyBlock, MiniBlock
from chainlab.protocols.bagchain.reasons import Reason
from chainlab.protocols.effects import Persist, Record
from tests.protocols.bagchain.conftest import Honest, remine


def _requester(honest: Honest, **params: Any) -> Requester:
    requester = Requester(
        Identity.from_seed(b"requester-under-test"),
        dataclasses.replace(honest.params, **params),
        honest.observer.genesis,
        honest.net.tasks,
    )
    requester.start(0)
    return requester


def _rejections(effects: list[Any]) -> list[tuple[str, str]]:
    return [
        (str(e.data["kind"]), str(e.data["reason"])) for e in effects if isinstance(e, Record) and e.event == "rejected"
    ]


def test_the_requester_refuses_a_copy_re_signed_with_another_key_and_keeps_the_genuine_block(honest: Honest) -> None:
    requester = _requester(honest)
    thief = Identity.from_seed(b"thief")
    blocks: list[MiniBlock | EnsembleBlock | KeyBlock] = [
        honest.miniblocks(1)[0],
        honest.ensembles(1)[0],
        honest.key_block(1),
    ]
    for now, block in enumerate(blocks, 1):
        assert _rejections(requester.on_message(b"peer", block, now)) == []
        forged = dataclasses.replace(block, signature=thief.sign(block.hash))
        assert forged.hash == block.hash
        assert _rejections(requester.on_message(b"peer", forged, now)) == [(type(block).__name__, Reason.BAD_SIGNATURE)]
        assert requester.on_message(b"peer", block, now) == []  # the genuine copy again: a quiet duplicate
    assert requester.miniblocks[blocks[0].hash] == blocks[0] and requester.ensembles[blocks[1].hash] == blocks[1]
    assert requester.key_blocks[blocks[2].hash] == blocks[2]


def test_the_requester_refuses_a_forged_block_it_has_not_seen_and_stores_nothing(honest: Honest) -> None:
    requester = _requester(honest)
    mb = honest.miniblocks(1)[0]
    other = next(m.identity for m in honest.net.miners if m.node_id != mb.miner_id)
    swapped = dataclasses.replace(mb, miner_key=other.public_key)  # another miner named as its author
    assert _rejections(requester.on_message(b"peer", swapped, 1)) == [("MiniBlock", Reason.BAD_SIGNATURE)]
    assert swapped.hash not in requester.miniblocks


def test_the_requester_holds_at_most_max_pending_blocks_key_blocks_waiting_for_a_parent(honest: Honest) -> None:
    requester = _requester(honest, max_pending_blocks=2)
    kb = honest.key_block(1)
    producer = next(m.identity for m in honest.net.miners if m.node_id == kb.miner_id)
    orphans = [remine(kb, producer, prehash=sha256(b"nowhere", bytes([i]))) for i in range(3)]
    answers = [_rejections(requester.on_message(b"peer", o, i)) for i, o in enumerate(orphans)]
    assert answers == [[], [], [("KeyBlock", Reason.TOO_MANY_PENDING)]]
    assert requester.on_message(b"peer", orphans[0], 9) == []  # one it holds already: no double entry
    assert sum(len(waiting) for waiting in requester._orphans.values()) == 2  # white-box: nothing else shows it


def test_a_requester_whose_driver_keeps_no_records_makes_none_and_follows_the_chain_alike(honest: Honest) -> None:
    keeping, not_keeping = _requester(honest), _requester(honest)
    not_keeping.persisting = False
    blocks = [honest.miniblocks(1)[0], honest.ensembles(1)[0], honest.key_block(1)]
    kept = [e for now, b in enumerate(blocks, 1) for e in keeping.on_message(b"peer", b, now)]
    none = [e for now, b in enumerate(blocks, 1) for e in not_keeping.on_message(b"peer", b, now)]
    assert any(isinstance(e, Persist) for e in kept) and not any(isinstance(e, Persist) for e in none)
    assert [e for e in kept if not isinstance(e, Persist)] == none
    assert not_keeping.chain.tip.block_hash == keeping.chain.tip.block_hash == honest.key_block(1).hash
