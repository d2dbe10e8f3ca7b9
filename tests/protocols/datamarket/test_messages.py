"""The wire codec: every message round-trips; malformed bytes are a DecodeError, never a crash."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlab.protocols.base import DecodeError
from chainlab.protocols.datamarket.messages import AddData, Block, ChainRequest, Refund, Report, Transaction
from chainlab.protocols.datamarket.wire import CODEC
from tests.protocols.datamarket.market import ALICE, create_body, tx

_bodies = st.one_of(
    st.builds(AddData, st.binary(max_size=4), st.integers(0, 1), st.binary(max_size=33), st.binary(max_size=33)),
    st.builds(Refund, st.integers(0, 2**40)),
    st.builds(Report, st.integers(0, 2**40)),
)


@given(_bodies, st.integers(0, 2**40))
def test_transactions_round_trip_and_stay_signed(body: AddData | Refund | Report, value: int) -> None:
    signed = tx(ALICE, body, value)
    decoded = CODEC.decode_message(CODEC.encode_message(signed))
    assert decoded == signed and isinstance(decoded, Transaction)
    assert decoded.signature_valid(ALICE.public_key) and decoded.bodies() == [body]


def test_a_block_round_trips() -> None:
    create = tx(ALICE, create_body(), 10)
    block = Block(0, b"", 3, ALICE.public_key, (create,), b"r" * 32).signed_by(ALICE)
    assert CODEC.decode_message(CODEC.encode_message(block)) == block


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        CODEC.decode_message(data)


def test_requests_round_trip_and_others_are_refused() -> None:
    assert CODEC.decode_request(CODEC.encode_request(ChainRequest(7))) == ChainRequest(7)
    with pytest.raises(TypeError):
        CODEC.encode_request(Refund(1))
    with pytest.raises(TypeError):
        CODEC.encode_message(Refund(1))
    with pytest.raises(DecodeError):
        CODEC.decode_request(b"\xff\xff")
