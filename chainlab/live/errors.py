"""Refusals: the one exception a transport-free handler raises to answer a gRPC call with a named reason."""

from __future__ import annotations

import grpc


class Refused(Exception):
    """A request refused for a named reason; the server interceptor maps it to a gRPC status."""

    def __init__(self, code: grpc.StatusCode, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.code = code
        self.reason = reason
        self.detail = detail


def invalid(reason: str, detail: str = "") -> Refused:
    """INVALID_ARGUMENT: the request itself is wrong (malformed, oversized, fails validation)."""
    return Refused(grpc.StatusCode.INVALID_ARGUMENT, reason, detail)


def not_found(reason: str, detail: str = "") -> Refused:
    """NOT_FOUND: the request names something this service does not hold (unknown task, block, CID)."""
    return Refused(grpc.StatusCode.NOT_FOUND, reason, detail)


def unavailable(reason: str, detail: str = "") -> Refused:
    """UNAVAILABLE: a peer or backend cannot be reached now (partition, dead neighbour); retrying may help."""
    return Refused(grpc.StatusCode.UNAVAILABLE, reason, detail)


def precondition(reason: str, detail: str = "") -> Refused:
    """FAILED_PRECONDITION: the request is valid but not yet answerable (task not finished, D_V not out)."""
    return Refused(grpc.StatusCode.FAILED_PRECONDITION, reason, detail)
