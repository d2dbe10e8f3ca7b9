"""LearningChain's wire codec: gradient messages and blocks behind a tag byte, and the chain request."""

from __future__ import annotations

from chainlab.protocols.codec import TaggedCodec
from chainlab.protocols.learningchain.messages import MESSAGE_TYPES, ChainRequest

CODEC = TaggedCodec("LearningChain", MESSAGE_TYPES, ChainRequest)
