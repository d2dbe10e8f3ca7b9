"""DFL's wire codec: transactions, draft blocks and confirmations behind a tag byte; report requests."""

from __future__ import annotations

from chainlab.ledger import encoding
from chainlab.protocols.base import DecodeError
from chainlab.protocols.dfl.messages import MESSAGE_TYPES, Message, ReportRequest, from_wire, to_wire


class DflCodec:
    """Encodes the three gossip messages and ReportRequest; decoding never executes code."""

    def encode_message(self, message: object) -> bytes:
        """A message behind its tag byte."""
        if not isinstance(message, MESSAGE_TYPES):
            raise TypeError(f"not a DFL message: {type(message).__name__}")
        return to_wire(message)

    def decode_message(self, data: bytes) -> Message:
        """Parse a tagged message; DecodeError if malformed."""
        try:
            return from_wire(data)
        except (encoding.EncodingError, ValueError, TypeError) as exc:
            raise DecodeError(str(exc)) from exc

    def encode_request(self, request: object) -> bytes:
        """A ReportRequest's bytes."""
        if not isinstance(request, ReportRequest):
            raise TypeError(f"DFL has no request of type {type(request).__name__}")
        return encoding.encode(request)

    def decode_request(self, data: bytes) -> ReportRequest:
        """Parse a ReportRequest; DecodeError if malformed."""
        try:
            request: ReportRequest = encoding.decode(ReportRequest, data)
        except encoding.EncodingError as exc:
            raise DecodeError(str(exc)) from exc
        return request


CODEC = DflCodec()
