"""Canonical encoding, hashing, signing and the wire envelope of BagChain's messages."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlab.ledger.encoding import EncodingError, canonical_bytes, decode, encode
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.bagchain.messages import (
    DatasetKind,
    DatasetRelease,
    EnsembleBlock,
    KeyBlock,
    MiniBlock,
    ModelRequest,
    RankedEnsemble,
    Reward,
    Task,
    from_wire,
    nonce_suffix,
    to_wire,
)
from chainlab.protocols.spec import ModelSpec

ME = Identity.from_seed(b"me")
digests = st.binary(min_size=32, max_size=32)
rounds = st.integers(0, 2**40)
metrics = st.floats(0, 1).map(lambda m: round(m, 6))


@st.composite
def key_blocks(draw: st.DrawFn) -> KeyBlock:
    ranking = tuple(RankedEnsemble(draw(digests), draw(metrics)) for _ in range(draw(st.integers(0, 4))))
    rewards = tuple(Reward(draw(digests), draw(st.integers(1, 2**40))) for _ in range(draw(st.integers(0, 4))))
    return KeyBlock(
        draw(digests), draw(rounds), draw(metrics), ranking, ME.public_key, draw(digests),
        tuple(draw(st.lists(digests, max_size=4))), draw(digests), draw(st.integers(1, 10**6)), rewards,
        draw(st.one_of(st.none(), st.integers(0, 2**64 - 1))),
    ).signed_by(ME)  # fmt: skip


@st.composite
def anything(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(["task", "release", "mb", "eb", "kb"]))
    if kind == "task":
        spec = ModelSpec.of(draw(st.sampled_from(["decision_tree", "lenet5"])), {"max_depth": draw(st.integers(1, 9))})
        return Task(draw(digests), draw(digests), draw(digests), spec, "majority", "accuracy", draw(metrics),
                    draw(st.integers(0, 10**9)), ME.public_key, draw(st.integers(0, 99))).signed_by(ME)  # fmt: skip
    if kind == "release":
        kinds = st.sampled_from(list(DatasetKind))
        return DatasetRelease(draw(rounds), draw(kinds), draw(rounds), draw(digests), draw(digests)).signed_by(ME)
    if kind == "mb":
        return MiniBlock(
            draw(rounds), ME.public_key, draw(digests), draw(digests), draw(digests), draw(rounds)
        ).signed_by(ME)
    if kind == "eb":
        mbs = tuple(draw(st.lists(digests, min_size=1, max_size=5)))
        return EnsembleBlock(mbs, draw(metrics), ME.public_key, draw(digests), draw(rounds), draw(rounds)).signed_by(ME)
    return draw(key_blocks())


@given(anything())
def test_wire_round_trip_keeps_hash_and_signature(message: object) -> None:
    back = from_wire(to_wire(message))  # type: ignore[arg-type]
    assert back == message
    assert back.hash == message.hash
    assert back.signature_valid(ME.public_key)


@given(key_blocks())
def test_pow_prefix_plus_nonce_suffix_is_the_block_hash(kb: KeyBlock) -> None:
    nonce = kb.nonce if kb.nonce is not None else 0
    kb = dataclasses.replace(kb, nonce=nonce)
    assert sha256(kb.pow_prefix() + nonce_suffix(nonce)) == kb.hash


@given(key_blocks())
def test_the_assembled_prefix_and_hash_are_the_canonical_encoding_byte_for_byte(kb: KeyBlock) -> None:
    assert kb.pow_prefix() == canonical_bytes(kb, exclude=("signature", "nonce"))
    assert kb.hash == sha256(canonical_bytes(kb))


def test_signature_is_outside_the_hash_and_covers_everything_else() -> None:
    mb = MiniBlock(1, ME.public_key, b"t" * 32, b"m" * 32, b"p" * 32, 1).signed_by(ME)
    assert dataclasses.replace(mb, signature=b"").hash == mb.hash
    assert b"signature" not in canonical_bytes(mb)
    tampered = dataclasses.replace(mb, timestamp=2)
    assert tampered.hash != mb.hash and not tampered.signature_valid(ME.public_key)


@given(st.binary(max_size=64))
def test_garbage_never_decodes_into_a_message_silently(data: bytes) -> None:
    try:
        message = from_wire(data)
    except EncodingError:
        return
    assert to_wire(message)[:1] == data[:1]  # whatever parses is a well-formed message of that tag


def test_unknown_tag_and_malformed_body_are_named() -> None:
    with pytest.raises(EncodingError, match="tag"):
        from_wire(b"\x00abc")
    with pytest.raises(EncodingError, match="malformed"):
        from_wire(b"\x03\xff\xff\xff")
    with pytest.raises(EncodingError, match="DatasetKind"):
        decode(DatasetRelease, bytes([2 << 3, 9]))


def test_model_request_carries_an_optional_release() -> None:
    release = DatasetRelease(1, DatasetKind.VALIDATION, 2, b"t" * 32, b"d" * 32).signed_by(ME)
    for request in (ModelRequest(b"m" * 32, release), ModelRequest(b"m" * 32, None)):
        assert decode(ModelRequest, encode(request)) == request
