"""A peer's object refused inside validation, named by the object's kind and the reason (the metric's labels)."""

from __future__ import annotations

import enum
from typing import Generic, TypeVar

K = TypeVar("K", bound=enum.StrEnum)
R = TypeVar("R", bound=enum.StrEnum)


class Rejected(Exception, Generic[K, R]):
    """Raised inside validation; carries the object kind, the reason and a human-readable detail. A protocol
    subclasses it with its own Kind and Reason, so that its `except Rejected` catches only its own rejections."""

    def __init__(self, kind: K, reason: R, detail: str = "") -> None:
        super().__init__(f"{kind}.{reason}: {detail}" if detail else f"{kind}.{reason}")
        self.kind = kind
        self.reason = reason
        self.detail = detail
