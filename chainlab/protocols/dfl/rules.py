"""DFL's validation rules (protocols.md 1.2) as pure functions: each raises Rejected naming the object and reason."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from chainlab.ledger.identity import node_id_of
from chainlab.protocols.dfl.messages import Block, BlockConfirmation, Receipt, Transaction
from chainlab.protocols.dfl.params import DflParams
from chainlab.protocols.dfl.reasons import Kind, Reason, Rejected

MAX_VERIFIED = 100_000  # receipt signatures a node remembers as checked


def check_transaction(
    tx: Transaction, now: int, params: DflParams, verified: set[tuple[bytes, bytes]] | None = None
) -> None:
    """A transaction and the receipts it carries, as a receiver checks them before witnessing it."""
    check_transaction_body(tx)
    check_times(tx, now, params)
    check_receipts(tx, now + params.clock_skew, verified)


def check_times(tx: Transaction, now: int, params: DflParams) -> None:
    """tx.from_future and tx.expired."""
    if tx.create_time > now + params.clock_skew:
        raise Rejected(Kind.TX, Reason.FROM_FUTURE, f"created at {tx.create_time}, now {now}")
    if now > tx.expire_time:
        raise Rejected(Kind.TX, Reason.EXPIRED, f"expired at {tx.expire_time}, now {now}")


def check_witness(tx: Transaction) -> None:
    """Whether a new transaction may still be witnessed: Eq. (1) leaves it a received_at_ttl >= 0.

    Copies of a transaction already witnessed may be exhausted: they only carry receipts back."""
    if tx.received_at_ttl() < 0:
        raise Rejected(Kind.TX, Reason.TTL_EXHAUSTED, f"ttl {tx.ttl}, {len(tx.receipts)} receipts")


def check_transaction_body(tx: Transaction) -> None:
    """The time-free checks: address, digest and signature."""
    if node_id_of(tx.generator_key) != tx.generator:
        raise Rejected(Kind.TX, Reason.BAD_ADDRESS)
    if tx.digest != tx.computed_digest():
        raise Rejected(Kind.TX, Reason.BAD_DIGEST)
    if not tx.signature_valid(tx.generator_key):
        raise Rejected(Kind.TX, Reason.BAD_SIGNATURE)


def check_receipts(tx: Transaction, latest: int, verified: set[tuple[bytes, bytes]] | None = None) -> None:
    """Every receipt on tx: well signed, about tx, within its ttl, not created after `latest`, one per creator.

    verified, if given, holds (digest, signature) pairs whose signature was checked before: copies of one
    transaction carry the same receipts many times, and Ed25519 verification is the costly part.
    """
    creators: set[bytes] = set()
    for receipt in tx.receipts:
        check_receipt(receipt, tx, verified)
        if receipt.create_time > latest:
            raise Rejected(Kind.RECEIPT, Reason.FROM_FUTURE, f"created at {receipt.create_time}")
        if receipt.creator in creators:
            raise Rejected(Kind.RECEIPT, Reason.DUPLICATE_CREATOR, receipt.creator.hex()[:16])
        creators.add(receipt.creator)


def check_receipt(receipt: Receipt, tx: Transaction, verified: set[tuple[bytes, bytes]] | None = None) -> None:
    """One receipt's time-free checks against the transaction it rides on (see check_receipts for verified)."""
    if node_id_of(receipt.creator_key) != receipt.creator:
        raise Rejected(Kind.RECEIPT, Reason.BAD_ADDRESS)
    if receipt.digest != receipt.computed_digest():
        raise Rejected(Kind.RECEIPT, Reason.BAD_DIGEST)
    # The digest covers the creator's key, so a pair seen verified is the same signature by the same key.
    pair = (receipt.digest, receipt.signature)
    if verified is None or pair not in verified:
        if not receipt.signature_valid(receipt.creator_key):
            raise Rejected(Kind.RECEIPT, Reason.BAD_SIGNATURE)
        if verified is not None:
            if len(verified) >= MAX_VERIFIED:
                verified.clear()  # a bound on memory; it only costs re-verification
            verified.add(pair)
    if receipt.transaction_digest != tx.digest:
        raise Rejected(Kind.RECEIPT, Reason.TX_MISMATCH)
    if not 0 <= receipt.received_at_ttl < tx.ttl:
        raise Rejected(Kind.RECEIPT, Reason.BAD_TTL, f"received_at_ttl {receipt.received_at_ttl}, ttl {tx.ttl}")


def check_confirmation(
    confirmation: BlockConfirmation, draft: Block | None, received: Mapping[bytes, BlockConfirmation]
) -> Receipt:
    """A neighbour's confirmation of a receipt in the generator's open draft; the receipt it confirms."""
    if draft is None:
        raise Rejected(Kind.CONFIRMATION, Reason.NO_DRAFT)
    if confirmation.digest != confirmation.computed_digest():
        raise Rejected(Kind.CONFIRMATION, Reason.BAD_DIGEST)
    if confirmation.block_digest != draft.block_content_hash:
        raise Rejected(Kind.CONFIRMATION, Reason.BLOCK_MISMATCH)
    tx = next((t for t in draft.content.transactions if t.digest == confirmation.transaction_digest), None)
    if tx is None:
        raise Rejected(Kind.CONFIRMATION, Reason.TX_NOT_FOUND)
    receipt = next((r for r in tx.receipts if r.digest == confirmation.receipt_digest), None)
    if receipt is None:
        raise Rejected(Kind.CONFIRMATION, Reason.RECEIPT_NOT_FOUND)
    if confirmation.creator != receipt.creator:
        raise Rejected(Kind.CONFIRMATION, Reason.CREATOR_MISMATCH)
    # The receipt names its creator's key, so the confirmation needs no key of its own.
    if not confirmation.signature_valid(receipt.creator_key):
        raise Rejected(Kind.CONFIRMATION, Reason.BAD_SIGNATURE)
    if confirmation.receipt_digest in received:
        raise Rejected(Kind.CONFIRMATION, Reason.DUPLICATE)
    return receipt


def check_draft(
    draft: Block, me: bytes, mine: Mapping[bytes, Receipt], confirmed: set[bytes]
) -> list[tuple[Transaction, Receipt]]:
    """A draft a neighbour asks me to confirm; the (transaction, receipt) pairs I authored in it, to confirm.

    mine holds the receipts I signed, by transaction digest; confirmed the receipt digests I confirmed before.
    """
    if draft.content.hash() != draft.block_content_hash:
        raise Rejected(Kind.DRAFT, Reason.BAD_CONTENT_HASH)
    pairs = []
    for tx in draft.content.transactions:
        if tx.generator != draft.content.creator:
            raise Rejected(Kind.DRAFT, Reason.FOREIGN_TX, tx.generator.hex()[:16])
        for receipt in tx.receipts:
            if receipt.creator != me:
                continue
            if mine.get(tx.digest) != receipt or receipt.transaction_digest != tx.digest:
                raise Rejected(Kind.DRAFT, Reason.RECEIPT_NOT_MINE, tx.digest.hex()[:16])
            if receipt.digest in confirmed:
                raise Rejected(Kind.DRAFT, Reason.ALREADY_CONFIRMED, receipt.digest.hex()[:16])
            pairs.append((tx, receipt))
    return pairs


def meets_finalization(block: Block, params: DflParams) -> bool:
    """Whether a block's confirmations pass the finalisation rule (window: whatever arrived in time)."""
    if params.finalize == "window":
        return True
    confirmed = {c.receipt_digest for c in block.confirmations}
    if params.finalize == "all_pct":
        ideal = len(block.receipts)
        return ideal == 0 or len(confirmed & {r.digest for r in block.receipts}) >= params.all_pct * ideal
    return all(
        sum(r.digest in confirmed for r in tx.receipts) >= params.per_tx_pct * len(tx.receipts)
        for tx in block.content.transactions
    )


def audit_chain(blocks: Sequence[Block], genesis: Block, params: DflParams) -> None:
    """Check one node's chain (genesis first) as an auditor, e.g. a reward system, would."""
    if not blocks or blocks[0].final_hash != genesis.final_hash:
        raise Rejected(Kind.BLOCK, Reason.GENESIS_MISMATCH, "the chain does not start at the genesis block")
    for previous, block in itertools.pairwise(blocks):
        audit_block(block, previous, genesis, params)


def audit_block(block: Block, previous: Block, genesis: Block, params: DflParams) -> None:
    """One block against its predecessor."""
    content = block.content
    if content.previous_block_hash != previous.final_hash or block.height != previous.height + 1:
        raise Rejected(Kind.BLOCK, Reason.BAD_PREV)
    if content.genesis_block_hash != genesis.final_hash:
        raise Rejected(Kind.BLOCK, Reason.GENESIS_MISMATCH)
    if content.hash() != block.block_content_hash:
        raise Rejected(Kind.BLOCK, Reason.BAD_CONTENT_HASH)
    if block.computed_final_hash() != block.final_hash:
        raise Rejected(Kind.BLOCK, Reason.BAD_FINAL_HASH)
    for tx in content.transactions:
        try:
            if tx.generator != content.creator:
                raise Rejected(Kind.TX, Reason.BAD_ADDRESS, "not the block creator's")
            check_transaction_body(tx)
            check_receipts(tx, block.block_finalization_time)
        except Rejected as exc:
            raise Rejected(Kind.BLOCK, Reason.INVALID_TX, f"{exc.kind}.{exc.reason}") from exc
    received: dict[bytes, BlockConfirmation] = {}
    unsealed = Block(block.height, content, block.block_content_hash)
    for confirmation in block.confirmations:
        try:
            check_confirmation(confirmation, unsealed, received)
        except Rejected as exc:
            raise Rejected(Kind.BLOCK, Reason.INSUFFICIENT_CONFIRMATIONS, f"{exc.kind}.{exc.reason}") from exc
        received[confirmation.receipt_digest] = confirmation
    if not meets_finalization(block, params):
        raise Rejected(Kind.BLOCK, Reason.INSUFFICIENT_CONFIRMATIONS, f"{len(received)} of {len(block.receipts)}")
