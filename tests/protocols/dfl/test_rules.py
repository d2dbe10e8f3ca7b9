"""Every rejection reason of protocols.md 1.2, each provoked once, through the rules or through a node."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from chainlab.protocols.dfl import DflParams, rules
from chainlab.protocols.dfl.messages import (
    Block,
    BlockConfirmation,
    BlockContent,
    Transaction,
    draft_block,
    finalised,
)
from chainlab.protocols.dfl.reasons import Kind, Reason, Rejected
from chainlab.protocols.effects import EvaluateModel, EvaluationFailed
from tests.protocols.dfl.conftest import GENESIS, IDS, computes, node, receipt, rejections, started, tx

PARAMS = DflParams()
CASES: dict[str, Callable[[], object]] = {}


def case(name: str) -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Register a function that must raise Rejected (or make a node record) `name`."""

    def register(fn: Callable[[], object]) -> Callable[[], object]:
        CASES[name] = fn
        return fn

    return register


def _check(t: Transaction, now: int = 0) -> None:
    rules.check_transaction(t, now, PARAMS)
    rules.check_witness(t)


def _forged(t: Transaction, **changes: object) -> Transaction:
    return dataclasses.replace(t, **changes)  # type: ignore[arg-type]


# ----- transactions ---------------------------------------------------------------------------------------------


@case("tx.bad_address")
def _() -> None:
    _check(_forged(tx(), generator=IDS[2].node_id))


@case("tx.bad_digest")
def _() -> None:
    _check(_forged(tx(), ml_model=b"other"))


@case("tx.bad_signature")
def _() -> None:
    t = tx()
    _check(_forged(t, signature=IDS[2].sign(t.digest)))


@case("tx.from_future")
def _() -> None:
    _check(tx(now=100), now=100 - PARAMS.clock_skew - 1)


@case("tx.expired")
def _() -> None:
    _check(tx(now=0, expire=60), now=61)


@case("tx.ttl_exhausted")
def _() -> None:
    t = tx(ttl=1)
    _check(t.with_receipts((receipt(0, t, at_ttl=0),)))


@case("tx.duplicate")
def _() -> list[str]:
    n = started(node(0, neighbours=(1, 2)))
    t = tx(1)
    n.on_message(IDS[1].node_id, t, 0)
    return rejections(n.on_message(IDS[2].node_id, t, 0))


@case("tx.model_mismatch")
def _() -> list[str]:
    n = started(node(0))
    ((job, _),) = computes(n.on_message(IDS[1].node_id, tx(1), 0), EvaluateModel)
    return rejections(n.on_result(job, EvaluationFailed("shape"), 0))


# ----- receipts -------------------------------------------------------------------------------------------------


def _with(t: Transaction, *receipts: object) -> Transaction:
    return t.with_receipts(receipts)  # type: ignore[arg-type]


@case("rc.bad_address")
def _() -> None:
    t = tx(ttl=2)
    _check(_with(t, dataclasses.replace(receipt(0, t), creator=IDS[2].node_id)))


@case("rc.bad_digest")
def _() -> None:
    t = tx(ttl=2)
    _check(_with(t, dataclasses.replace(receipt(0, t), accuracy="0.9999")))


@case("rc.bad_signature")
def _() -> None:
    t = tx(ttl=2)
    r = receipt(0, t)
    _check(_with(t, dataclasses.replace(r, signature=IDS[2].sign(r.digest))))


@case("rc.tx_mismatch")
def _() -> None:
    t = tx(ttl=2)
    _check(_with(t, receipt(0, tx(1, model=b"another"))))


@case("rc.bad_ttl")
def _() -> None:
    t = tx(ttl=2)
    _check(_with(t, receipt(0, t, at_ttl=2)))


@case("rc.from_future")
def _() -> None:
    t = tx(ttl=2)
    _check(_with(t, receipt(0, t, now=PARAMS.clock_skew + 1)))


@case("rc.duplicate_creator")
def _() -> None:
    t = tx(ttl=3)
    _check(_with(t, receipt(0, t, at_ttl=1), receipt(0, t, at_ttl=0)))


# ----- confirmations --------------------------------------------------------------------------------------------


def _draft() -> tuple[Block, Transaction]:
    t = tx(1)
    t = t.with_receipts((receipt(0, t), receipt(2, t)))
    return draft_block(1, GENESIS.final_hash, IDS[1], (t,), 5, GENESIS.final_hash), t


def _confirmation(creator: int = 0, receipt_of: int = 0) -> tuple[Block, BlockConfirmation]:
    draft, t = _draft()
    r = next(r for r in t.receipts if r.creator == IDS[receipt_of].node_id)
    c = BlockConfirmation(IDS[creator].node_id, t.digest, r.digest, draft.block_content_hash)
    return draft, c.signed_by(IDS[creator])


@case("cf.no_draft")
def _() -> None:
    rules.check_confirmation(_confirmation()[1], None, {})


@case("cf.block_mismatch")
def _() -> None:
    draft, c = _confirmation()
    rules.check_confirmation(dataclasses.replace(c, block_digest=b"x").signed_by(IDS[0]), draft, {})


@case("cf.tx_not_found")
def _() -> None:
    draft, c = _confirmation()
    rules.check_confirmation(dataclasses.replace(c, transaction_digest=b"x").signed_by(IDS[0]), draft, {})


@case("cf.receipt_not_found")
def _() -> None:
    draft, c = _confirmation()
    rules.check_confirmation(dataclasses.replace(c, receipt_digest=b"x").signed_by(IDS[0]), draft, {})


@case("cf.creator_mismatch")
def _() -> None:
    draft, c = _confirmation(creator=2, receipt_of=0)
    rules.check_confirmation(c, draft, {})


@case("cf.bad_digest")
def _() -> None:
    draft, c = _confirmation()
    rules.check_confirmation(dataclasses.replace(c, digest=b"x" * 32), draft, {})


@case("cf.bad_signature")
def _() -> None:
    draft, c = _confirmation()
    rules.check_confirmation(dataclasses.replace(c, signature=IDS[2].sign(c.digest)), draft, {})


@case("cf.duplicate")
def _() -> None:
    draft, c = _confirmation()
    rules.check_confirmation(c, draft, {c.receipt_digest: c})


# ----- drafts ---------------------------------------------------------------------------------------------------


def _mine() -> tuple[Block, dict[bytes, object]]:
    draft, t = _draft()
    r = next(r for r in t.receipts if r.creator == IDS[0].node_id)
    return draft, {t.digest: r}


@case("db.receipt_not_mine")
def _() -> None:
    draft, _ = _mine()
    t = draft.content.transactions[0]
    rules.check_draft(draft, IDS[0].node_id, {t.digest: receipt(0, t, accuracy="0.1000")}, set())


@case("db.foreign_tx")
def _() -> None:
    t = tx(2)
    draft = draft_block(1, GENESIS.final_hash, IDS[1], (t,), 5, GENESIS.final_hash)
    rules.check_draft(draft, IDS[0].node_id, {}, set())


@case("db.bad_content_hash")
def _() -> None:
    draft, mine = _mine()
    rules.check_draft(dataclasses.replace(draft, block_content_hash=b"x"), IDS[0].node_id, mine, set())  # type: ignore[arg-type]


@case("db.already_confirmed")
def _() -> None:
    draft, mine = _mine()
    (r,) = mine.values()
    rules.check_draft(draft, IDS[0].node_id, mine, {r.digest})  # type: ignore[arg-type, attr-defined]


# ----- blocks (audit) -------------------------------------------------------------------------------------------


def _chain() -> list[Block]:
    draft, t = _draft()
    confirmations = tuple(
        BlockConfirmation(r.creator, t.digest, r.digest, draft.block_content_hash).signed_by(
            next(i for i in IDS if i.node_id == r.creator)
        )
        for r in t.receipts
    )
    return [GENESIS, finalised(draft, confirmations, 9)]


def _audit(block: Block, params: DflParams = PARAMS) -> None:
    rules.audit_chain([GENESIS, block], GENESIS, params)


def _resealed(block: Block, **changes: object) -> Block:
    changed = dataclasses.replace(block, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(changed, final_hash=changed.computed_final_hash())


def _recontent(block: Block, **changes: object) -> Block:
    content = dataclasses.replace(block.content, **changes)  # type: ignore[arg-type]
    return _resealed(block, content=content, block_content_hash=content.hash())


@case("blk.bad_prev")
def _() -> None:
    _audit(_recontent(_chain()[1], previous_block_hash=b"x" * 32))


@case("blk.genesis_mismatch")
def _() -> None:
    _audit(_recontent(_chain()[1], genesis_block_hash=b"x" * 32))


@case("blk.bad_content_hash")
def _() -> None:
    _audit(_resealed(_chain()[1], block_content_hash=b"x" * 32))


@case("blk.bad_final_hash")
def _() -> None:
    _audit(dataclasses.replace(_chain()[1], final_hash=b"x" * 32))


@case("blk.invalid_tx")
def _() -> None:
    block = _chain()[1]
    (t,) = block.content.transactions
    _audit(_recontent(block, transactions=(dataclasses.replace(t, ml_model=b"changed"),)))


@case("blk.insufficient_confirmations")
def _() -> None:
    block = _resealed(_chain()[1], confirmations=())
    _audit(block, DflParams(finalize="all_pct"))


# ----- anything else --------------------------------------------------------------------------------------------


@case("message.malformed")
def _() -> list[str]:
    return rejections(started(node(0)).on_message(IDS[1].node_id, "junk", 0))


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_reason_is_raised(name: str) -> None:
    try:
        outcome = CASES[name]()
    except Rejected as exc:
        assert f"{exc.kind}.{exc.reason}" == name
    else:
        assert outcome == [name], f"expected {name}, got {outcome}"


def test_every_reason_has_a_case() -> None:
    named = {name.split(".", 1)[1] for name in CASES}
    assert named == {r.value for r in Reason}
    assert {name.split(".", 1)[0] for name in CASES} == {k.value for k in Kind}


def test_an_honest_chain_passes_the_audit_under_every_rule() -> None:
    for rule in ("window", "all_pct", "per_tx_pct"):
        rules.audit_chain(_chain(), GENESIS, DflParams(finalize=rule))
    assert not rules.meets_finalization(_resealed(_chain()[1], confirmations=()), DflParams(finalize="per_tx_pct"))
    with pytest.raises(Rejected, match="genesis_mismatch"):
        rules.audit_chain([], GENESIS, PARAMS)


def test_a_draft_i_have_no_receipt_in_asks_nothing_of_me() -> None:
    draft, _ = _draft()
    assert rules.check_draft(draft, IDS[3].node_id, {}, set()) == []
    assert isinstance(draft.content, BlockContent)
