"""DFL's objects: digests, signatures, wire round trips and the codec's refusals."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlab.protocols.base import DecodeError
from chainlab.protocols.dfl.messages import (
    AccuracyPoint,
    BlockConfirmation,
    BlockStat,
    NodeReport,
    PeerReputation,
    ReportRequest,
    draft_block,
    finalised,
)
from chainlab.protocols.dfl.wire import CODEC
from tests.protocols.dfl.conftest import GENESIS, IDS, receipt, tx


def test_receipts_stay_outside_the_transaction_digest() -> None:
    t = tx()
    with_receipt = t.with_receipts((receipt(0, t),))
    assert with_receipt.computed_digest() == t.digest == t.computed_digest()
    assert with_receipt.signature_valid(IDS[1].public_key)
    assert not with_receipt.signature_valid(IDS[0].public_key)


def test_eq1_received_at_ttl_is_the_smallest_ttl_minus_one() -> None:
    t = tx(ttl=3)
    assert t.received_at_ttl() == 2
    assert t.with_receipts((receipt(0, t, at_ttl=1),)).received_at_ttl() == 0


@given(
    model=st.binary(max_size=64),
    now=st.integers(0, 2**40),
    ttl=st.integers(1, 10),
    accuracy=st.floats(0, 1),
)
def test_every_message_survives_the_wire(model: bytes, now: int, ttl: int, accuracy: float) -> None:
    t = tx(now=now, model=model, ttl=ttl)
    t = t.with_receipts((receipt(0, t, now, f"{accuracy:.4f}"),))
    draft = draft_block(1, GENESIS.final_hash, IDS[1], (t,), now, GENESIS.final_hash)
    confirmation = BlockConfirmation(IDS[0].node_id, t.digest, t.receipts[0].digest, draft.block_content_hash)
    block = finalised(draft, (confirmation.signed_by(IDS[0]),), now + 1)
    for message in (t, draft, block, confirmation.signed_by(IDS[0])):
        assert CODEC.decode_message(CODEC.encode_message(message)) == message
    assert block.computed_final_hash() == block.final_hash


@given(st.binary(max_size=200))
def test_garbage_is_a_decode_error_or_a_message(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        CODEC.decode_message(data)


def test_unknown_tags_and_types_are_refused() -> None:
    with pytest.raises(DecodeError):
        CODEC.decode_message(b"\x09abc")
    with pytest.raises(DecodeError):
        CODEC.decode_message(b"")
    with pytest.raises(TypeError):
        CODEC.encode_message("not a message")
    with pytest.raises(TypeError):
        CODEC.encode_request(b"x")
    with pytest.raises(DecodeError):
        CODEC.decode_request(b"\xff\xff")


def test_report_requests_and_reports_round_trip() -> None:
    assert CODEC.decode_request(CODEC.encode_request(ReportRequest())) == ReportRequest()
    report = NodeReport(
        IDS[0].node_id, True, b"w", (BlockStat(1, 4, 7, 8),), (PeerReputation(IDS[1].node_id, 0.95),),
        (AccuracyPoint(20, 0.5, b"weights"),), 4, 3, 2, 1, b"tip",
    )  # fmt: skip
    assert NodeReport.decode(report.encode()) == report
