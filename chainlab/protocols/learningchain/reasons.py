"""Why a LearningChain node rejects an object: every rejection names one of these (protocols.md 3.2)."""

from __future__ import annotations

import enum

from chainlab.protocols import rejection


class Kind(enum.StrEnum):
    """The rejected object, as protocols.md names it (the metric's `kind` label)."""

    MESSAGE = "msg"
    BLOCK = "blk"


class Reason(enum.StrEnum):
    """A rejection reason; the value is the metric label and log field."""

    # Gradient messages.
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"
    BAD_DIM = "bad_dim"
    NOT_UNIT = "not_unit"
    BAD_NORM = "bad_norm"
    DUPLICATE = "duplicate"
    # Blocks.
    BAD_POW = "bad_pow"
    UNKNOWN_PARENT = "unknown_parent"  # buffered, not dropped
    BAD_HEIGHT = "bad_height"
    BAD_MERKLE = "bad_merkle"
    INVALID_MSG = "invalid_msg"
    TOO_FEW_MSGS = "too_few_msgs"
    UNKNOWN_MESSAGE = "unknown_message"
    BAD_SELECTION = "bad_selection"
    BAD_MODEL = "bad_model"
    # Not in protocols.md's list, needed all the same: a block extending a block this node rejected (it cannot be
    # valid, and buffering it as an orphan would hold it for ever). A block whose miner signature fails (protocols.md
    # 3.2's [A] miner signature) is blk.bad_signature, the message reason's name.
    INVALID_PARENT = "invalid_parent"
    # A catch-up answer (the main chain a peer was asked for) that does not decode.
    BAD_CHAIN = "bad_chain"


class Rejected(rejection.Rejected[Kind, Reason]):
    """Raised inside a LearningChain node's validation; carries one of these kinds and reasons."""
