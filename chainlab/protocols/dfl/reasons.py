"""Why a DFL node rejects an object: every rejection names an object kind and one of these reasons (protocols.md
1.2), recorded as kind "tx", "rc", "cf", "db" or "blk" and the reason, e.g. tx.bad_signature."""

from __future__ import annotations

import enum

from chainlab.protocols import rejection


class Kind(enum.StrEnum):
    """The rejected object: the `kind` label of a rejection."""

    TX = "tx"
    RECEIPT = "rc"
    CONFIRMATION = "cf"
    DRAFT = "db"
    BLOCK = "blk"
    MESSAGE = "message"


class Reason(enum.StrEnum):
    """A rejection reason; the value is the metric label and log field."""

    # transactions
    BAD_ADDRESS = "bad_address"
    BAD_DIGEST = "bad_digest"
    BAD_SIGNATURE = "bad_signature"
    FROM_FUTURE = "from_future"
    EXPIRED = "expired"
    DUPLICATE = "duplicate"
    TTL_EXHAUSTED = "ttl_exhausted"
    MODEL_MISMATCH = "model_mismatch"
    # receipts (with bad_address, bad_digest, bad_signature, from_future)
    TX_MISMATCH = "tx_mismatch"
    BAD_TTL = "bad_ttl"
    DUPLICATE_CREATOR = "duplicate_creator"
    # confirmations, checked at the generator (with bad_digest, bad_signature, duplicate)
    NO_DRAFT = "no_draft"
    BLOCK_MISMATCH = "block_mismatch"
    TX_NOT_FOUND = "tx_not_found"
    RECEIPT_NOT_FOUND = "receipt_not_found"
    CREATOR_MISMATCH = "creator_mismatch"
    # draft blocks, checked by a neighbour asked to confirm
    RECEIPT_NOT_MINE = "receipt_not_mine"
    FOREIGN_TX = "foreign_tx"
    BAD_CONTENT_HASH = "bad_content_hash"
    ALREADY_CONFIRMED = "already_confirmed"
    # blocks, checked by an auditor of a chain
    BAD_PREV = "bad_prev"
    GENESIS_MISMATCH = "genesis_mismatch"
    BAD_FINAL_HASH = "bad_final_hash"
    INVALID_TX = "invalid_tx"
    INSUFFICIENT_CONFIRMATIONS = "insufficient_confirmations"
    # anything that is no DFL object
    MALFORMED = "malformed"


class Rejected(rejection.Rejected[Kind, Reason]):
    """Raised inside a DFL node's validation; carries one of these kinds and reasons."""
