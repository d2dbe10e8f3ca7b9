"""The marketplace's wire codec: transactions and blocks behind a tag byte, and the chain request."""

from __future__ import annotations

from chainlab.ledger import encoding
from chainlab.protocols.base import DecodeError
from chainlab.protocols.datamarket.messages import MESSAGE_TYPES, ChainRequest, Message, from_wire, to_wire


class DatamarketCodec:
    """Encodes Transaction and Block, and ChainRequest; decoding runs no code."""

    def encode_message(self, message: object) -> bytes:
        """A message behind its tag byte."""
        if not isinstance(message, MESSAGE_TYPES):
            raise TypeError(f"not a marketplace message: {type(message).__name__}")
        return to_wire(message)

    def decode_message(self, data: bytes) -> Message:
        """Parse a tagged message; DecodeError if malformed."""
        try:
            return from_wire(data)
        except (encoding.EncodingError, ValueError, TypeError) as exc:
            raise DecodeError(str(exc)) from exc

    def encode_request(self, request: object) -> bytes:
        """A ChainRequest's canonical bytes."""
        if not isinstance(request, ChainRequest):
            raise TypeError(f"the marketplace has no request of type {type(request).__name__}")
        return encoding.encode(request)

    def decode_request(self, data: bytes) -> ChainRequest:
        """Parse a ChainRequest; DecodeError if malformed."""
        try:
            request: ChainRequest = encoding.decode(ChainRequest, data)
        except (encoding.EncodingError, ValueError, TypeError) as exc:
            raise DecodeError(str(exc)) from exc
        return request


CODEC = DatamarketCodec()
