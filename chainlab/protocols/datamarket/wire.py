"""The marketplace's wire codec: transactions and blocks behind a tag byte, and the chain request."""

from __future__ import annotations

from chainlab.protocols.codec import TaggedCodec
from chainlab.protocols.datamarket.messages import MESSAGE_TYPES, ChainRequest

CODEC = TaggedCodec("marketplace", MESSAGE_TYPES, ChainRequest)
