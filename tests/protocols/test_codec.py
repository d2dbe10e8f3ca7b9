"""TaggedCodec: messages behind encode_tagged's tag byte, the request in canonical bytes, DecodeError on anything
malformed and a TypeError naming the protocol for a foreign object."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.ledger import encoding
from chainlab.protocols.base import DecodeError
from chainlab.protocols.codec import TaggedCodec
from chainlab.protocols.learningchain.messages import MESSAGE_TYPES, Block, ChainRequest, GradientMessage

CODEC = TaggedCodec("Toy", MESSAGE_TYPES, ChainRequest)

# Any protocol's tagged messages would do: LearningChain's gradient message is a small one.
gradients = st.builds(
    GradientMessage, st.integers(0, 2**32), st.binary(max_size=8), st.binary(max_size=64), st.floats(allow_nan=False)
)


@settings(max_examples=50)
@given(gradients)
def test_a_message_is_its_tag_byte_then_its_canonical_bytes_and_decodes_back(message: GradientMessage) -> None:
    data = CODEC.encode_message(message)
    assert data == bytes([MESSAGE_TYPES.index(GradientMessage) + 1]) + encoding.encode(message)
    assert CODEC.decode_message(data) == message


@given(st.integers(0, 2**63 - 1))
def test_the_request_is_its_canonical_bytes_with_no_tag(height: int) -> None:
    data = CODEC.encode_request(ChainRequest(height))
    assert data == encoding.encode(ChainRequest(height))
    assert CODEC.decode_request(data) == ChainRequest(height)


@settings(max_examples=100)
@given(st.binary(max_size=80))
def test_any_bytes_decode_to_a_message_or_a_request_or_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        assert isinstance(CODEC.decode_message(data), GradientMessage | Block)
    with contextlib.suppress(DecodeError):
        assert isinstance(CODEC.decode_request(data), ChainRequest)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x03", b"\x01\xff\xff\xff"])
def test_an_unknown_tag_or_a_broken_body_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        CODEC.decode_message(data)


def test_a_foreign_object_is_a_type_error_naming_the_protocol() -> None:
    with pytest.raises(TypeError, match="not a Toy message: ChainRequest"):
        CODEC.encode_message(ChainRequest(0))
    with pytest.raises(TypeError, match="Toy has no request of type GradientMessage"):
        CODEC.encode_request(GradientMessage(0, b"", b"", 0.0))
