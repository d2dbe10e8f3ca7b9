"""Why the market rejects a transaction or a node rejects a block: every rejection names one of these (protocols.md
4.2; reasons not listed there are marked as this implementation's)."""

from __future__ import annotations

import enum

from chainlab.protocols import rejection


class Kind(enum.StrEnum):
    """The rejected object, as protocols.md names it (the metric's `kind` label)."""

    TX = "tx"
    ADD = "add"
    REFUND = "rf"
    REPORT = "rp"
    MARKET = "mk"
    UPLOAD = "um"
    PUBLISH = "pa"
    REVEAL = "rv"
    BLOCK = "blk"  # this implementation's: a sealed block


class Reason(enum.StrEnum):
    """A rejection reason; the value is the metric label and log field."""

    # Any transaction.
    BAD_SIGNATURE = "bad_signature"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    MALFORMED = "malformed"  # this implementation's: not exactly one body
    REPLAYED = "replayed"  # this implementation's: a transaction already on the chain
    NO_MARKET = "no_market"  # this implementation's: before CreateMarket
    # CreateMarket.
    BAD_PARAMS = "bad_params"
    EXISTS = "exists"  # this implementation's: one market per chain
    # AddData.
    INSUFFICIENT_DEPOSIT = "insufficient_deposit"
    TOO_SOON = "too_soon"
    DUPLICATE = "duplicate"
    SCHEMA_MISMATCH = "schema_mismatch"
    BAD_CID = "bad_cid"
    # Refund and Report.
    UNKNOWN_RECORD = "unknown_record"  # this implementation's
    NOT_SUBMITTER = "not_submitter"
    TOO_EARLY = "too_early"
    MODEL_DISAGREES = "model_disagrees"
    ALREADY_CLAIMED = "already_claimed"
    NOTHING_LEFT = "nothing_left"
    OWN_DATA = "own_data"
    MODEL_AGREES = "model_agrees"
    NO_GOOD_DATA = "no_good_data"
    # UploadModel.
    UNKNOWN_PARENT = "unknown_parent"
    # PublishAccuracy and RevealTestSet.
    NOT_OWNER = "not_owner"
    UNKNOWN_MODEL = "unknown_model"  # this implementation's
    BAD_ACCURACY = "bad_accuracy"  # this implementation's: not in [0, 1]
    HASH_MISMATCH = "hash_mismatch"
    ALREADY_REVEALED = "already_revealed"  # this implementation's
    # Blocks (this implementation's).
    NOT_SEALER = "not_sealer"
    BAD_POSITION = "bad_position"
    BAD_TIME = "bad_time"
    BAD_STATE_ROOT = "bad_state_root"
    BAD_CHAIN = "bad_chain"  # a catch-up answer that does not decode


class Rejected(rejection.Rejected[Kind, Reason]):
    """Raised inside the marketplace's validation; carries one of these kinds and reasons."""
