"""The marketplace's signed objects: transactions (one body each) and sealed blocks, proto-backed."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from chainlab.ledger.identity import node_id_of
from chainlab.ledger.signed import Signed
from chainlab.proto.v1 import datamarket_pb2 as pb


@dataclass(frozen=True)
class CreateMarket:
    """The owner's task: the initial model, the schema (feature count), training-data CIDs, SHA-256 of the hidden
    test set and the incentive parameters (durations in rounds); the reward fund is the transaction's value."""

    PROTO: ClassVar = pb.DatamarketCreateMarket
    weights: tuple[int, ...]
    features: int
    train_cids: tuple[bytes, ...]
    test_commitment: bytes
    day: int
    tau: int
    tau2: int
    cost_weight: int = 1
    fixed_deposit: int = 0
    reward: int = 0
    sums: tuple[int, ...] = ()  # the perceptron's update accumulator a
    count: int = 1  # its sample count c
    classes: int = 0  # 0 (or 2): DRT's binary task, one weight row; else one row per class


@dataclass(frozen=True)
class AddData:
    """One inline sample (x as packed bits, y) or one CID contribution: the storage address of a sample file (its
    labels inside, so labels_cid stays empty), under a deposit."""

    PROTO: ClassVar = pb.DatamarketAddData
    x: bytes = b""
    y: int = 0
    cid: bytes = b""
    labels_cid: bytes = b""


@dataclass(frozen=True)
class Refund:
    """The submitter claims a record's deposit back."""

    PROTO: ClassVar = pb.DatamarketRefund
    record: int


@dataclass(frozen=True)
class Report:
    """A verifier takes (part of) a record's deposit: DRT's "take", plus seed 004's reward."""

    PROTO: ClassVar = pb.DatamarketReport
    record: int


@dataclass(frozen=True)
class UploadModel:
    """An off-chain trainer's model by CID, with its parent model and the data it was trained on (lineage)."""

    PROTO: ClassVar = pb.DatamarketUploadModel
    parent: int
    weights_cid: bytes
    data_cids: tuple[bytes, ...] = ()
    features: int = 0


@dataclass(frozen=True)
class PublishAccuracy:
    """The owner's accuracy of a model on its hidden test set."""

    PROTO: ClassVar = pb.DatamarketPublishAccuracy
    model: int
    accuracy: float


@dataclass(frozen=True)
class RevealTestSet:
    """The owner reveals its test set: the storage address of its sample file, whose SHA-256 is the commitment."""

    PROTO: ClassVar = pb.DatamarketRevealTestSet
    cid: bytes


Body = CreateMarket | AddData | Refund | Report | UploadModel | PublishAccuracy | RevealTestSet
BODY_FIELDS = ("create", "add", "refund", "report", "upload", "publish", "reveal")


@dataclass(frozen=True)
class Transaction(Signed):
    """A signed transaction: exactly one body; value is what the sender pays with it."""

    PROTO: ClassVar = pb.DatamarketTransaction
    sender_key: bytes
    nonce: int
    value: int = 0
    create: CreateMarket | None = None
    add: AddData | None = None
    refund: Refund | None = None
    report: Report | None = None
    upload: UploadModel | None = None
    publish: PublishAccuracy | None = None
    reveal: RevealTestSet | None = None
    signature: bytes = b""

    @classmethod
    def of(cls, sender_key: bytes, nonce: int, body: Body, value: int = 0) -> Transaction:
        """An unsigned transaction carrying body."""
        name = BODY_FIELDS[_BODY_TYPES.index(type(body))]
        tx: Transaction = cls(sender_key, nonce, value, **{name: body})  # type: ignore[arg-type]
        return tx

    @property
    def sender(self) -> bytes:
        """The sender's ID."""
        return node_id_of(self.sender_key)

    def bodies(self) -> list[Body]:
        """Every body set (a well-formed transaction has one)."""
        return [b for name in BODY_FIELDS if (b := getattr(self, name)) is not None]

    @property
    def data_mb(self) -> float:
        """The contributed data it carries inline (an AddData sample's bits), in MB: its payload on the wire."""
        return len(self.add.x) / 1e6 if self.add is not None else 0.0


_BODY_TYPES: tuple[type, ...] = (CreateMarket, AddData, Refund, Report, UploadModel, PublishAccuracy, RevealTestSet)


@dataclass(frozen=True)
class Block(Signed):
    """A sealed block: transactions in order at chain time `time`, and the state root after executing them."""

    PROTO: ClassVar = pb.DatamarketBlock
    number: int
    prev: bytes
    time: int
    sealer_key: bytes
    txs: tuple[Transaction, ...]
    state_root: bytes
    signature: bytes = b""

    @property
    def sealer(self) -> bytes:
        """The sealer's ID."""
        return node_id_of(self.sealer_key)


@dataclass(frozen=True)
class ChainRequest:
    """Ask a node for its blocks from a number on (catch-up, and the live results reader)."""

    PROTO: ClassVar = pb.DatamarketChainRequest
    from_number: int = 0


@dataclass(frozen=True)
class Chain:
    """Blocks in order."""

    PROTO: ClassVar = pb.DatamarketChain
    blocks: tuple[Block, ...]


Message = Transaction | Block

MESSAGE_TYPES: tuple[type[Message], ...] = (Transaction, Block)
assert [f.name for f in fields(Transaction)][3:10] == list(BODY_FIELDS)
