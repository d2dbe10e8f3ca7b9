"""Why a BFLC node rejects an object: every rejection names one of these (protocols.md 2.2)."""

from __future__ import annotations

import enum

from chainlab.protocols import rejection


class Kind(enum.StrEnum):
    """The rejected object, as protocols.md names it (the metric's `kind` label)."""

    JOIN = "join"
    UPDATE = "upd"
    SCORES = "score"
    UPDATE_BLOCK = "ublk"
    MODEL_BLOCK = "mblk"
    ENDORSEMENT = "endorse"


class Reason(enum.StrEnum):
    """A rejection reason; the value is the metric label and log field."""

    # Membership.
    BLACKLISTED = "blacklisted"
    FEE_UNPAID = "fee_unpaid"
    ALREADY_MEMBER = "already_member"
    # Updates.
    NOT_MEMBER = "not_member"
    COMMITTEE_MEMBER = "committee_member"
    WRONG_ROUND = "wrong_round"
    DUPLICATE = "duplicate"
    ROUND_FULL = "round_full"
    BAD_SIGNATURE = "bad_signature"
    BAD_SHAPE = "bad_shape"
    NON_FINITE = "non_finite"
    NOT_RECIPIENT = "not_recipient"  # sent to a node that is not on the round's committee
    NOT_TRAINER = "not_trainer"  # from (or about) a member that is not among the round's trainers A_t
    # Scores.
    NOT_COMMITTEE = "not_committee"
    OUT_OF_RANGE = "out_of_range"
    # Update blocks.
    BAD_POSITION = "bad_position"
    BAD_MEDIAN = "bad_median"
    NOT_SELECTED = "not_selected"
    # Model blocks.
    BAD_AGGREGATE = "bad_aggregate"
    BAD_COMMITTEE = "bad_committee"
    BAD_BLACKLIST = "bad_blacklist"
    BAD_REWARDS = "bad_rewards"
    BAD_JOINS = "bad_joins"
    BAD_SCORES = "bad_scores"
    WRONG_PARENT = "wrong_parent"
    NOT_LEADER = "not_leader"
    INSUFFICIENT_SIGNATURES = "insufficient_signatures"


class Rejected(rejection.Rejected[Kind, Reason]):
    """Raised inside a BFLC node's validation; carries one of these kinds and reasons."""
