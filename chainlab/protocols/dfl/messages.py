"""DFL's signed objects: transactions, receipts, block confirmations and per-node blocks, and the node report."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Self, cast

from chainlab.ledger import encoding
from chainlab.ledger.identity import Identity, node_id_of, verify
from chainlab.proto.v1 import dfl_pb2 as pb

ACCURACY_FORMAT = "{:.4f}"  # a receipt's accuracy is a string, so every node reads the same value back


class _Signed:
    """A digest over every field but `digest`, `signature` (and those in EXCLUDED), signed by the author."""

    EXCLUDED: ClassVar[tuple[str, ...]] = ("digest", "signature")
    digest: bytes
    signature: bytes

    def computed_digest(self) -> bytes:
        """d = H(the signed fields), recomputed from the content."""
        return encoding.digest(self, exclude=self.EXCLUDED)

    def signed_by(self, identity: Identity) -> Self:
        """A copy carrying its digest and identity's signature over it."""
        obj: Any = cast(Any, self)
        d = obj.computed_digest()
        signed: Self = dataclasses.replace(obj, digest=d, signature=identity.sign(d))
        return signed

    def signature_valid(self, public_key: bytes) -> bool:
        """Whether the signature is public_key's over the carried digest."""
        return verify(public_key, self.signature, self.digest)

    def encode(self) -> bytes:
        """Wire bytes."""
        return encoding.encode(self)


@dataclass(frozen=True)
class Receipt(_Signed):
    """A witness's signed evaluation of a transaction's model (Eq. 1: received_at_ttl)."""

    PROTO: ClassVar = pb.DflReceipt
    creator: bytes
    creator_key: bytes
    create_time: int
    received_at_ttl: int
    accuracy: str
    transaction_digest: bytes
    digest: bytes = b""
    signature: bytes = b""

    @property
    def accuracy_value(self) -> float:
        """The accuracy as a number (NaN if the string is not one: rules reject such receipts first)."""
        try:
            return float(self.accuracy)
        except ValueError:
            return float("nan")


@dataclass(frozen=True)
class Transaction(_Signed):
    """A model published by its generator; receipts ride along outside the digest."""

    PROTO: ClassVar = pb.DflTransaction
    EXCLUDED: ClassVar[tuple[str, ...]] = ("digest", "signature", "receipts")
    generator: bytes
    generator_key: bytes
    create_time: int
    expire_time: int
    ml_model: bytes
    ttl: int
    digest: bytes = b""
    signature: bytes = b""
    receipts: tuple[Receipt, ...] = ()

    def with_receipts(self, receipts: tuple[Receipt, ...]) -> Transaction:
        """The same transaction carrying these receipts (sorted by creator, so copies compare equal)."""
        return dataclasses.replace(self, receipts=tuple(sorted(receipts, key=lambda r: (r.creator, r.digest))))

    def received_at_ttl(self) -> int:
        """Eq. (1): min(ttl, receipts' received_at_ttl) - 1; below 0 means no receipt may be issued."""
        return min([self.ttl, *(r.received_at_ttl for r in self.receipts)]) - 1

    @property
    def size_mb(self) -> float:
        """The weights' size in MB (the message's size, less a small overhead)."""
        return len(self.ml_model) / 1e6


@dataclass(frozen=True)
class BlockConfirmation(_Signed):
    """A neighbour confirms, once, one receipt it authored inside one draft block."""

    PROTO: ClassVar = pb.DflBlockConfirmation
    creator: bytes
    transaction_digest: bytes
    receipt_digest: bytes
    block_digest: bytes
    digest: bytes = b""
    signature: bytes = b""


@dataclass(frozen=True)
class BlockContent:
    """What a block's block_content_hash covers."""

    PROTO: ClassVar = pb.DflBlockContent
    previous_block_hash: bytes
    creator: bytes
    creator_key: bytes
    transactions: tuple[Transaction, ...]
    block_generated_time: int
    genesis_block_hash: bytes
    genesis_content: str = ""
    memo: str = ""

    def hash(self) -> bytes:
        """block_content_hash = H(content), each transaction's weights committed through its digest.

        d = H(generator, times, ml_model, ttl) already binds the weights, and anyone auditing the block checks d
        against them (blk.invalid_tx), so hashing megabytes of weights again per draft, per confirming neighbour
        and per audit would add cost, not security.
        """
        committed = tuple(dataclasses.replace(tx, ml_model=b"") for tx in self.transactions)
        return encoding.digest(dataclasses.replace(self, transactions=committed), exclude=())


@dataclass(frozen=True)
class Block:
    """One block of a node's own chain; a draft has no confirmations and no final_hash yet."""

    PROTO: ClassVar = pb.DflBlock
    height: int
    content: BlockContent
    block_content_hash: bytes
    confirmations: tuple[BlockConfirmation, ...] = ()
    block_finalization_time: int = 0
    final_hash: bytes = b""

    def computed_final_hash(self) -> bytes:
        """H(everything but final_hash), the content through block_content_hash, which commits to it."""
        return encoding.digest(self, exclude=("final_hash", "content"))

    @cached_property
    def receipts(self) -> tuple[Receipt, ...]:
        """Every receipt of every transaction in the block: the ideal number of confirmations."""
        return tuple(r for tx in self.content.transactions for r in tx.receipts)

    @property
    def size_mb(self) -> float:
        """The weights it carries, in MB."""
        return sum(tx.size_mb for tx in self.content.transactions)

    def encode(self) -> bytes:
        """Wire bytes."""
        return encoding.encode(self)


def draft_block(
    height: int, previous: bytes, creator: Identity, transactions: tuple[Transaction, ...], now: int, genesis: bytes
) -> Block:
    """A draft block of the creator's transactions, sorted by digest."""
    content = BlockContent(
        previous_block_hash=previous,
        creator=creator.node_id,
        creator_key=creator.public_key,
        transactions=tuple(sorted(transactions, key=lambda t: t.digest)),
        block_generated_time=now,
        genesis_block_hash=genesis,
    )
    return Block(height, content, content.hash())


def finalised(draft: Block, confirmations: tuple[BlockConfirmation, ...], now: int) -> Block:
    """The draft with its confirmations (sorted by digest), finalisation time and final_hash."""
    block = dataclasses.replace(
        draft, confirmations=tuple(sorted(confirmations, key=lambda c: c.digest)), block_finalization_time=now
    )
    return dataclasses.replace(block, final_hash=block.computed_final_hash())


def genesis_block(architecture: str) -> Block:
    """The genesis block every node shares: height 0, the model architecture, no creator."""
    content = BlockContent(b"", b"", b"", (), 0, b"", genesis_content=architecture)
    return finalised(Block(0, content, content.hash()), (), 0)


def creator_matches(block: Block) -> bool:
    """Whether the block's creator address is H(creator_key)."""
    return node_id_of(block.content.creator_key) == block.content.creator


@dataclass(frozen=True)
class ReportRequest:
    """Ask a node for its NodeReport."""

    PROTO: ClassVar = pb.DflReportRequest


@dataclass(frozen=True)
class BlockStat:
    """One finalised block's counts (Tables 5 and 7)."""

    PROTO: ClassVar = pb.DflBlockStat
    height: int
    transactions: int
    confirmations: int
    ideal: int


@dataclass(frozen=True)
class PeerReputation:
    """One entry of a node's reputation map."""

    PROTO: ClassVar = pb.DflReputation
    peer: bytes
    value: float


@dataclass(frozen=True)
class AccuracyPoint:
    """The node's local (receipt-style) accuracy at a tick, and the weights it measured when the network keeps
    them (DflParams.snapshot_history; else empty), so that the results can measure the same model on a test set the
    node never sees (the comparison's D_R)."""

    PROTO: ClassVar = pb.DflAccuracyPoint
    tick: int
    accuracy: float
    weights: bytes


@dataclass(frozen=True)
class NodeReport:
    """What a node tells the results: its weights, chain statistics, reputations and accuracy history."""

    PROTO: ClassVar = pb.DflNodeReport
    node_id: bytes
    attacker: bool
    weights: bytes
    blocks: tuple[BlockStat, ...]
    reputation: tuple[PeerReputation, ...]
    history: tuple[AccuracyPoint, ...]
    transactions: int
    receipts: int
    model_updates: int
    steps: int
    tip: bytes

    def encode(self) -> bytes:
        """Wire bytes."""
        return encoding.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> NodeReport:
        """Parse a report; EncodingError if malformed."""
        report: NodeReport = encoding.decode(cls, data)
        return report


Message = Transaction | Block | BlockConfirmation
MESSAGE_TYPES: tuple[type[Message], ...] = (Transaction, Block, BlockConfirmation)
