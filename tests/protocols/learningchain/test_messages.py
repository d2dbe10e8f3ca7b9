"""The wire codec round-trips every message, refuses malformed bytes, and the proof of work covers the header."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.base import DecodeError
from chainlab.protocols.learningchain.messages import (
    Block,
    ChainRequest,
    GradientMessage,
    Header,
    nonce_suffix,
)
from chainlab.protocols.learningchain.wire import CODEC
from tests.protocols.learningchain.net import gen

KEY = Identity.from_seed(b"k")

gradients = st.builds(
    GradientMessage,
    height=st.integers(0, 2**32),
    pseudonym_key=st.binary(max_size=40),
    vector=st.binary(max_size=200),
    norm=st.floats(allow_nan=False),
    signature=st.binary(max_size=64),
)
headers = st.builds(
    Header,
    prev=st.binary(max_size=32),
    height=st.integers(0, 2**32),
    timestamp=st.integers(0, 2**40),
    merkle_root=st.binary(max_size=32),
    model_hash=st.binary(max_size=32),
    miner_key=st.binary(max_size=32),
    selected=st.lists(st.integers(0, 2**32 - 1), max_size=8).map(tuple),
    nonce=st.integers(0, 2**64 - 1),
    signature=st.binary(max_size=64),
)


@settings(max_examples=60)
@given(gradients)
def test_gradient_messages_round_trip(message: GradientMessage) -> None:
    assert CODEC.decode_message(CODEC.encode_message(message)) == message


@settings(max_examples=60)
@given(headers, st.binary(max_size=64), st.lists(gradients, max_size=3))
def test_blocks_round_trip(header: Header, weights: bytes, messages: list[GradientMessage]) -> None:
    b = Block(header, weights, tuple(messages))
    decoded = CODEC.decode_message(CODEC.encode_message(b))
    assert decoded == b and isinstance(decoded, Block) and decoded.hash == b.hash


@settings(max_examples=100)
@given(st.binary(max_size=120))
def test_malformed_bytes_are_a_decode_error_or_a_message(data: bytes) -> None:
    try:
        decoded = CODEC.decode_message(data)
    except DecodeError:
        return
    assert isinstance(decoded, GradientMessage | Block)


def test_the_genesis_block_carries_the_spec_and_round_trips() -> None:
    g = gen()
    decoded = CODEC.decode_message(CODEC.encode_message(g))
    assert decoded == g and isinstance(decoded, Block) and decoded.spec is not None


def test_the_proof_of_work_hash_is_the_headers_hash_for_every_nonce_but_zero() -> None:
    h = Header(b"p", 1, 2, sha256(b"m"), sha256(b"w"), KEY.public_key, (0, 1), nonce=7)
    assert h.pow_hash == h.hash == sha256(h.pow_prefix(), nonce_suffix(7))
    zero = Header(b"p", 1, 2, sha256(b"m"), sha256(b"w"), KEY.public_key, (0, 1), nonce=0)
    assert zero.pow_hash == sha256(zero.pow_prefix(), nonce_suffix(0))


def test_requests_round_trip_and_other_objects_are_refused() -> None:
    assert CODEC.decode_request(CODEC.encode_request(ChainRequest(4))) == ChainRequest(4)
    with pytest.raises(TypeError):
        CODEC.encode_message(ChainRequest(0))
    with pytest.raises(TypeError):
        CODEC.encode_request(gen())
