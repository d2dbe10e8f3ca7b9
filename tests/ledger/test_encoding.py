"""Canonical encoding's building blocks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chainlab.ledger.encoding import field_record
from chainlab.proto.v1 import bagchain_pb2 as pb


@given(st.lists(st.binary(max_size=400), max_size=5))
def test_records_of_a_repeated_field_are_its_deterministic_encoding(items: list[bytes]) -> None:
    number = pb.SyncReply.DESCRIPTOR.fields_by_name["messages"].number
    expected = pb.SyncReply(messages=items).SerializeToString(deterministic=True)
    assert b"".join(field_record(number, item) for item in items) == expected


def test_a_field_number_past_fifteen_takes_a_two_byte_tag() -> None:
    block = pb.KeyBlock(signature=b"s")  # field 15: the last one-byte tag
    assert field_record(15, b"s") == block.SerializeToString(deterministic=True)
    assert field_record(16, b"") == bytes([16 << 3 & 0x7F | 0x80 | 2, 1, 0])
