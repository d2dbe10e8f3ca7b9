"""What a BagChain node persists (Persist effects) and how the records read back: one kind per object.

Every record is something the node already checked or decided: a task or release it admitted, a block it stored
(MiniBlocks and Ensemble Blocks as they arrive, their verdicts once settled, Key Blocks once accepted), a model
whose ModelHash it verified (its own included) and a metric it computed. Restoring therefore loads them as they
are instead of validating them again: a restarted node must not depend on peers that may be gone (a miner that
served a model once) nor repeat hours of evaluation; what it has not yet settled it validates as usual.
"""

from __future__ import annotations

import struct

from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.protocols.bagchain.messages import DatasetRelease, EnsembleBlock, KeyBlock, MiniBlock, Task
from chainlab.protocols.bagchain.reasons import Reason
from chainlab.protocols.effects import Persist

TASK, RELEASE, MINIBLOCK, ENSEMBLE, KEY_BLOCK = "task", "release", "miniblock", "ensemble", "keyblock"
VERDICT, MODEL, METRIC = "verdict", "model", "metric"

Block = Task | DatasetRelease | MiniBlock | EnsembleBlock | KeyBlock
_KIND_OF: dict[type[Block], str] = {
    Task: TASK,
    DatasetRelease: RELEASE,
    MiniBlock: MINIBLOCK,
    EnsembleBlock: ENSEMBLE,
    KeyBlock: KEY_BLOCK,
}
_TYPE_OF: dict[str, type[Block]] = {kind: cls for cls, kind in _KIND_OF.items()}
_HASH = 32


def of_block(block: Block) -> Persist:
    """A block, task or release under its own hash."""
    return Persist(_KIND_OF[type(block)], block.hash, block.encode())


def read_block(record: Persist) -> Block:
    """A block, task or release record back as its object."""
    block: Block = encoding.decode(_TYPE_OF[record.kind], record.payload)
    return block


def is_block(record: Persist) -> bool:
    """Whether the record holds a task, release or block."""
    return record.kind in _TYPE_OF


def of_verdict(block_hash: bytes, reason: Reason | None) -> Persist:
    """A MiniBlock's or Ensemble Block's settled verdict: empty for valid, else the reason."""
    return Persist(VERDICT, block_hash, b"" if reason is None else str(reason).encode())


def read_verdict(record: Persist) -> Reason | None:
    """The verdict a record holds."""
    return Reason(record.payload.decode()) if record.payload else None


def of_model(digest: bytes, model: bytes) -> Persist:
    """A model whose ModelHash was checked, under that hash."""
    return Persist(MODEL, digest, model)


def of_metric(model_hashes: tuple[bytes, ...], dataset: bytes, value: float) -> Persist:
    """A computed metric: the dataset commitment (after its length byte), the value as a double, then the sorted
    ModelHashes."""
    hashes = b"".join(model_hashes)  # one C pass: an Ensemble Block's metric lists every miner's model
    payload = bytes([len(dataset)]) + dataset + struct.pack("<d", value) + hashes
    return Persist(METRIC, sha256(dataset, hashes), payload)


def read_metric(record: Persist) -> tuple[tuple[bytes, ...], bytes, float]:
    """(sorted ModelHashes, dataset commitment, value) of a metric record."""
    size, data = record.payload[0], record.payload[1:]
    dataset, (value,), rest = data[:size], struct.unpack("<d", data[size : size + 8]), data[size + 8 :]
    hashes = tuple(rest[i : i + _HASH] for i in range(0, len(rest), _HASH))
    return hashes, dataset, value
