"""DFL's wire codec: transactions, draft blocks and confirmations behind a tag byte; report requests."""

from __future__ import annotations

from chainlab.protocols.codec import TaggedCodec
from chainlab.protocols.dfl.messages import MESSAGE_TYPES, ReportRequest

CODEC = TaggedCodec("DFL", MESSAGE_TYPES, ReportRequest)
