"""Protocol parameters every DFL node of a network shares; defaults are the paper's ML simulation (section 5.2)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainlab.protocols.params import check_choice, check_integer, params_from

AGGREGATIONS = ("halffedavg", "reputation", "fedavg", "median")
FINALIZE_RULES = ("window", "all_pct", "per_tx_pct")
RECEIPT_ROUTINGS = ("reverse_path", "neighbours_only")


@dataclass(frozen=True)
class DflParams:
    """Rules in ticks (1 round = 1 tick). tx_per_block = 0 runs without a chain, as the paper's simulator does."""

    duration: int = 4000  # ticks of training; then the node stops
    interval_min: int = 8  # a batch arrives every U{interval_min..interval_max} ticks
    interval_max: int = 12
    batch_size: int = 64
    buffer: int = 4  # B: aggregate once this many models are buffered
    ttl: int = 1
    expire: int = 60  # expire_time = create_time + expire
    clock_skew: int = 10  # a create_time this far ahead of now is still accepted
    tx_per_block: int = 0  # T_b; 0: no blocks
    receipt_wait: int = 10  # W_r
    confirm_window: int = 60  # W_c
    finalize: str = "window"
    all_pct: float = 0.8
    per_tx_pct: float = 0.6
    aggregation: str = "reputation"
    penalty: float = 0.05
    eval_samples: int = 100  # samples of the local test set per receipt and history point
    record_every: int = 20  # ticks between local accuracy measurements; 0: none
    # Keep the weights each history point measured, so that the results can measure them on a test set the node
    # never sees (the comparison's D_R): one model per point in the node's report.
    snapshot_history: bool = False
    receipt_routing: str = "reverse_path"
    perturb_scale: float = 0.001  # model poisoning: weights U(0, perturb_scale)
    overhead_mb: float = 0.001  # what a message adds to the weights it carries

    def __post_init__(self) -> None:
        for name in ("duration", "interval_min", "batch_size", "buffer", "ttl", "expire", "receipt_wait"):
            check_integer(self, name, 1)
        check_integer(self, "confirm_window", 1)
        check_integer(self, "interval_max", self.interval_min)
        for name in ("clock_skew", "tx_per_block", "eval_samples", "record_every"):
            check_integer(self, name, 0)
        if not isinstance(self.snapshot_history, bool):
            raise ValueError(f"snapshot_history must be true or false, got {self.snapshot_history!r}")
        check_choice(self, "finalize", FINALIZE_RULES)
        check_choice(self, "aggregation", AGGREGATIONS)
        check_choice(self, "receipt_routing", RECEIPT_ROUTINGS)
        for name in ("all_pct", "per_tx_pct", "penalty"):
            _fraction(self, name)
        for name in ("perturb_scale", "overhead_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DflParams:
        """Build from config, naming any unknown key."""
        return params_from(cls, data, "DFL parameter")

    @property
    def chain(self) -> bool:
        """Whether nodes write blocks."""
        return self.tx_per_block > 0


def _fraction(params: DflParams, name: str) -> None:
    value = getattr(params, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
