"""Every rejection reason of protocols.md 3.2, from a node that holds a pool of honest messages."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.learningchain.messages import Block, GradientMessage, canonical, messages_root, with_nonce
from tests.protocols.learningchain.net import (
    Driver,
    block,
    gen,
    message,
    mined,
    node,
    params,
    pseudonym,
    shard,
)

MINER = Identity.from_seed(b"miner")


def driver(**changes: object) -> Driver:
    """Agent 0 at height 0, mining disabled, having received holders 1..4's messages."""
    d = Driver(node(0, params(**changes)), shard(0), mine=False)
    d.start()
    for i in range(1, 5):
        d.deliver(message(gen(), i))
    return d


def honest(**changes: object) -> Block:
    return block(gen(), [message(gen(), i) for i in range(1, 5)], MINER, params(**changes))


def resign(b: Block, header: object) -> Block:
    return dataclasses.replace(b, header=header.signed_by(MINER))  # type: ignore[attr-defined]


# -- messages -------------------------------------------------------------------------------------------------------


def test_an_honest_message_is_pooled() -> None:
    d = driver()
    assert d.rejections() == []
    assert len(d.node.pools[0]) == 5  # its own and four peers'


def test_a_message_signed_by_another_key_is_msg_bad_signature() -> None:
    d = driver()
    m = message(gen(), 5)
    forged = dataclasses.replace(m, signature=pseudonym(6, 0).sign(m.hash))
    d.deliver(forged)
    assert d.rejections() == ["msg.bad_signature"]


def test_a_message_for_an_old_height_is_msg_stale() -> None:
    d = driver()
    d.deliver(honest())  # the node moves to height 1 (after re-executing it)
    assert d.node.head.height == 1
    d.deliver(message(gen(), 5))
    assert d.rejections() == ["msg.stale"]


def test_a_vector_of_the_wrong_length_is_msg_bad_dim() -> None:
    d = driver()
    key = pseudonym(5, 0)
    d.deliver(GradientMessage(0, key.public_key, b"\x00" * 8 * 21, 1.0).signed_by(key))
    assert d.rejections() == ["msg.bad_dim"]


def test_a_vector_off_the_unit_sphere_is_msg_not_unit() -> None:
    d = driver()
    m = message(gen(), 5)
    key = pseudonym(5, 0)
    doubled = struct.pack("<22d", *[2 * v for v in struct.unpack("<22d", m.vector)])
    d.deliver(GradientMessage(0, key.public_key, doubled, m.norm).signed_by(key))
    assert d.rejections() == ["msg.not_unit"]


@pytest.mark.parametrize("norm", [0.0, -1.0, float("inf"), float("nan")])
def test_a_non_positive_or_non_finite_norm_is_msg_bad_norm(norm: float) -> None:
    d = driver()
    m = message(gen(), 5)
    key = pseudonym(5, 0)
    d.deliver(GradientMessage(0, key.public_key, m.vector, norm).signed_by(key))
    assert d.rejections() == ["msg.bad_norm"]


def test_a_second_message_under_one_pseudonym_is_msg_duplicate() -> None:
    d = driver()
    m = message(gen(), 1)
    key = pseudonym(1, 0)
    d.deliver(GradientMessage(0, key.public_key, m.vector, m.norm * 2).signed_by(key))
    d.deliver(m)  # an identical copy is no second message
    assert d.rejections() == ["msg.duplicate"]


# -- blocks ---------------------------------------------------------------------------------------------------------


def test_an_honest_block_is_accepted_after_re_execution() -> None:
    d = driver()
    b = honest()
    d.deliver(b)
    assert d.rejections() == [] and d.node.head == b and b.hash not in d.node.pending


def test_a_header_above_the_target_is_blk_bad_pow() -> None:
    d = driver()
    b = honest()
    nonce = next(n for n in range(1000) if not with_nonce(b.header, n).pow_hash[0] < 0x80)
    d.deliver(resign(b, with_nonce(b.header, nonce)))
    assert d.rejections() == ["blk.bad_pow"]


def test_a_header_signed_by_another_key_is_blk_bad_signature() -> None:
    d = driver()
    b = honest()
    forged = dataclasses.replace(b.header, signature=Identity.from_seed(b"other").sign(b.header.hash))
    d.deliver(dataclasses.replace(b, header=forged))
    assert d.rejections() == ["blk.bad_signature"]


def test_an_orphan_is_blk_unknown_parent_and_buffered_until_its_parent_comes() -> None:
    d = driver()
    first = honest()
    second = block(first, [message(first, i) for i in range(1, 5)], MINER, params())
    d.deliver(second)
    assert d.rejections() == ["blk.unknown_parent"] and d.node.head.height == 0
    d.deliver(first)
    assert d.node.head == second


def test_a_child_of_a_rejected_block_is_blk_invalid_parent() -> None:
    d = driver()
    bad = resign(honest(), mined(dataclasses.replace(honest().header, model_hash=sha256(b"x"))))
    d.deliver(bad)
    child = block(bad, [message(bad, i) for i in range(1, 5)], MINER, params())
    d.deliver(child)
    assert d.rejections() == ["blk.bad_model", "blk.invalid_parent"]


def test_a_wrong_height_is_blk_bad_height() -> None:
    d = driver()
    b = honest()
    d.deliver(resign(b, mined(dataclasses.replace(b.header, height=2))))
    assert d.rejections() == ["blk.bad_height"]


def test_a_wrong_merkle_root_is_blk_bad_merkle() -> None:
    d = driver()
    b = honest()
    d.deliver(resign(b, mined(dataclasses.replace(b.header, merkle_root=sha256(b"other")))))
    assert d.rejections() == ["blk.bad_merkle"]


def test_a_forged_message_in_a_block_is_blk_invalid_msg() -> None:
    d = driver()
    msgs = [message(gen(), i) for i in range(1, 5)]
    msgs[0] = dataclasses.replace(msgs[0], norm=msgs[0].norm * 2)  # its signature no longer holds
    d.deliver(block(gen(), msgs, MINER, params()))
    assert d.rejections() == ["blk.invalid_msg"]


def test_messages_out_of_canonical_order_are_blk_invalid_msg() -> None:
    d = driver()
    b = honest()
    reordered = tuple(reversed(b.messages))
    header = mined(dataclasses.replace(b.header, merkle_root=messages_root(reordered)))
    d.deliver(dataclasses.replace(b, header=header.signed_by(MINER), messages=reordered))
    assert d.rejections() == ["blk.invalid_msg"]


def test_fewer_than_l_messages_is_blk_too_few_msgs() -> None:
    d = driver()
    d.deliver(block(gen(), [message(gen(), i) for i in range(1, 3)], MINER, params(select=2)))
    assert d.rejections() == ["blk.too_few_msgs"]


def test_an_unseen_message_is_checked_in_soft_mode_and_rejected_in_strict_mode() -> None:
    msgs = [message(gen(), i) for i in range(1, 6)]  # holder 5's message never reached the validator
    soft = driver()
    soft.deliver(block(gen(), msgs, MINER, params()))
    assert soft.rejections() == [] and soft.node.head.height == 1
    assert any(r.event == "unseen_messages" and r.data["count"] == 1 for r in soft.records)
    strict = driver(strict=True)
    strict.deliver(block(gen(), msgs, MINER, params(strict=True)))
    assert strict.rejections() == ["blk.unknown_message"]


def test_a_wrong_selection_is_blk_bad_selection() -> None:
    d = driver()
    b = honest()
    outside = next(i for i in range(4) if i not in b.header.selected)
    wrong = tuple(sorted({*b.header.selected[1:], outside}))
    d.deliver(resign(b, mined(dataclasses.replace(b.header, selected=wrong))))
    assert d.rejections() == ["blk.bad_selection"]


def test_a_malformed_selection_is_blk_bad_selection() -> None:
    d = driver()
    b = honest()
    d.deliver(resign(b, mined(dataclasses.replace(b.header, selected=(0, 0, 1)))))
    assert d.rejections() == ["blk.bad_selection"]


def test_a_wrong_model_is_blk_bad_model() -> None:
    d = driver()
    b = honest()
    other = honest(lr=0.02)  # the same messages, another step: another w_{t+1}
    d.deliver(
        resign(
            dataclasses.replace(b, weights=other.weights),
            mined(dataclasses.replace(b.header, model_hash=sha256(other.weights))),
        )
    )
    assert d.rejections() == ["blk.bad_model"]


def test_a_model_that_is_not_the_headers_is_blk_bad_model() -> None:
    d = driver()
    b = honest()
    d.deliver(dataclasses.replace(b, weights=honest(lr=0.02).weights))
    assert d.rejections() == ["blk.bad_model"]


def test_a_block_waiting_for_re_execution_is_pending_not_accepted() -> None:
    d = driver()
    b = honest()
    effects = d.node.on_message(b"peer", b, 0)
    assert b.hash in d.node.pending and d.node.head.height == 0
    d.run(effects)
    assert d.node.head == b and not d.node.pending


def test_canonical_order_is_by_hash() -> None:
    msgs = [message(gen(), i) for i in range(1, 5)]
    assert [m.hash for m in canonical(msgs)] == sorted(m.hash for m in msgs)
