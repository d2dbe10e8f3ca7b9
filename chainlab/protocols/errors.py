"""Neutral refusals: what a transport-free handler raises; the live interceptor maps each kind to a status code."""

from __future__ import annotations

import enum


class RefusalKind(enum.Enum):
    """Why a request cannot be answered, independent of any transport."""

    INVALID = "invalid"  # the request itself is wrong: malformed, oversized, fails validation
    NOT_FOUND = "not_found"  # it names something this node does not hold
    NOT_READY = "not_ready"  # valid, but not answerable yet (task not finished, dataset not released)
    UNAVAILABLE = "unavailable"  # a peer or backend cannot be reached now; retrying may help
    INTERNAL = "internal"  # this service failed itself: never the caller's fault


class Refusal(Exception):
    """A request refused for a named reason (the metric label) with a human-readable detail."""

    def __init__(self, kind: RefusalKind, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.kind = kind
        self.reason = reason
        self.detail = detail


def invalid(reason: str, detail: str = "") -> Refusal:
    """The request itself is wrong."""
    return Refusal(RefusalKind.INVALID, reason, detail)


def not_found(reason: str, detail: str = "") -> Refusal:
    """The request names something this node does not hold."""
    return Refusal(RefusalKind.NOT_FOUND, reason, detail)


def not_ready(reason: str, detail: str = "") -> Refusal:
    """The request is valid but cannot be answered yet."""
    return Refusal(RefusalKind.NOT_READY, reason, detail)


def unavailable(reason: str, detail: str = "") -> Refusal:
    """A peer or backend cannot be reached now."""
    return Refusal(RefusalKind.UNAVAILABLE, reason, detail)


def internal(reason: str, detail: str = "") -> Refusal:
    """This service failed itself."""
    return Refusal(RefusalKind.INTERNAL, reason, detail)
