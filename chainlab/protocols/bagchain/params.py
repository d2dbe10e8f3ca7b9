"""Protocol parameters shared by every BagChain node of a network."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainlab.ledger.pow import DEFAULT_TARGET
from chainlab.protocols.params import params_from

# A fee above this is refused as absurd whatever the balance: balances are signed 64-bit on the wire.
MAX_FEE = 2**62


@dataclass(frozen=True)
class BagChainParams:
    """Rules every node agrees on; defaults are the paper's experiments (section VII-A)."""

    phase1_rounds: int = 100  # D_V is released this long after KB_{h-1}
    phase2_rounds: int = 10  # D_E is released this long after D_V
    target: int = DEFAULT_TARGET
    cfs: bool = False  # cross-fork sharing, section V
    queue_length: int = 3  # Q, section VI-C
    key_block_reward: int = 50
    ensemble_wait_rounds: int = 5  # longest wait for model fetches before building an Ensemble Block
    pending_rounds: int = 200  # longest a Key Block may wait for a missing parent or Ensemble Block
    # A MiniBlock or Ensemble Block more heights than this above the tip cannot be checked soon (its parent, task
    # or release is missing) and is refused rather than held; and at most max_pending_blocks of each kind wait.
    max_heights_ahead: int = 3
    max_pending_blocks: int = 1000
    # Catch-up: Key Blocks per request and answer (with their MiniBlocks, Ensemble Blocks, tasks and releases),
    # blocks of all kinds in one answer, requests in flight at once, and how long a Key Block's missing parent may
    # still arrive by gossip before the node asks the Key Block's sender for it.
    sync_max_blocks: int = 3
    sync_max_messages: int = 1000
    sync_max_outstanding: int = 2
    sync_wait_rounds: int = 5
    # After a restart or a late start: ask a peer for the chain above the tip every sync_probe_rounds, sync_probes
    # times (a Key Block gossiped while the node was down or starting is never sent to it again).
    sync_probe_rounds: int = 20
    sync_probes: int = 10
    miniblock_size_mb: float = 2.0
    ensemble_block_size_mb: float = 2.0
    key_block_size_mb: float = 6.0
    small_message_size_mb: float = 0.01
    metric_decimals: int = 6  # metrics are rounded so that every node computes the same value
    # What a Task may ask for: a node refuses a task its miners could not train, aggregate or score. These are
    # the names chainlab.learning implements (a test keeps them equal; the core may not import it).
    task_families: tuple[str, ...] = ("decision_tree", "lenet5", "softmax")
    task_aggregates: tuple[str, ...] = ("majority", "soft")
    task_metrics: tuple[str, ...] = ("accuracy", "f1")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BagChainParams:
        """Build from config, naming any unknown key."""
        return params_from(cls, data)

    def round_metric(self, value: float) -> float:
        """The metric as written in blocks."""
        return round(float(value), self.metric_decimals)
