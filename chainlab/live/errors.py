"""Refusals in live services: the neutral ones of chainlab.protocols.errors, and their gRPC status codes.

Handlers raise a Refusal; the one server interceptor (server.py) turns it into the status STATUS_OF names.
A service passing on another service's refusal maps the status back with KIND_OF.
"""

from __future__ import annotations

import grpc

from chainlab.protocols.errors import Refusal, RefusalKind, internal, invalid, not_found, not_ready, unavailable

__all__ = ["KIND_OF", "STATUS_OF", "Refusal", "internal", "invalid", "not_found", "not_ready", "unavailable"]

STATUS_OF = {
    RefusalKind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    RefusalKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    RefusalKind.NOT_READY: grpc.StatusCode.FAILED_PRECONDITION,
    RefusalKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    RefusalKind.INTERNAL: grpc.StatusCode.INTERNAL,
}
KIND_OF = {code: kind for kind, code in STATUS_OF.items()}
