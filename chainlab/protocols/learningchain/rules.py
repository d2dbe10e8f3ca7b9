"""The validity rules of protocols.md 3.2 that need no ML: messages, and a block's structure before re-execution."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping

from chainlab.protocols.learningchain.messages import Block, GradientMessage, messages_root
from chainlab.protocols.learningchain.params import LearningChainParams
from chainlab.protocols.learningchain.reasons import Kind, Reason, Rejected

UNIT_TOLERANCE = 1e-6  # msg.not_unit: | ||g|| - 1 | > 1e-6


def vector_norm(vector: bytes) -> float:
    """||g||_2 of a little-endian float64 vector (NaN if any entry is not finite)."""
    values = struct.unpack(f"<{len(vector) // 8}d", vector)
    return math.hypot(*values) if all(math.isfinite(v) for v in values) else math.nan


def check_message(message: GradientMessage, dimension: int) -> None:
    """A message's own rules, whatever its height: d entries, a unit vector, a positive finite norm, a valid
    pseudonym signature. Rejected(msg, reason) naming the first one broken."""
    if message.dimension != dimension:
        raise Rejected(Kind.MESSAGE, Reason.BAD_DIM, f"{len(message.vector)} bytes, d = {dimension}")
    if not (math.isfinite(message.norm) and message.norm > 0):
        raise Rejected(Kind.MESSAGE, Reason.BAD_NORM, f"s = {message.norm}")
    norm = message.derived("norm", lambda: vector_norm(message.vector))
    if not abs(norm - 1.0) <= UNIT_TOLERANCE:  # also true of NaN
        raise Rejected(Kind.MESSAGE, Reason.NOT_UNIT, f"||g|| = {norm}")
    if len(message.pseudonym_key) != 32 or not message.signature_valid(message.pseudonym_key):
        raise Rejected(Kind.MESSAGE, Reason.BAD_SIGNATURE)


def check_selection(selected: tuple[int, ...], messages: int, count: int) -> None:
    """The header's selection is `count` distinct indices of the block's messages, ascending."""
    if len(selected) != count or list(selected) != sorted(set(selected)) or any(i >= messages for i in selected):
        raise Rejected(Kind.BLOCK, Reason.BAD_SELECTION, f"{len(selected)} indices, {count} expected of {messages}")


def check_block(
    block: Block,
    parent: Block,
    dimension: int,
    least: int,
    pool: Mapping[bytes, GradientMessage],
    strict: bool,
) -> int:
    """Every rule of B_{t+1} on parent B_t that needs no ML (protocols.md 3.2, in order); the proof of work and the
    miner signature are checked before (they need no parent). Returns how many messages the validator never saw.

    pool holds the valid messages of height t this validator received, by hash.
    """
    header, t = block.header, parent.height
    if header.height != t + 1:
        raise Rejected(Kind.BLOCK, Reason.BAD_HEIGHT, f"height {header.height} on a parent at {t}")
    if header.merkle_root != messages_root(block.messages):
        raise Rejected(Kind.BLOCK, Reason.BAD_MERKLE)
    hashes = [m.hash for m in block.messages]
    if hashes != sorted(set(hashes)):
        raise Rejected(Kind.BLOCK, Reason.INVALID_MSG, "messages not distinct and in canonical (hash) order")
    pseudonyms: set[bytes] = set()
    unseen = 0
    for i, message in enumerate(block.messages):
        if message.hash in pool:
            pseudonyms.add(message.pseudonym)
            continue
        if strict:
            raise Rejected(Kind.BLOCK, Reason.UNKNOWN_MESSAGE, f"message {i} was never received")
        unseen += 1
        try:
            if message.height != t:
                raise Rejected(Kind.MESSAGE, Reason.STALE, f"height {message.height}, block on {t}")
            check_message(message, dimension)
        except Rejected as exc:
            raise Rejected(Kind.BLOCK, Reason.INVALID_MSG, f"message {i}: {exc}") from exc
        if message.pseudonym in pseudonyms:
            raise Rejected(Kind.BLOCK, Reason.INVALID_MSG, f"message {i}: msg.duplicate")
        pseudonyms.add(message.pseudonym)
    if len(pseudonyms) != len(block.messages):
        raise Rejected(Kind.BLOCK, Reason.INVALID_MSG, "msg.duplicate: one pseudonym twice")
    if len(block.messages) < least:
        raise Rejected(Kind.BLOCK, Reason.TOO_FEW_MSGS, f"{len(block.messages)} < l = {least}")
    return unseen


def selected_count(params: LearningChainParams, least: int, messages: int) -> int:
    """How many of a block's n messages its aggregation takes: l (l_nearest), or n - f with f capped at
    floor((n - 3) / 2) (multi_krum; protocols.md 3.4). Mirrors chainlab.learning.robust_aggregation.selected_count."""
    if params.aggregator == "l_nearest":
        return min(least, messages)
    return messages - max(0, min(params.krum_f, (messages - 3) // 2))
