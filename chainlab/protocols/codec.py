"""A protocol's wire codec when its messages travel behind a tag byte and it has one request type."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from chainlab.ledger import encoding
from chainlab.protocols.base import DecodeError

M = TypeVar("M")
R = TypeVar("R")


class TaggedCodec(Generic[M, R]):
    """Messages behind encoding.encode_tagged's tag byte, the request in canonical encoding; decoding runs no code
    and raises DecodeError on anything malformed."""

    def __init__(self, protocol: str, message_types: Sequence[type[M]], request_type: type[R]) -> None:
        self.protocol = protocol  # named in the TypeError a foreign object gets
        self.message_types = tuple(message_types)
        self.request_type = request_type

    def encode_message(self, message: object) -> bytes:
        """A message behind its tag byte."""
        if not isinstance(message, self.message_types):
            raise TypeError(f"not a {self.protocol} message: {type(message).__name__}")
        return encoding.encode_tagged(message, self.message_types)

    def decode_message(self, data: bytes) -> M:
        """Parse a tagged message; DecodeError if malformed."""
        try:
            return encoding.decode_tagged(data, self.message_types)
        except (ValueError, TypeError) as exc:  # EncodingError, or a field value its type refuses
            raise DecodeError(str(exc)) from exc

    def encode_request(self, request: object) -> bytes:
        """The request's canonical bytes."""
        if not isinstance(request, self.request_type):
            raise TypeError(f"{self.protocol} has no request of type {type(request).__name__}")
        return encoding.encode(request)

    def decode_request(self, data: bytes) -> R:
        """Parse a request; DecodeError if malformed."""
        try:
            return encoding.decode(self.request_type, data)
        except (ValueError, TypeError) as exc:
            raise DecodeError(str(exc)) from exc
