"""Why a BagChain node rejects a message: every rejection names one of these."""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """A rejection reason; the value is the metric label and log field."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    # A Task's terms (checked by every node on arrival, and by the requester before it signs).
    BAD_METRIC_MIN = "bad_metric_min"
    BAD_FEE = "bad_fee"
    UNKNOWN_MODEL = "unknown_model"
    BAD_MODEL_SPEC = "bad_model_spec"
    UNKNOWN_AGGREGATE = "unknown_aggregate"
    UNKNOWN_METRIC = "unknown_metric"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    UNKNOWN_TASK = "unknown_task"
    UNAUTHORIZED_RELEASE = "unauthorized_release"
    WRONG_DATASET = "wrong_dataset"
    UNKNOWN_PARENT = "unknown_parent"
    WRONG_HEIGHT = "wrong_height"
    TASK_MISMATCH = "task_mismatch"
    AFTER_VALIDATION_RELEASE = "after_validation_release"
    MODEL_UNAVAILABLE = "model_unavailable"
    MODEL_HASH_MISMATCH = "model_hash_mismatch"
    MODEL_UNDECODABLE = "model_undecodable"
    BELOW_METRIC_MIN = "below_metric_min"
    UNKNOWN_MINIBLOCK = "unknown_miniblock"
    INVALID_MINIBLOCK = "invalid_miniblock"
    MINIBLOCK_WRONG_PARENT = "miniblock_wrong_parent"
    DUPLICATE_MODEL = "duplicate_model"
    EMPTY_ENSEMBLE = "empty_ensemble"
    FALSE_METRIC_V = "false_metric_v"
    BAD_POW = "bad_pow"
    UNKNOWN_ENSEMBLE_BLOCK = "unknown_ensemble_block"
    INVALID_ENSEMBLE_BLOCK = "invalid_ensemble_block"
    FALSE_METRIC_E = "false_metric_e"
    RANKING_NOT_SORTED = "ranking_not_sorted"
    FALSE_METRIC_BEST = "false_metric_best"
    WRONG_REWARDS = "wrong_rewards"
    BAD_MERKLE_ROOT = "bad_merkle_root"
    WRONG_TASK_QUEUE = "wrong_task_queue"
    WRONG_PARENT = "wrong_parent"
    INVALID_PARENT = "invalid_parent"
    # A pending block that expires is rejected for what it still lacked.
    MISSING_RELEASE = "missing_release"
    MISSING_DATASET = "missing_dataset"
    EVALUATION_UNFINISHED = "evaluation_unfinished"
    # A block this node cannot hold for now: too far above its tip, or too many already waiting. Neither is held
    # against the block's hash: it is welcome again once the node has caught up.
    TOO_FAR_AHEAD = "too_far_ahead"
    TOO_MANY_PENDING = "too_many_pending"
    # A catch-up answer that is not what was asked: more than sync_max_blocks Key Blocks or sync_max_messages
    # blocks, or Key Blocks outside the heights asked for. The whole answer is dropped.
    SYNC_REPLY_TOO_LARGE = "sync_reply_too_large"
    SYNC_REPLY_UNASKED = "sync_reply_unasked"


class Rejected(Exception):
    """Raised inside validation; carries the reason."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        # Formatted when read, not when raised: validation raises and catches these by the million.
        return f"{self.reason}: {self.detail}" if self.detail else str(self.reason)
