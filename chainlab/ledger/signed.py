"""Signed objects: hashing over the canonical encoding without the signature, signing and checking it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cached_property
from typing import Any, Self, TypeVar, cast

from chainlab.ledger import encoding
from chainlab.ledger.identity import Identity, verify

T = TypeVar("T")


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
        """Whether the signature is public_key's over this object's hash; checked once per object and key (the
        simulator hands one object to every node, so a block is verified once, not once per delivered copy)."""
        return self.derived(("signature_valid", public_key), lambda: verify(public_key, self.signature, self.hash))

    def encode(self) -> bytes:
        """Wire bytes, signature included; encoded once per object."""
        return self.derived("encode", lambda: encoding.encode(self))

    def derived(self, key: object, compute: Callable[[], T]) -> T:
        """A value derived from this immutable object alone, computed on first use and kept with it.

        compute must depend only on the object's content (and on content-addressed data, looked up by hash):
        every holder of the object then shares one result."""
        memo: dict[object, Any] | None = self.__dict__.get("_derived")
        if memo is None:  # not setdefault(..., {}): that builds a dict on every one of millions of calls
            memo = self.__dict__["_derived"] = {}
        if key not in memo:
            memo[key] = compute()
        value: T = memo[key]
        return value
