"""The marketplace's timers: typed values a node starts and gets back, never strings to parse."""

from __future__ import annotations

from dataclasses import dataclass

from chainlab.protocols.base import Timer


@dataclass(frozen=True)
class Seal(Timer):
    """The sealer orders its pending transactions into a block."""


@dataclass(frozen=True)
class Act(Timer):
    """A contributor's turn: claim what is due, and maybe add its next sample."""

    turn: int


@dataclass(frozen=True)
class Publish(Timer):
    """The owner measures the model on its hidden test set and publishes the accuracy."""


@dataclass(frozen=True)
class Refetch(Timer):
    """Ask storage again for content a block names, after a Get failed (the driver's fault, never a peer's)."""

    address: bytes


@dataclass(frozen=True)
class Train(Timer):
    """An off-chain trainer's turn: train the latest model on the CID data added since its last upload."""
