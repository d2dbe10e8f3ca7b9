"""LearningChain's timers: typed values a node starts and gets back, never strings to parse."""

from __future__ import annotations

from dataclasses import dataclass

from chainlab.protocols.base import Timer


@dataclass(frozen=True)
class Collect(Timer):
    """A miner has collected messages for its head `head` for collect_rounds: aggregate if it holds l of them."""

    head: bytes
