"""BagChain's wire codec: gossip messages and point-to-point requests, each behind a tag byte naming its type."""

from __future__ import annotations

from chainlab.ledger import encoding
from chainlab.protocols.bagchain.messages import (
    MESSAGE_TYPES,
    REQUEST_TYPES,
    BagChainRequest,
    Message,
    from_wire,
    to_wire,
)
from chainlab.protocols.base import DecodeError


class BagChainCodec:
    """Encodes Task, DatasetRelease and the three block kinds, and ModelRequest and SyncRequest; decoding never
    executes code."""

    def encode_message(self, message: object) -> bytes:
        """A message behind its tag byte."""
        return to_wire(_message(message))

    def decode_message(self, data: bytes) -> Message:
        """Parse a tagged message; DecodeError if malformed."""
        try:
            return from_wire(data)
        except encoding.EncodingError as exc:
            raise DecodeError(str(exc)) from exc

    def encode_request(self, request: object) -> bytes:
        """A request behind its tag byte."""
        if not isinstance(request, REQUEST_TYPES):
            raise TypeError(f"BagChain has no request of type {type(request).__name__}")
        return encoding.encode_tagged(request, REQUEST_TYPES)

    def decode_request(self, data: bytes) -> BagChainRequest:
        """Parse a tagged request; DecodeError if malformed."""
        try:
            request: BagChainRequest = encoding.decode_tagged(data, REQUEST_TYPES)
        except encoding.EncodingError as exc:
            raise DecodeError(str(exc)) from exc
        return request


def _message(message: object) -> Message:
    if not isinstance(message, MESSAGE_TYPES):
        raise TypeError(f"not a BagChain message: {type(message).__name__}")
    return message


CODEC = BagChainCodec()
