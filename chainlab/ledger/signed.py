"""Signed objects: hashing over the canonical encoding without the signature, signing and checking it."""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any, Self, cast

from chainlab.ledger import encoding
from chainlab.ledger.identity import Identity, verify


class Signed:
    """Mixin for frozen, proto-backed dataclasses with a `signature` field (BagChain's and BFLC's messages)."""

    signature: bytes

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of the canonical encoding without the signature."""
        return encoding.digest(self)

    def signed_by(self, identity: Identity) -> Self:
        """A copy carrying identity's signature over the hash."""
        unsigned: Any = dataclasses.replace(cast(Any, self), signature=b"")
        signed: Self = dataclasses.replace(unsigned, signature=identity.sign(unsigned.hash))
        return signed

    def signature_valid(self, public_key: bytes) -> bool:
        """Whether the signature is public_key's over this object's hash."""
        return verify(public_key, self.signature, self.hash)

    def encode(self) -> bytes:
        """Wire bytes, signature included."""
        return encoding.encode(self)
