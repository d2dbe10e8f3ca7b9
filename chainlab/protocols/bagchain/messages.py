"""BagChain's signed objects: tasks, dataset releases, MiniBlocks, Ensemble Blocks and Key Blocks."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import ClassVar

from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import node_id_of
from chainlab.ledger.signed import Signed
from chainlab.proto.v1 import bagchain_pb2 as pb
from chainlab.protocols.spec import ModelSpec

# KeyBlock.nonce is field 14 (fixed64): its wire bytes are this tag then 8 little-endian bytes.
NONCE_TAG = bytes([(14 << 3) | 1])


@dataclass(frozen=True)
class Task(Signed):
    """TASK: dataset commitments, Train, Aggregate, Metric, Metric_min, the fee and the requester."""

    PROTO: ClassVar = pb.Task
    train_commitment: bytes
    validation_commitment: bytes
    test_commitment: bytes
    train: ModelSpec
    aggregate: str
    metric: str
    metric_min: float
    fee: int
    requester_key: bytes
    sequence: int = 0
    signature: bytes = b""

    @property
    def task_id(self) -> bytes:
        """Task ID = Hash(TASK)."""
        return self.hash

    @cached_property
    def requester_id(self) -> bytes:
        """The requester's node ID."""
        return node_id_of(self.requester_key)


class DatasetKind(enum.IntEnum):
    """Which dataset a release publishes."""

    VALIDATION = pb.DATASET_KIND_VALIDATION
    TEST = pb.DATASET_KIND_TEST


@dataclass(frozen=True)
class DatasetRelease(Signed):
    """The requester's dataset publication message."""

    PROTO: ClassVar = pb.DatasetRelease
    height: int
    kind: DatasetKind
    timestamp: int
    task_id: bytes
    dataset: bytes
    signature: bytes = b""


@lru_cache(maxsize=4096)
def model_hash(model_bytes: bytes, miner_id: bytes) -> bytes:
    """ModelHash = Hash(omega || M_i): binds the model to its owner against plagiarism.

    Memoized: in the simulator every node checks the very bytes object its miner served, whose Python hash is kept
    with it, so a thousand nodes hash a model once; the cache holds models the nodes hold anyway."""
    return sha256(model_bytes, miner_id)


@dataclass(frozen=True)
class MiniBlock(Signed):
    """MB_h^i: commits to a base model by ModelHash and points to its parent Key Block."""

    PROTO: ClassVar = pb.MiniBlock
    timestamp: int
    miner_key: bytes
    task_id: bytes
    model_hash: bytes
    prehash: bytes
    height: int
    signature: bytes = b""

    @cached_property
    def miner_id(self) -> bytes:
        """The producing miner's ID."""
        return node_id_of(self.miner_key)


@dataclass(frozen=True)
class EnsembleBlock(Signed):
    """EB_h^k: the MiniBlocks of an ensemble and its Metric_V on D_V."""

    PROTO: ClassVar = pb.EnsembleBlock
    miniblocks: tuple[bytes, ...]
    metric_v: float
    miner_key: bytes
    task_id: bytes
    timestamp: int
    height: int
    signature: bytes = b""

    @cached_property
    def miner_id(self) -> bytes:
        """The producing miner's ID."""
        return node_id_of(self.miner_key)


@dataclass(frozen=True)
class RankedEnsemble:
    """One entry of a Key Block's ranking: an Ensemble Block and its Metric_E on D_E."""

    PROTO: ClassVar = pb.RankedEnsemble
    ensemble_block: bytes
    metric_e: float

    @cached_property
    def record(self) -> bytes:
        """Its bytes in a Key Block's encoding (kept: a miner's candidates list the same entries again and again)."""
        return encoding.field_record(_RANKING_FIELD, encoding.encode(self))


@dataclass(frozen=True)
class Reward:
    """A payment recorded in a Key Block's payload."""

    PROTO: ClassVar = pb.Reward
    recipient: bytes
    amount: int

    @cached_property
    def leaf(self) -> bytes:
        """Its canonical bytes, a Merkle leaf (kept: candidates and checks of a Key Block hash the same entries again
        and again)."""
        return encoding.encode(self)

    @cached_property
    def record(self) -> bytes:
        """Its bytes in a Key Block's encoding (kept, as RankedEnsemble.record)."""
        return encoding.field_record(_REWARDS_FIELD, self.leaf)


@dataclass(frozen=True)
class KeyBlock(Signed):
    """KB_h: the ranking of Ensemble Blocks, rewards, the task queue and the proof of work."""

    PROTO: ClassVar = pb.KeyBlock
    merkle_root: bytes
    timestamp: int
    metric_best: float
    ranking: tuple[RankedEnsemble, ...]
    miner_key: bytes
    task_id: bytes
    task_queue: tuple[bytes, ...]
    prehash: bytes
    height: int
    rewards: tuple[Reward, ...]
    nonce: int | None = None
    signature: bytes = b""

    @cached_property
    def miner_id(self) -> bytes:
        """The producer's ID (empty for genesis)."""
        return node_id_of(self.miner_key) if self.miner_key else b""

    def pow_prefix(self) -> bytes:
        """Canonical bytes without nonce and signature: proof-of-work trials append nonce_suffix(n).

        Assembled from the encoding of the fields before the ranking, the ranking entries' kept records, the fields
        between, and the reward entries' kept records: byte for byte canonical_bytes(exclude signature and nonce),
        but O(1) per entry that earlier candidates already listed (a candidate lists every miner twice)."""
        return self.derived("pow_prefix", self._assemble_prefix)

    def _assemble_prefix(self) -> bytes:
        head = encoding.canonical_bytes(self, exclude=_ALL_BUT_HEAD)
        middle = encoding.canonical_bytes(self, exclude=_ALL_BUT_MIDDLE)
        ranking = [entry.record for entry in self.ranking]
        rewards = [reward.record for reward in self.rewards]
        return b"".join([head, *ranking, middle, *rewards])

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of the canonical encoding without the signature: the proof-of-work prefix, then the nonce."""
        suffix = b"" if self.nonce is None else nonce_suffix(self.nonce)
        return sha256(self.pow_prefix(), suffix)


_RANKING_FIELD = pb.KeyBlock.DESCRIPTOR.fields_by_name["ranking"].number
_REWARDS_FIELD = pb.KeyBlock.DESCRIPTOR.fields_by_name["rewards"].number
# KeyBlock's fields by number: those before the ranking, and those between the ranking and the rewards (the nonce
# and signature come after the rewards and are left out of the prefix).
_KEY_BLOCK_FIELDS = frozenset(f.name for f in pb.KeyBlock.DESCRIPTOR.fields)
_ALL_BUT_HEAD = _KEY_BLOCK_FIELDS - {f.name for f in pb.KeyBlock.DESCRIPTOR.fields if f.number < _RANKING_FIELD}
_ALL_BUT_MIDDLE = _KEY_BLOCK_FIELDS - {
    f.name for f in pb.KeyBlock.DESCRIPTOR.fields if _RANKING_FIELD < f.number < _REWARDS_FIELD
}


def nonce_suffix(nonce: int) -> bytes:
    """The wire bytes a nonce adds after pow_prefix(), so H(prefix + suffix) = KeyBlock.hash."""
    return NONCE_TAG + nonce.to_bytes(8, "little")


@dataclass(frozen=True)
class ModelRequest:
    """Fetch(M_j, ModelHash), carrying the D_V release as proof that models may be served."""

    PROTO: ClassVar = pb.ModelRequest
    model_hash: bytes
    release: DatasetRelease | None


@dataclass(frozen=True)
class SyncRequest:
    """Catch-up: Key Blocks of the chain ending at to_hash (the peer's best tip if empty), heights from_height on.

    count is how many the asker wants; the answering node sends at most its sync_max_blocks.
    """

    PROTO: ClassVar = pb.SyncRequest
    to_hash: bytes
    from_height: int
    count: int


@dataclass(frozen=True)
class SyncReply:
    """A SyncRequest's answer: tagged envelopes (to_wire) of tasks, MiniBlocks, Ensemble Blocks, releases and Key
    Blocks, in that order, so that a receiver can admit each as it comes."""

    PROTO: ClassVar = pb.SyncReply
    messages: tuple[bytes, ...]


Message = Task | DatasetRelease | MiniBlock | EnsembleBlock | KeyBlock

MESSAGE_TYPES: tuple[type[Message], ...] = (Task, DatasetRelease, MiniBlock, EnsembleBlock, KeyBlock)

BagChainRequest = ModelRequest | SyncRequest
"""A point-to-point request: Fetch(M_j, ModelHash), or catch-up."""

REQUEST_TYPES: tuple[type[BagChainRequest], ...] = (ModelRequest, SyncRequest)


def genesis(task_queue: tuple[bytes, ...], allocations: tuple[Reward, ...] = ()) -> KeyBlock:
    """KB_0: no producer, no proof of work; its queue holds the first Q tasks and its rewards are the genesis
    allocations, the funds requesters pay their fees from (the paper leaves where fees come from open)."""
    return KeyBlock(
        merkle_root=sha256(b""),
        timestamp=0,
        metric_best=0.0,
        ranking=(),
        miner_key=b"",
        task_id=b"",
        task_queue=task_queue,
        prehash=b"",
        height=0,
        rewards=tuple(sorted(allocations, key=lambda r: r.recipient)),
    )


def author_key(message: Task | MiniBlock | EnsembleBlock | KeyBlock) -> bytes:
    """The public key a message names as its author's (empty for genesis): its signature must verify under it."""
    return message.requester_key if isinstance(message, Task) else message.miner_key


def to_wire(message: Message) -> bytes:
    """An envelope: one tag byte naming the message type, then its encoding."""
    return encoding.encode_tagged(message, MESSAGE_TYPES)


def from_wire(data: bytes) -> Message:
    """Parse an envelope; anything malformed raises EncodingError."""
    message: Message = encoding.decode_tagged(data, MESSAGE_TYPES)
    return message
