"""LearningChain's signed objects: gradient messages (Eq. 13), block headers and blocks (Eq. 18), chain requests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import node_id_of
from chainlab.ledger.merkle import merkle_root
from chainlab.ledger.signed import Signed
from chainlab.proto.v1 import learningchain_pb2 as pb
from chainlab.protocols.spec import ModelSpec

NONCE_TAG = bytes([(14 << 3) | 1])  # LcHeader.nonce: field 14, wire type 1 (fixed64)
FLOAT64_BYTES = 8


@dataclass(frozen=True)
class GradientMessage(Signed):
    """M_{P_k}^t = (P*_k, g*_k, s_k^t, t): a unit vector and its norm, signed by the holder's pseudonym of height t."""

    PROTO: ClassVar = pb.LcGradient
    height: int
    pseudonym_key: bytes
    vector: bytes  # little-endian float64
    norm: float
    signature: bytes = b""

    @property
    def pseudonym(self) -> bytes:
        """P*_k = H(pubkey)."""
        return node_id_of(self.pseudonym_key)

    @property
    def dimension(self) -> int:
        """d, the vector's length (a vector whose byte count is no multiple of 8 has none: -1)."""
        size = len(self.vector)
        return size // FLOAT64_BYTES if size % FLOAT64_BYTES == 0 else -1


@dataclass(frozen=True)
class Header(Signed):
    """B_{t+1}'s header: prev, height, timestamp, Merkle root of the messages, H(w_{t+1}), miner, selection, nonce."""

    PROTO: ClassVar = pb.LcHeader
    prev: bytes
    height: int
    timestamp: int
    merkle_root: bytes
    model_hash: bytes
    miner_key: bytes
    selected: tuple[int, ...]
    nonce: int = 0
    signature: bytes = b""

    @property
    def miner(self) -> bytes:
        """The miner's ID."""
        return node_id_of(self.miner_key)

    def pow_prefix(self) -> bytes:
        """Canonical bytes without nonce and signature: a nonce trial appends nonce_suffix(n) and hashes."""
        return encoding.canonical_bytes(self, exclude=("signature", "nonce"))

    @cached_property
    def pow_hash(self) -> bytes:
        """H(prefix + nonce suffix): what the target bounds. It equals `hash` except for nonce 0, which proto3 leaves
        off the wire, so it is computed the way the nonce search computed it."""
        return sha256(self.pow_prefix(), nonce_suffix(self.nonce))


@dataclass(frozen=True)
class Block:
    """B_t: the header, the model w_t, every message for height t - 1 the miner held; genesis also names the spec."""

    PROTO: ClassVar = pb.LcBlock
    header: Header
    weights: bytes
    messages: tuple[GradientMessage, ...]
    spec: ModelSpec | None = None

    @property
    def hash(self) -> bytes:
        """The header's hash (the header commits to the weights and the messages)."""
        return self.header.hash

    @property
    def height(self) -> int:
        """t."""
        return self.header.height

    @cached_property
    def size_bytes(self) -> int:
        """Its encoded size: the full model plus all K messages (protocols.md 3.6)."""
        return len(encoding.encode(self))


@dataclass(frozen=True)
class ChainRequest:
    """Ask a node for its main chain from a height on: all of it (the live results reader) or `count` blocks (a
    node catching up)."""

    PROTO: ClassVar = pb.LcChainRequest
    from_height: int = 0
    count: int = 0  # 0: up to the head


@dataclass(frozen=True)
class Chain:
    """A node's main chain, genesis first; how many blocks it accepted off it; its rejections by kind.reason."""

    PROTO: ClassVar = pb.LcChain
    blocks: tuple[Block, ...]
    forks: int = 0
    rejected_reasons: tuple[str, ...] = ()  # kind.reason, sorted
    rejected_counts: tuple[int, ...] = ()


Message = GradientMessage | Block

MESSAGE_TYPES: tuple[type[Message], ...] = (GradientMessage, Block)


def nonce_suffix(nonce: int) -> bytes:
    """The wire bytes a nonce adds after pow_prefix()."""
    return NONCE_TAG + nonce.to_bytes(8, "little")


def messages_root(messages: tuple[GradientMessage, ...]) -> bytes:
    """The Merkle root of the messages' hashes in block order (empty: the hash of nothing)."""
    return merkle_root([m.hash for m in messages]) if messages else sha256(b"")


def canonical(messages: list[GradientMessage]) -> tuple[GradientMessage, ...]:
    """Messages in the canonical order every aggregation and block uses: by message hash."""
    return tuple(sorted(messages, key=lambda m: m.hash))


def genesis(weights: bytes, spec: ModelSpec) -> Block:
    """B_0: w_0 and the model spec; no messages, no miner, no proof of work."""
    header = Header(
        prev=b"",
        height=0,
        timestamp=0,
        merkle_root=messages_root(()),
        model_hash=sha256(weights),
        miner_key=b"",
        selected=(),
    )
    return Block(header, weights, (), spec)


def with_nonce(header: Header, nonce: int) -> Header:
    """The header carrying a found nonce (unsigned)."""
    return dataclasses.replace(header, nonce=nonce, signature=b"")
