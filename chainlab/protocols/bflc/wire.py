"""BFLC's wire codec: Join, Update, Scores, Proposal, Endorsement and Commit behind a tag byte; chain requests."""

from __future__ import annotations

from chainlab.protocols.bflc.messages import MESSAGE_TYPES, ChainRequest
from chainlab.protocols.codec import TaggedCodec

CODEC = TaggedCodec("BFLC", MESSAGE_TYPES, ChainRequest)
