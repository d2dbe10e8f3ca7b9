"""BFLC's codec round-trips every message, never executes or crashes on garbage, and signatures bind content."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.ledger.identity import Identity
from chainlab.protocols.base import DecodeError
from chainlab.protocols.bflc.messages import (
    ChainRequest,
    Commit,
    Endorsement,
    Join,
    Proposal,
    Scores,
    Update,
    UpdateBlock,
    genesis,
)
from chainlab.protocols.bflc.wire import CODEC
from chainlab.protocols.spec import ModelSpec

ME = Identity.from_seed(b"codec")
ids = st.binary(min_size=32, max_size=32)
unit = st.floats(min_value=0.0, max_value=1.0)


@given(st.integers(0, 2**32), st.binary(max_size=64), st.integers(0, 10**6))
def test_updates_round_trip_and_stay_signed(round_: int, weights: bytes, n: int) -> None:
    update = Update(round_, ME.public_key, weights, n).signed_by(ME)
    decoded = CODEC.decode_message(CODEC.encode_message(update))
    assert decoded == update and isinstance(decoded, Update) and decoded.signature_valid(ME.public_key)
    assert not dataclasses.replace(update, n_samples=n + 1).signature_valid(ME.public_key)


@given(st.lists(st.tuples(ids, unit), max_size=5))
def test_score_vectors_round_trip(entries: list[tuple[bytes, float]]) -> None:
    vector = Scores.of(3, ME.public_key, dict(entries)).signed_by(ME)
    assert CODEC.decode_message(CODEC.encode_message(vector)) == vector


def test_every_message_kind_round_trips() -> None:
    gen = genesis(b"w0", ModelSpec.of("softmax", {"lr": 0.1}), (ME.public_key,), (ME.node_id,))
    ub = UpdateBlock(0, 1, ME.node_id, b"h" * 32, 10, 0.5)
    endorsement = Endorsement(1, gen.hash, ME.public_key).signed_by(ME)
    messages = [
        Join(ME.public_key, 1).signed_by(ME),
        Proposal(gen, (ub,)),
        endorsement,
        Commit(gen.with_signatures((endorsement,)), (ub,)),
    ]
    for message in messages:
        assert CODEC.decode_message(CODEC.encode_message(message)) == message
    assert CODEC.decode_request(CODEC.encode_request(ChainRequest(4))) == ChainRequest(4)
    assert gen.with_signatures((endorsement,)).hash == gen.hash  # signatures are not hashed


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_garbage_is_a_decode_error_or_a_message(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        CODEC.decode_message(data)
    with contextlib.suppress(DecodeError):
        CODEC.decode_request(data)


def test_unknown_objects_are_not_encoded() -> None:
    with pytest.raises(TypeError):
        CODEC.encode_message(object())
    with pytest.raises(TypeError):
        CODEC.encode_request(object())
    with pytest.raises(DecodeError):
        CODEC.decode_message(b"\x09abc")
