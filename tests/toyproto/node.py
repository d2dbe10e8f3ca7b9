"""Toy chain nodes: each miner mines blocks on its best tip and floods them; the longest chain wins.

Pure and sans-IO like every protocol core: no clock, no randomness, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

from chainlab.ledger.hashing import sha256
from chainlab.ledger.pow import meets_target
from chainlab.protocols.base import Answer, DecodeError, NodeStatus, Timer
from chainlab.protocols.effects import (
    Broadcast,
    CancelJob,
    Effect,
    JobResult,
    Mine,
    Record,
)

GENESIS = bytes(32)
NONCE_TAG = b""  # a block's bytes end with its nonce as 8 little-endian bytes, nothing before it
BLOCK_BYTES = 8 + 32 + 32 + 8
BLOCK_SIZE_MB = 0.001
MAX_ORPHANS = 64


@dataclass(frozen=True)
class Block:
    """height, parent hash, miner ID, nonce; its hash is SHA-256 of its bytes and must meet the target."""

    height: int
    parent: bytes
    miner: bytes
    nonce: int

    def prefix(self) -> bytes:
        """Everything but the nonce: what proof-of-work trials extend."""
        return self.height.to_bytes(8, "big") + self.parent + self.miner

    def encode(self) -> bytes:
        """The block's bytes."""
        return self.prefix() + self.nonce.to_bytes(8, "little")

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of the bytes."""
        return sha256(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Block:
        """Parse a block; DecodeError unless exactly BLOCK_BYTES long."""
        if len(data) != BLOCK_BYTES:
            raise DecodeError(f"a toy block is {BLOCK_BYTES} bytes, got {len(data)}")
        return cls(int.from_bytes(data[:8], "big"), data[8:40], data[40:72], int.from_bytes(data[72:], "little"))


class ToyCodec:
    """Blocks as their bytes; the toy chain has no point-to-point requests."""

    def encode_message(self, message: object) -> bytes:
        """A block's bytes."""
        if not isinstance(message, Block):
            raise TypeError(f"not a toy block: {type(message).__name__}")
        return message.encode()

    def decode_message(self, data: bytes) -> Block:
        """A block from bytes."""
        return Block.decode(data)

    def encode_request(self, request: object) -> bytes:
        """The toy chain asks nobody anything."""
        raise TypeError("the toy chain has no requests")

    def decode_request(self, data: bytes) -> object:
        """Every request is malformed here."""
        raise DecodeError("the toy chain has no requests")


class ToyMiner:
    """Mines on its best tip until the chain is `goal` blocks long; adopts longer chains it hears of."""

    role: ClassVar[str] = "miner"

    def __init__(self, node_id: bytes, target: int, goal: int) -> None:
        self._id = node_id
        self.target = target
        self.goal = goal
        self.blocks: dict[bytes, Block] = {}
        self.orphans: dict[bytes, list[Block]] = {}  # by the parent they wait for: gossip may reorder a chain
        self.tip_hash = GENESIS
        self.height = 0
        self._job = 0
        self._mining: tuple[int, Block] | None = None  # job, the block being mined (nonce 0)

    @property
    def node_id(self) -> bytes:
        """This node's ID."""
        return self._id

    def start(self, now: int) -> list[Effect]:
        """Start mining on the genesis."""
        return self._mine()

    def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
        """A block from a peer: checked, kept, and adopted if it makes a better chain."""
        if not isinstance(message, Block):
            return [_rejected(type(message).__name__, "malformed")]
        if message.hash in self.blocks:
            return []
        if not meets_target(message.hash, self.target):
            return [_rejected("ToyBlock", "bad_pow")]
        if message.parent != GENESIS and message.parent not in self.blocks:
            if sum(map(len, self.orphans.values())) >= MAX_ORPHANS:
                return [_rejected("ToyBlock", "unknown_parent")]
            self.orphans.setdefault(message.parent, []).append(message)
            return []
        parent_height = 0 if message.parent == GENESIS else self.blocks[message.parent].height
        if message.height != parent_height + 1:
            return [_rejected("ToyBlock", "wrong_height")]
        effects = self._accept(message)
        for child in self.orphans.pop(message.hash, []):
            effects += self.on_message(sender, child, now)
        return effects

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """The toy chain starts no timers."""
        return []

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """A nonce for the block being mined: publish it and mine the next."""
        if self._mining is None or self._mining[0] != job or not isinstance(result, int) or isinstance(result, bool):
            return []
        _, draft = self._mining
        self._mining = None
        block = Block(draft.height, draft.parent, draft.miner, result)
        return [*self._accept(block), Broadcast(block, BLOCK_SIZE_MB)]

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """Nothing to serve."""
        return None

    def status(self) -> NodeStatus:
        """Height and tip; blocks off the best chain are forks."""
        return NodeStatus(self.role, self.height, self.tip_hash, forks=len(self.blocks) - self.height)

    def _accept(self, block: Block) -> list[Effect]:
        self.blocks[block.hash] = block
        effects: list[Effect] = [Record("accepted", {"kind": "ToyBlock", "height": block.height})]
        if (block.height, self.tip_hash) > (self.height, block.hash):  # longer wins; then the smaller hash
            self.tip_hash, self.height = block.hash, block.height
            effects.append(Record("tip", {"height": block.height, "block": block.hash.hex()}))
            if self._mining is not None:
                effects.append(CancelJob(self._mining[0]))
                self._mining = None
            effects += self._mine()
        return effects

    def _mine(self) -> list[Effect]:
        if self.height >= self.goal or self._mining is not None:
            return []
        self._job += 1
        draft = Block(self.height + 1, self.tip_hash, self._id, 0)
        self._mining = (self._job, draft)
        return [Mine(self._job, draft.prefix(), self.target, NONCE_TAG)]


def _rejected(kind: str, reason: str) -> Record:
    return Record("rejected", {"kind": kind, "reason": reason})
