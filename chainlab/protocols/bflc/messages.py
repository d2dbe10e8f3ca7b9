"""BFLC's signed objects: joins, updates, score vectors, endorsements, update blocks and model blocks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import node_id_of
from chainlab.ledger.signed import Signed
from chainlab.proto.v1 import bflc_pb2 as pb
from chainlab.protocols.spec import ModelSpec


@dataclass(frozen=True)
class Join(Signed):
    """Join(pubkey, fee): a device asks the managers for admission, paying the permission fee."""

    PROTO: ClassVar = pb.BflcJoin
    public_key: bytes
    fee: int
    signature: bytes = b""

    @property
    def node_id(self) -> bytes:
        """The joining device's ID."""
        return node_id_of(self.public_key)


@dataclass(frozen=True)
class Update(Signed):
    """Update(t, uploader, w_i, n_samples, sig): a trainer's local model (not a delta: FedAvg of either is equal)."""

    PROTO: ClassVar = pb.BflcUpdate
    round: int
    uploader_key: bytes
    weights: bytes
    n_samples: int
    signature: bytes = b""

    @property
    def uploader(self) -> bytes:
        """The trainer's ID."""
        return node_id_of(self.uploader_key)

    @cached_property
    def weights_hash(self) -> bytes:
        """What an update block stores of the update (the paper's off-chain storage option)."""
        return sha256(self.weights)


@dataclass(frozen=True)
class Scores(Signed):
    """Scores(t, member, {uploader: score}, sig): one member's score vector, sorted by uploader."""

    PROTO: ClassVar = pb.BflcScores
    round: int
    member_key: bytes
    uploaders: tuple[bytes, ...]
    scores: tuple[float, ...]
    base: float = 0.0  # this member's score of w_t itself
    signature: bytes = b""

    @classmethod
    def of(cls, round_: int, member_key: bytes, scores: Mapping[bytes, float], base: float = 0.0) -> Scores:
        """An unsigned vector from {uploader: score} and the member's score of w_t."""
        ordered = sorted(scores.items())
        return cls(round_, member_key, tuple(u for u, _ in ordered), tuple(s for _, s in ordered), base)

    @property
    def member(self) -> bytes:
        """The scoring member's ID."""
        return node_id_of(self.member_key)

    def entries(self) -> Iterator[tuple[bytes, float]]:
        """(uploader, score) pairs; a vector whose lists differ in length has none past the shorter."""
        return zip(self.uploaders, self.scores, strict=False)


@dataclass(frozen=True)
class Endorsement(Signed):
    """A committee member's signature over a proposed model block's hash."""

    PROTO: ClassVar = pb.BflcEndorsement
    round: int
    block_hash: bytes
    member_key: bytes
    signature: bytes = b""

    @property
    def member(self) -> bytes:
        """The endorsing member's ID."""
        return node_id_of(self.member_key)


@dataclass(frozen=True)
class UpdateBlock:
    """An update block #t(k+1)+j: one packed update by hash, its uploader, n_samples and median score S_i."""

    PROTO: ClassVar = pb.BflcUpdateBlock
    round: int
    number: int
    uploader: bytes
    update_hash: bytes
    n_samples: int
    score: float

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of the canonical encoding."""
        return encoding.digest(self, exclude=())


@dataclass(frozen=True)
class Reward:
    """A profit share R * S_i / sum S_j paid to a packed update's uploader."""

    PROTO: ClassVar = pb.BflcReward
    recipient: bytes
    amount: float


@dataclass(frozen=True)
class ModelBlock:
    """The model block that closes round `round - 1` and opens round `round`: w_round and committee C_round."""

    PROTO: ClassVar = pb.BflcModelBlock
    round: int
    number: int
    prev: bytes
    weights: bytes
    update_blocks: tuple[bytes, ...]
    scores: tuple[Scores, ...]
    committee: tuple[bytes, ...]
    blacklisted: tuple[bytes, ...]
    rewards: tuple[Reward, ...]
    members: tuple[bytes, ...]  # public keys: every member at genesis, the admitted joins afterwards
    attempt: int = 0
    spec: ModelSpec | None = None
    signatures: tuple[Endorsement, ...] = ()

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of the canonical encoding without the committee's signatures."""
        return encoding.digest(self, exclude=("signatures",))

    def with_signatures(self, signatures: tuple[Endorsement, ...]) -> ModelBlock:
        """A copy carrying the committee's endorsements."""
        return dataclasses.replace(self, signatures=signatures)


@dataclass(frozen=True)
class RoundBlocks:
    """A round's update blocks and the model block that closes it."""

    PROTO: ClassVar = pb.BflcRoundBlocks
    model_block: ModelBlock
    update_blocks: tuple[UpdateBlock, ...]


@dataclass(frozen=True)
class Proposal:
    """The leader's unsigned round blocks, sent to the committee for checking and endorsement."""

    PROTO: ClassVar = pb.BflcRoundBlocks
    model_block: ModelBlock
    update_blocks: tuple[UpdateBlock, ...]


@dataclass(frozen=True)
class Commit:
    """A round's blocks with more than M/2 endorsements, broadcast to every node."""

    PROTO: ClassVar = pb.BflcRoundBlocks
    model_block: ModelBlock
    update_blocks: tuple[UpdateBlock, ...]

    @property
    def blocks(self) -> RoundBlocks:
        """As stored on the chain."""
        return RoundBlocks(self.model_block, self.update_blocks)


@dataclass(frozen=True)
class ChainRequest:
    """Ask a node for its chain from a round on (the live results reader's request)."""

    PROTO: ClassVar = pb.BflcChainRequest
    from_round: int = 0


@dataclass(frozen=True)
class Chain:
    """A node's chain: genesis, then every round's blocks in order."""

    PROTO: ClassVar = pb.BflcChain
    genesis: ModelBlock
    rounds: tuple[RoundBlocks, ...]


Message = Join | Update | Scores | Proposal | Endorsement | Commit

MESSAGE_TYPES: tuple[type[Message], ...] = (Join, Update, Scores, Proposal, Endorsement, Commit)


def genesis(
    weights: bytes, spec: ModelSpec, member_keys: tuple[bytes, ...], committee: tuple[bytes, ...]
) -> ModelBlock:
    """Model block #0: w_0, the model spec, the member list (fees paid at genesis) and committee C_0."""
    return ModelBlock(
        round=0,
        number=0,
        prev=b"",
        weights=weights,
        update_blocks=(),
        scores=(),
        committee=committee,
        blacklisted=(),
        rewards=(),
        members=member_keys,
        spec=spec,
    )
