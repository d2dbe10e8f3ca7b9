"""Catch-up: what a full node answers to a SyncRequest, and the checks its answer must pass before any of it is used.

A node that is behind asks one peer for the Key Blocks of a chain by height range (ending at a hash it lacks, or at
the peer's tip) together with what checking them needs: their tasks, MiniBlocks, Ensemble Blocks and dataset
releases. It then admits every block as if it had arrived by gossip and validates it as usual (Algorithm 2.3,
recursively, model fetches and evaluations included). Bounds: sync_max_blocks Key Blocks per answer,
sync_max_messages blocks of all kinds, sync_max_outstanding requests in flight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chainlab.ledger import encoding
from chainlab.ledger.chain import ChainIndex
from chainlab.protocols.bagchain.messages import (
    DatasetKind,
    DatasetRelease,
    EnsembleBlock,
    KeyBlock,
    Message,
    MiniBlock,
    SyncReply,
    SyncRequest,
    Task,
    from_wire,
    to_wire,
)
from chainlab.protocols.bagchain.params import BagChainParams
from chainlab.protocols.bagchain.reasons import Reason, Rejected

_ORDER: dict[type[Message], int] = {Task: 0, MiniBlock: 1, EnsembleBlock: 2, DatasetRelease: 3, KeyBlock: 4}


def answer(
    request: SyncRequest,
    params: BagChainParams,
    chain: ChainIndex,
    key_blocks: Mapping[bytes, KeyBlock],
    tasks: Mapping[bytes, Task],
    releases: Mapping[tuple[int, bytes, DatasetKind], DatasetRelease],
    valid_ensembles: Mapping[tuple[int, bytes], Sequence[EnsembleBlock]],
    valid_miniblocks: Mapping[tuple[int, bytes], Sequence[MiniBlock]],
) -> SyncReply:
    """The Key Blocks asked for from the accepted chain, with their tasks, valid blocks and releases; empty if the
    chain's end is unknown here. Only what this node accepted is sent: it vouches for nothing it has not checked."""
    top = request.to_hash or chain.tip.block_hash
    if top not in chain:
        return SyncReply(())
    count = max(0, min(request.count, params.sync_max_blocks))
    last = request.from_height + count - 1
    wanted = [key_blocks[e.block_hash] for e in chain.path_to(top) if request.from_height <= e.height <= last]
    wanted = [kb for kb in wanted if kb.height > 0]
    out: list[Message] = []
    seen: set[bytes] = set()

    def add(message: Message) -> None:
        if message.hash not in seen and len(out) < params.sync_max_messages:
            seen.add(message.hash)
            out.append(message)

    for kb in wanted:
        for task_id in (kb.task_id, *kb.task_queue):
            if task_id in tasks:
                add(tasks[task_id])
    for kb in wanted:
        at = (kb.height, kb.task_id)
        ranked = {entry.ensemble_block for entry in kb.ranking}
        # Ranked Ensemble Blocks and their MiniBlocks first: what the Key Block's check cannot do without.
        ensembles = sorted(valid_ensembles.get(at, ()), key=lambda eb: (eb.hash not in ranked, eb.hash))
        members = {h for eb in ensembles if eb.hash in ranked for h in eb.miniblocks}
        for mb in sorted(valid_miniblocks.get(at, ()), key=lambda mb: (mb.hash not in members, mb.hash)):
            add(mb)
        for eb in ensembles:
            if all(h in seen for h in eb.miniblocks):
                add(eb)
        for kind in (DatasetKind.VALIDATION, DatasetKind.TEST):
            release = releases.get((kb.height, kb.task_id, kind))
            if release is not None:
                add(release)
    for kb in wanted:
        add(kb)
    # An answer is read in order: whatever the cut-off left out, Key Blocks come last and lowest first.
    return SyncReply(tuple(to_wire(m) for m in sorted(out, key=lambda m: _ORDER[type(m)])))


def read(data: bytes, request: SyncRequest, params: BagChainParams) -> list[Message]:
    """The messages of an answer, checked against what was asked; Rejected names what is wrong."""
    try:
        reply = encoding.decode(SyncReply, data)
        messages = [from_wire(item) for item in reply.messages]
    except encoding.EncodingError as exc:
        raise Rejected(Reason.MALFORMED, f"sync answer: {exc}") from exc
    key_blocks = [m for m in messages if isinstance(m, KeyBlock)]
    if len(messages) > params.sync_max_messages or len(key_blocks) > params.sync_max_blocks:
        raise Rejected(
            Reason.SYNC_REPLY_TOO_LARGE,
            f"{len(key_blocks)} Key Blocks, {len(messages)} blocks (at most {params.sync_max_blocks},"
            f" {params.sync_max_messages})",
        )
    last = request.from_height + min(request.count, params.sync_max_blocks) - 1
    stray = [kb.height for kb in key_blocks if not request.from_height <= kb.height <= last]
    if stray:
        raise Rejected(
            Reason.SYNC_REPLY_UNASKED, f"Key Block at height {stray[0]}, asked {request.from_height}..{last}"
        )
    return sorted(messages, key=lambda m: (_ORDER[type(m)], m.height if isinstance(m, KeyBlock) else 0))
