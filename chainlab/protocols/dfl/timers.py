"""DFL's timers: typed values a node starts and gets back."""

from __future__ import annotations

from dataclasses import dataclass

from chainlab.protocols.base import Timer


@dataclass(frozen=True)
class DataArrival(Timer):
    """The k-th batch of the node's data stream has arrived: train on it."""

    k: int


@dataclass(frozen=True)
class RecordAccuracy(Timer):
    """Measure the node's local accuracy for its history."""


@dataclass(frozen=True)
class ReceiptWait(Timer):
    """W_r after the block's T_b-th transaction: build the draft from what receipts came."""

    height: int


@dataclass(frozen=True)
class ConfirmWindow(Timer):
    """W_c after the draft went out: finalise the block."""

    height: int
