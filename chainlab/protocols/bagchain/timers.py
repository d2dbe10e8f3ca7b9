"""BagChain's timers: typed values a node starts and gets back, never strings to parse."""

from __future__ import annotations

from dataclasses import dataclass

from chainlab.protocols.bagchain.messages import DatasetKind
from chainlab.protocols.base import Timer


@dataclass(frozen=True)
class ExpireKeyBlock(Timer):
    """Give up on a pending Key Block that still waits for what it needs."""

    block_hash: bytes


@dataclass(frozen=True)
class CloseCollection(Timer):
    """A miner stops waiting for model fetches before building its Ensemble Block for (height, task)."""

    height: int
    task_id: bytes


@dataclass(frozen=True)
class ReleaseDataset(Timer):
    """The requester releases D_V (then D_E) of a task for a height."""

    height: int
    kind: DatasetKind
    task_id: bytes


@dataclass(frozen=True)
class SyncProbe(Timer):
    """A restarted or late node asks again whether a peer's chain has grown past its tip (gossip it missed while
    down or restarting is not sent again); count says how many such probes remain."""

    count: int


@dataclass(frozen=True)
class SyncDue(Timer):
    """A pending Key Block still lacks its parent or an Ensemble Block this long after it was missed: ask a peer."""

    block_hash: bytes


@dataclass(frozen=True)
class RetryDataset(Timer):
    """A dataset fetch failed a while ago: validation that waits for the dataset may ask for it again."""

    commitment: bytes


@dataclass(frozen=True)
class Act(Timer):
    """What a miner produces from changed this round: act on it once the round's arrivals are in (started with no
    delay, it fires after what is already due this round)."""
