"""Every rejection reason of Algorithms 2.1-2.3, each on a block tampered from an honest run."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import pytest

from chainlab.learning.worker import ModelSpec as LearningSpec
from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.bagchain import FullNode, rules
from chainlab.protocols.bagchain.messages import (
    DatasetKind,
    EnsembleBlock,
    KeyBlock,
    MiniBlock,
    RankedEnsemble,
    Reward,
    SyncReply,
    Task,
    model_hash,
    to_wire,
)
from chainlab.protocols.bagchain.reasons import Reason
from chainlab.protocols.bagchain.wire import CODEC
from chainlab.protocols.base import DecodeError
from chainlab.protocols.spec import ModelSpec
from tests.protocols.bagchain.conftest import (
    REJECTED,
    FakeServer,
    Harness,
    Honest,
    remine,
    resign,
    sibling_key_block,
    validator,
)

V, E = DatasetKind.VALIDATION, DatasetKind.TEST

Test = TypeVar("Test", bound=Callable[..., None])

# Reason -> the tests that prove it, filled by @proves as this module is imported: deleting a test deletes its entries.
PROVEN: dict[Reason, list[str]] = {}


def proves(*reasons: Reason) -> Callable[[Test], Test]:
    """Register a test as a proof of `reasons`; it then also fails unless each was recorded as a rejection while it
    ran, so the registration cannot claim more than the test shows."""

    def register(test: Test) -> Test:
        for reason in reasons:
            PROVEN.setdefault(reason, []).append(test.__name__)

        @functools.wraps(test)
        def checked(*args: Any, **kwargs: Any) -> None:
            start = len(REJECTED)
            test(*args, **kwargs)
            missing = set(reasons) - set(REJECTED[start:])
            assert not missing, f"{test.__name__} proves {sorted(missing)}, but no such rejection was recorded"

        return cast(Test, checked)

    return register


def test_honest_history_is_accepted_in_full(honest: Honest, harness: Harness) -> None:
    harness.send(honest.history(2), honest.key_block(2))
    assert harness.rejections() == []
    assert harness.node.tip.hash == honest.key_block(2).hash
    assert harness.node.balances() == honest.observer.balances()


# ----- MiniBlocks (Algorithm 2.1 and the submitting scheme) -------------------------------------------------


def _lazy_miner(honest: Honest, model: bytes | None, digest: bytes | None = None) -> tuple[Identity, MiniBlock]:
    """A miner of our own making whose MiniBlock commits to `digest` (default: H(model || its ID))."""
    lazy = Identity.from_seed(b"lazy")
    honest_mb = honest.miniblocks(1)[0]
    digest = digest if digest is not None else model_hash(model or b"", lazy.node_id)
    mb = MiniBlock(5, lazy.public_key, honest_mb.task_id, digest, honest_mb.prehash, 1).signed_by(lazy)
    return lazy, mb


def _through_phase_two(honest: Honest, harness: Harness, extra: MiniBlock) -> None:
    harness.send(list(honest.net.tasks), honest.miniblocks(1), extra, honest.release(1, V))


@proves(Reason.MODEL_HASH_MISMATCH)
def test_plagiarised_model_hash_under_another_id_fails(honest: Honest, harness: Harness) -> None:
    victim = honest.miniblocks(1)[0]
    victim_miner = next(m for m in honest.net.miners if m.node_id == victim.miner_id)
    stolen = victim_miner.own_models()[victim.model_hash]
    lazy, copy = _lazy_miner(honest, stolen, digest=victim.model_hash)
    harness.servers[lazy.node_id] = FakeServer(lazy.node_id, stolen)
    _through_phase_two(honest, harness, copy)
    assert harness.reason_for(copy) == Reason.MODEL_HASH_MISMATCH
    assert harness.node.mb_verdict[victim.hash] is None  # the victim's own MiniBlock stays valid


@proves(Reason.AFTER_VALIDATION_RELEASE)
def test_miniblock_after_validation_release_is_rejected(honest: Honest, harness: Harness) -> None:
    _, late = _lazy_miner(honest, b"whatever")
    harness.send(list(honest.net.tasks), honest.miniblocks(1), honest.release(1, V), late)
    assert harness.reason_for(late) == Reason.AFTER_VALIDATION_RELEASE


@proves(Reason.MODEL_UNAVAILABLE)
def test_model_that_cannot_be_fetched(honest: Honest, harness: Harness) -> None:
    _, mb = _lazy_miner(honest, b"never served")
    _through_phase_two(honest, harness, mb)
    assert harness.reason_for(mb) == Reason.MODEL_UNAVAILABLE


@proves(Reason.MODEL_UNDECODABLE)
def test_model_bytes_that_do_not_decode(honest: Honest, harness: Harness) -> None:
    garbage = b"PK\x03\x04 not a model"
    lazy, mb = _lazy_miner(honest, garbage)
    harness.servers[lazy.node_id] = FakeServer(lazy.node_id, garbage)
    _through_phase_two(honest, harness, mb)
    assert harness.reason_for(mb) == Reason.MODEL_UNDECODABLE


@proves(Reason.BELOW_METRIC_MIN)
def test_model_below_metric_min(honest: Honest, harness: Harness) -> None:
    public = honest.net.public
    shuffled = dataclasses.replace(public, y=np.random.default_rng(0).permutation(public.y))
    useless = honest.worker.fit_plain(LearningSpec.from_mapping("decision_tree", {"max_depth": 1}), shuffled, 0)
    lazy, mb = _lazy_miner(honest, useless)
    harness.servers[lazy.node_id] = FakeServer(lazy.node_id, useless)
    _through_phase_two(honest, harness, mb)
    assert harness.reason_for(mb) == Reason.BELOW_METRIC_MIN


@proves(Reason.BAD_SIGNATURE, Reason.UNKNOWN_TASK)
def test_bad_signature_and_unknown_task(honest: Honest, harness: Harness) -> None:
    mb = honest.miniblocks(1)[0]
    forged = dataclasses.replace(mb, signature=bytes(64))
    lazy = Identity.from_seed(b"lazy")
    stray = resign(mb, lazy, miner_key=lazy.public_key, task_id=sha256(b"no such task"))
    harness.send(list(honest.net.tasks), forged, stray)
    assert harness.reason_for(forged) == Reason.BAD_SIGNATURE
    assert harness.reason_for(stray) == Reason.UNKNOWN_TASK


def test_a_garbled_signature_cannot_censor_the_genuine_block(honest: Honest, harness: Harness) -> None:
    """The hash leaves the signature out: a forged copy sent first must not get the real one ignored."""
    mb, release = honest.miniblocks(1)[0], honest.release(1, V)
    harness.send(list(honest.net.tasks))
    for genuine in (mb, release):
        forged = dataclasses.replace(genuine, signature=bytes(64))
        harness.send(forged, genuine)
        assert harness.reason_for(forged) in (Reason.BAD_SIGNATURE, Reason.UNAUTHORIZED_RELEASE)
    assert mb.hash in harness.node.miniblocks
    assert harness.node.releases[(1, mb.task_id, V)] == release


@proves(Reason.TASK_MISMATCH)
def test_miniblock_for_the_wrong_task(honest: Honest, harness: Harness) -> None:
    mb = honest.miniblocks(1)[0]
    other_task = honest.net.tasks[1].task_id
    wrong = resign(mb, honest.identity_of(mb.miner_id), task_id=other_task)
    harness.send(list(honest.net.tasks), wrong, honest.release(1, V))
    assert harness.reason_for(wrong) == Reason.TASK_MISMATCH


# ----- dataset releases --------------------------------------------------------------------------------------


@proves(Reason.UNAUTHORIZED_RELEASE, Reason.WRONG_DATASET)
def test_release_not_signed_by_the_requester(honest: Honest, harness: Harness) -> None:
    release = honest.release(1, V)
    impostor = resign(release, Identity.from_seed(b"impostor"))
    wrong_data = resign(release, honest.net.requester.identity, dataset=honest.net.public.commitment())
    harness.send(list(honest.net.tasks), impostor, wrong_data)
    assert harness.reason_for(impostor) == Reason.UNAUTHORIZED_RELEASE
    assert harness.reason_for(wrong_data) == Reason.WRONG_DATASET
    assert not harness.node.releases


# ----- Ensemble Blocks (Algorithm 2.2) ----------------------------------------------------------------------


def _ensemble(honest: Honest, **changes: object) -> EnsembleBlock:
    eb = honest.ensembles(1)[0]
    return resign(eb, honest.identity_of(eb.miner_id), **changes)


@proves(Reason.FALSE_METRIC_V)
def test_false_metric_v(honest: Honest, harness: Harness) -> None:
    eb = honest.ensembles(1)[0]
    inflated = _ensemble(honest, metric_v=round(eb.metric_v + 0.01, 6))
    harness.send(honest.history(1)[: -1 - len(honest.ensembles(1))], inflated)
    assert harness.reason_for(inflated) == Reason.FALSE_METRIC_V


@proves(Reason.EMPTY_ENSEMBLE, Reason.DUPLICATE_MODEL, Reason.UNKNOWN_MINIBLOCK)
def test_ensemble_structure_rejections(honest: Honest, harness: Harness) -> None:
    mbs = [mb.hash for mb in honest.miniblocks(1)]
    empty = _ensemble(honest, miniblocks=())
    twice = _ensemble(honest, miniblocks=(mbs[0], mbs[0]))
    unknown = _ensemble(honest, miniblocks=(*mbs, sha256(b"ghost")))
    harness.send(list(honest.net.tasks), honest.miniblocks(1), honest.release(1, V), empty, twice, unknown)
    assert harness.reason_for(empty) == Reason.EMPTY_ENSEMBLE
    assert harness.reason_for(twice) == Reason.DUPLICATE_MODEL
    assert harness.reason_for(unknown) == Reason.UNKNOWN_MINIBLOCK


@proves(Reason.INVALID_MINIBLOCK)
def test_ensemble_with_an_invalid_miniblock(honest: Honest, harness: Harness) -> None:
    _, unserved = _lazy_miner(honest, b"never served")
    with_bad = _ensemble(honest, miniblocks=tuple(sorted([*(m.hash for m in honest.miniblocks(1)), unserved.hash])))
    harness.send(list(honest.net.tasks), honest.miniblocks(1), unserved, honest.release(1, V), with_bad)
    assert harness.reason_for(with_bad) == Reason.INVALID_MINIBLOCK


@proves(Reason.MINIBLOCK_WRONG_PARENT, Reason.DUPLICATE_MODEL)
def test_ensemble_over_two_parents_without_cfs_and_duplicate_models_with_cfs(honest: Honest) -> None:
    fork = sibling_key_block(honest)
    mb = honest.miniblocks(2)[0]
    twin = resign(mb, honest.identity_of(mb.miner_id), prehash=fork.hash)  # same model on the other fork
    mixed = resign(
        honest.ensembles(2)[0],
        honest.identity_of(honest.ensembles(2)[0].miner_id),
        miniblocks=tuple(sorted([mb.hash, twin.hash])),
    )
    for cfs, expected in ((False, Reason.MINIBLOCK_WRONG_PARENT), (True, Reason.DUPLICATE_MODEL)):
        h = Harness(validator(honest, cfs=cfs), honest)
        h.send(honest.history(1), honest.key_block(1), fork, list(honest.miniblocks(2)), twin)
        h.send(honest.release(2, V), mixed)
        assert h.reason_for(mixed) == expected, cfs


# ----- Key Blocks (Algorithm 2.3) -----------------------------------------------------------------------------


def _tampered(honest: Honest, **changes: object) -> KeyBlock:
    kb = honest.key_block(1)
    return remine(kb, honest.identity_of(kb.miner_id), **changes)


def _check_key_block(honest: Honest, harness: Harness, kb: KeyBlock) -> str | None:
    harness.send(honest.history(1), kb)
    return harness.reason_for(kb)


@proves(Reason.BAD_POW)
def test_bad_pow(honest: Honest, harness: Harness) -> None:
    kb = honest.key_block(1)
    nonce = next(n for n in range(1000) if not dataclasses.replace(kb, nonce=n).hash[0] < 0x10)
    unlucky = resign(kb, honest.identity_of(kb.miner_id), nonce=nonce)
    assert _check_key_block(honest, harness, unlucky) == Reason.BAD_POW


@proves(Reason.FALSE_METRIC_BEST)
def test_false_metric_best(honest: Honest, harness: Harness) -> None:
    kb = honest.key_block(1)
    assert _check_key_block(honest, harness, _tampered(honest, metric_best=kb.metric_best + 0.01)) == (
        Reason.FALSE_METRIC_BEST
    )


@proves(Reason.FALSE_METRIC_E)
def test_false_metric_e_in_the_ranking(honest: Honest, harness: Harness) -> None:
    kb = honest.key_block(1)
    boosted = RankedEnsemble(kb.ranking[0].ensemble_block, round(kb.ranking[0].metric_e + 0.05, 6))
    ranking = rules.rank([boosted, *kb.ranking[1:]])
    forged = _tampered(honest, ranking=ranking, metric_best=ranking[0].metric_e)
    assert _check_key_block(honest, harness, forged) == Reason.FALSE_METRIC_E


@proves(Reason.RANKING_NOT_SORTED)
def test_ranking_out_of_order(honest: Honest, harness: Harness) -> None:
    kb = honest.key_block(1)
    assert len(kb.ranking) >= 2
    assert _check_key_block(honest, harness, _tampered(honest, ranking=kb.ranking[::-1])) == Reason.RANKING_NOT_SORTED


@proves(Reason.WRONG_REWARDS, Reason.BAD_MERKLE_ROOT)
def test_wrong_reward_split_and_merkle_root(honest: Honest) -> None:
    kb = honest.key_block(1)
    first, *rest = kb.rewards
    greedy = (Reward(first.recipient, first.amount + 10), *rest)
    cases = {
        Reason.WRONG_REWARDS: _tampered(honest, rewards=greedy, merkle_root=rules.rewards_root(greedy)),
        Reason.BAD_MERKLE_ROOT: _tampered(honest, merkle_root=sha256(b"not the payload")),
    }
    for reason, forged in cases.items():
        assert _check_key_block(honest, Harness(validator(honest), honest), forged) == reason


@proves(Reason.WRONG_HEIGHT, Reason.TASK_MISMATCH, Reason.WRONG_TASK_QUEUE)
def test_wrong_height_task_and_queue(honest: Honest) -> None:
    kb = honest.key_block(1)
    cases = {
        Reason.WRONG_HEIGHT: _tampered(honest, height=2),
        Reason.TASK_MISMATCH: _tampered(honest, task_id=honest.net.tasks[1].task_id),
        Reason.WRONG_TASK_QUEUE: _tampered(honest, task_queue=(*kb.task_queue, kb.task_queue[0])),
    }
    for reason, forged in cases.items():
        assert _check_key_block(honest, Harness(validator(honest), honest), forged) == reason


@proves(Reason.UNKNOWN_ENSEMBLE_BLOCK, Reason.INVALID_ENSEMBLE_BLOCK)
def test_unknown_and_invalid_ensemble_blocks(honest: Honest) -> None:
    kb = honest.key_block(1)
    ghost = _tampered(honest, ranking=rules.rank([RankedEnsemble(sha256(b"ghost"), kb.metric_best), *kb.ranking[1:]]))
    h = Harness(validator(honest), honest)
    h.send(honest.history(1), ghost)
    assert h.reason_for(ghost) is None  # it waits for the Ensemble Block...
    h.expire_all()
    assert h.reason_for(ghost) == Reason.UNKNOWN_ENSEMBLE_BLOCK  # ...until it gives up

    eb = honest.ensembles(1)[0]
    inflated = resign(eb, honest.identity_of(eb.miner_id), metric_v=round(eb.metric_v + 0.01, 6))
    ranking = rules.rank([RankedEnsemble(inflated.hash, kb.metric_best)])
    forged = _tampered(honest, ranking=ranking, metric_best=ranking[0].metric_e)
    h = Harness(validator(honest), honest)
    h.send(honest.history(1), inflated, forged)
    assert h.reason_for(forged) == Reason.INVALID_ENSEMBLE_BLOCK


@proves(Reason.UNKNOWN_PARENT, Reason.INVALID_PARENT)
def test_unknown_and_invalid_parents(honest: Honest) -> None:
    orphan = _tampered(honest, prehash=sha256(b"nowhere"))
    h = Harness(validator(honest), honest)
    h.send(honest.history(1), orphan)
    h.expire_all()
    assert h.reason_for(orphan) == Reason.UNKNOWN_PARENT

    # A node that never saw KB_1's Ensemble Blocks gives up on it; KB_2 then has an invalid parent.
    h = Harness(validator(honest), honest)
    h.send([m for m in honest.history(1) if not isinstance(m, EnsembleBlock)], honest.key_block(1))
    h.expire_all()
    h.send(honest.key_block(2))
    assert h.reason_for(honest.key_block(2)) == Reason.INVALID_PARENT


@proves(Reason.MISSING_RELEASE, Reason.MISSING_DATASET, Reason.EVALUATION_UNFINISHED)
def test_a_key_block_that_expires_while_pending_names_what_it_still_lacked(honest: Honest) -> None:
    kb = honest.key_block(1)
    test_set = honest.release(1, E)
    # D_E was never released to this node.
    h = Harness(validator(honest), honest)
    h.send([m for m in honest.history(1) if m != test_set], kb)
    h.expire_all()
    assert h.reason_for(kb) == Reason.MISSING_RELEASE
    # D_E was released, but every fetch of it fails.
    h = Harness(validator(honest), honest, unreachable_data={test_set.dataset})
    h.send(honest.history(1), kb)
    h.expire_all()
    assert h.reason_for(kb) == Reason.MISSING_DATASET
    # D_E is held, but the evaluations on it never finish.
    h = Harness(validator(honest), honest, stalled_data={test_set.dataset})
    h.send(honest.history(1), kb)
    h.expire_all()
    assert h.reason_for(kb) == Reason.EVALUATION_UNFINISHED
    # Nothing was held against the blocks themselves: given the missing piece, a fresh node accepts KB_1.
    fresh = Harness(validator(honest), honest)
    fresh.send(honest.history(1), kb)
    assert fresh.rejections() == [] and fresh.node.tip.hash == kb.hash


@proves(Reason.WRONG_PARENT, Reason.MINIBLOCK_WRONG_PARENT)
def test_wrong_parent_against_the_cfs_majority(honest: Honest) -> None:
    fork = sibling_key_block(honest)
    kb2 = honest.key_block(2)
    moved = remine(kb2, honest.identity_of(kb2.miner_id), prehash=fork.hash)
    for cfs, expected in ((True, Reason.WRONG_PARENT), (False, Reason.MINIBLOCK_WRONG_PARENT)):
        h = Harness(validator(honest, cfs=cfs), honest)
        h.send(honest.history(2), honest.key_block(1), fork, moved)
        h.send(honest.key_block(1))
        assert h.reason_for(fork) is None  # the sibling itself is a valid block
        assert h.reason_for(moved) == expected, cfs


# ----- Tasks: terms every node checks on arrival, and the requester's funds -----------------------------------

U64_MAX = 2**64 - 1


def _requester_task(honest: Honest, **terms: Any) -> Task:
    """The honest requester's first task with other terms, signed by it (so only the terms can be wrong)."""
    requester = honest.net.requester
    return dataclasses.replace(honest.net.tasks[0], signature=b"", **terms).signed_by(requester.identity)


@pytest.mark.parametrize(
    ("terms", "reason"),
    [
        ({"metric_min": float("nan")}, Reason.BAD_METRIC_MIN),
        ({"metric_min": -0.1}, Reason.BAD_METRIC_MIN),
        ({"metric_min": 1.0}, Reason.BAD_METRIC_MIN),
        ({"metric_min": float("inf")}, Reason.BAD_METRIC_MIN),
        ({"fee": 0}, Reason.BAD_FEE),
        ({"fee": U64_MAX}, Reason.BAD_FEE),
        ({"train": ModelSpec("resnet152", "{}")}, Reason.UNKNOWN_MODEL),
        ({"train": ModelSpec("decision_tree", "[1, 2]")}, Reason.BAD_MODEL_SPEC),
        ({"train": ModelSpec("decision_tree", "{not json")}, Reason.BAD_MODEL_SPEC),
        ({"aggregate": "median"}, Reason.UNKNOWN_AGGREGATE),
        ({"metric": "auc"}, Reason.UNKNOWN_METRIC),
    ],
)
def test_a_task_with_terms_no_miner_can_meet_is_refused_by_name(
    honest: Honest, harness: Harness, terms: dict[str, Any], reason: Reason
) -> None:
    task = _requester_task(honest, sequence=99, **terms)
    harness.send(task)
    assert harness.rejections() == [("Task", reason)]
    assert task.task_id not in harness.node.tasks


@proves(
    Reason.BAD_METRIC_MIN,
    Reason.BAD_FEE,
    Reason.UNKNOWN_MODEL,
    Reason.BAD_MODEL_SPEC,
    Reason.UNKNOWN_AGGREGATE,
    Reason.UNKNOWN_METRIC,
)
def test_each_bad_term_is_named(honest: Honest) -> None:
    """One node, one bad term each (the parametrized test above covers the variants)."""
    for terms in (
        {"metric_min": float("nan")},
        {"fee": U64_MAX},
        {"train": ModelSpec("resnet152", "{}")},
        {"train": ModelSpec("decision_tree", "[]")},
        {"aggregate": "median"},
        {"metric": "auc"},
    ):
        h = Harness(validator(honest), honest)
        h.send(_requester_task(honest, sequence=7, **terms))


@proves(Reason.INSUFFICIENT_FUNDS)
def test_a_task_from_an_account_that_cannot_pay_its_fee_is_refused(honest: Honest, harness: Harness) -> None:
    rogue = Identity.from_seed(b"fresh key, no funds")
    task = dataclasses.replace(honest.net.tasks[0], requester_key=rogue.public_key, signature=b"").signed_by(rogue)
    harness.send(task)
    assert harness.rejections() == [("Task", Reason.INSUFFICIENT_FUNDS)]
    assert task.task_id not in harness.node.tasks


def test_the_issue_s_rogue_task_is_refused_not_scheduled(honest: Honest, harness: Harness) -> None:
    """A fresh key, fee 2^64-1 and Metric_min NaN: refused (on its first bad term), never queued."""
    rogue = Identity.from_seed(b"rogue")
    task = dataclasses.replace(
        honest.net.tasks[0], requester_key=rogue.public_key, fee=U64_MAX, metric_min=float("nan"), signature=b""
    ).signed_by(rogue)
    harness.send(task)
    assert harness.rejections() == [("Task", Reason.BAD_METRIC_MIN)]
    assert task.task_id not in harness.node.tasks


def test_fees_owed_by_unfinished_tasks_count_against_the_balance(honest: Honest) -> None:
    requester = honest.net.requester
    allocation = rules.balances([honest.key_block(0)], {})[requester.node_id]
    h = Harness(validator(honest), honest)
    h.send(*honest.net.tasks)  # planned tasks: their fees are owed until they finish
    owed = sum(t.fee for t in honest.net.tasks)
    affordable = _requester_task(honest, sequence=50, fee=allocation - owed)
    too_much = _requester_task(honest, sequence=51, fee=1)
    h.send(affordable, too_much)
    assert affordable.task_id in h.node.tasks
    assert h.rejections() == [("Task", Reason.INSUFFICIENT_FUNDS)]
    # A refusal for funds depends on the chain seen so far: it is not held against the task for ever.
    assert too_much.task_id not in h.node.rejected


# ----- authentication before de-duplication, and bounds on what may wait --------------------------------------

Authored = Task | MiniBlock | EnsembleBlock | KeyBlock


def _re_signed(message: Authored) -> Authored:
    """The message with its author field intact and another key's signature: the hash is the genuine one's."""
    return dataclasses.replace(message, signature=Identity.from_seed(b"thief").sign(message.hash))


@proves(Reason.BAD_SIGNATURE)
def test_a_copy_re_signed_with_another_key_is_refused_after_the_genuine_one(honest: Honest, harness: Harness) -> None:
    """The issue's case: the hash leaves the signature out, so such a copy used to pass as a duplicate, answered OK
    and not counted. It is now refused whichever copy came first, and the genuine one keeps its place."""
    kb = honest.key_block(1)
    genuine: list[Authored] = [honest.net.tasks[0], honest.miniblocks(1)[0], honest.ensembles(1)[0], kb]
    harness.send(honest.history(1), kb)
    assert harness.rejections() == [] and harness.node.tip.hash == kb.hash
    copies = [_re_signed(m) for m in genuine]
    assert [c.hash for c in copies] == [m.hash for m in genuine]
    harness.send(copies)
    assert harness.rejections() == [(type(m).__name__, Reason.BAD_SIGNATURE) for m in genuine]
    assert harness.node.tip == kb and harness.node.miniblocks[genuine[1].hash] == genuine[1]
    assert harness.node.ensembles[genuine[2].hash] == genuine[2] and harness.node.tasks[genuine[0].hash] == genuine[0]
    assert not set(harness.node.rejected) & {m.hash for m in genuine}
    harness.send(genuine)  # the genuine copies again: duplicates, taken quietly
    assert len(harness.rejections()) == len(genuine)


@proves(Reason.BAD_SIGNATURE)
def test_a_block_whose_author_field_names_another_miner_is_refused_naming_it(honest: Honest, harness: Harness) -> None:
    """The author swapped, the signature kept: the block now claims a miner who never signed it (a plagiarist's
    shortcut to another's reward). Refused before anything else is checked, even proof of work."""
    blocks: list[MiniBlock | EnsembleBlock | KeyBlock] = [
        honest.miniblocks(1)[0],
        honest.ensembles(1)[0],
        honest.key_block(1),
    ]
    victims = [next(m.identity for m in honest.net.miners if m.node_id != b.miner_id) for b in blocks]
    swapped = [dataclasses.replace(b, miner_key=v.public_key) for b, v in zip(blocks, victims, strict=True)]
    harness.send(honest.history(1), swapped)
    assert harness.rejections() == [(type(b).__name__, Reason.BAD_SIGNATURE) for b in blocks]
    details = [str(r.data["detail"]) for r in harness.records if r.event == "rejected"]
    assert all(v.node_id.hex()[:8] in d for v, d in zip(victims, details, strict=True)), details
    # (A swapped Ensemble Block may hash as the victim's own when both aggregate the same MiniBlocks alike: what is
    # held under that hash is then the victim's genuine copy.)
    node = harness.node
    held: list[MiniBlock | EnsembleBlock | KeyBlock] = [*node.miniblocks.values(), *node.ensembles.values()]
    held += node.key_blocks.values()
    assert all(b.signature_valid(b.miner_key) for b in held if b.miner_key)


def _stray_miniblock(honest: Honest, height: int) -> MiniBlock:
    """A MiniBlock of the planned task at `height`, pointing to a parent nobody has."""
    lazy = Identity.from_seed(b"lazy")
    task_id = honest.miniblocks(1)[0].task_id
    digest = sha256(b"model", height.to_bytes(8, "big"))
    return MiniBlock(5, lazy.public_key, task_id, digest, sha256(b"nowhere"), height).signed_by(lazy)


@proves(Reason.TOO_FAR_AHEAD)
def test_a_block_far_above_the_tip_is_refused_not_held_and_welcome_once_the_node_is_there(
    honest: Honest, harness: Harness
) -> None:
    limit = honest.params.max_heights_ahead
    near, far = _stray_miniblock(honest, limit), _stray_miniblock(honest, limit + 1)
    lazy = Identity.from_seed(b"lazy")
    far_eb = EnsembleBlock((far.hash,), 0.9, lazy.public_key, far.task_id, 6, far.height).signed_by(lazy)
    harness.send(list(honest.net.tasks), near, far, far_eb)  # the tip is genesis, at height 0
    assert harness.rejections() == [("MiniBlock", Reason.TOO_FAR_AHEAD), ("EnsembleBlock", Reason.TOO_FAR_AHEAD)]
    assert near.hash in harness.node.miniblocks
    assert far.hash not in harness.node.miniblocks and far_eb.hash not in harness.node.ensembles
    # Refused for where this node stands, not for what the block is: nothing is held against its hash.
    assert not {far.hash, far_eb.hash} & set(harness.node.rejected)
    harness.send(honest.history(1), honest.key_block(1), far)
    assert harness.node.tip.height == 1 and far.hash in harness.node.miniblocks
    assert len(harness.rejections()) == 2


@proves(Reason.TOO_MANY_PENDING)
def test_at_most_max_pending_blocks_of_a_kind_wait(honest: Honest) -> None:
    mbs = honest.miniblocks(1)
    assert len(mbs) == 3
    h = Harness(validator(honest, max_pending_blocks=2), honest)
    h.send(list(honest.net.tasks), mbs)
    assert h.rejections() == [("MiniBlock", Reason.TOO_MANY_PENDING)] and h.reason_for(mbs[2]) is not None
    assert mbs[2].hash not in h.node.miniblocks and mbs[2].hash not in h.node.rejected

    # Key Blocks waiting for a parent: the second is refused, and once the first expires there is room again.
    h = Harness(validator(honest, max_pending_blocks=1), honest)
    orphans = [_tampered(honest, prehash=sha256(b"nowhere", bytes([i]))) for i in range(2)]
    h.send(orphans)
    assert h.rejections() == [("KeyBlock", Reason.TOO_MANY_PENDING)]
    h.expire_all()
    assert h.rejections()[-1] == ("KeyBlock", Reason.UNKNOWN_PARENT)
    h.send(orphans[1])
    assert len(h.rejections()) == 2  # taken this time: it waits, as the first did


def test_a_miniblock_waiting_for_a_parent_that_never_comes_is_dropped_once_the_tip_passes_it(honest: Honest) -> None:
    """Pending blocks within reach of the tip expire as the chain moves on: a MiniBlock is kept under review for
    queue_length heights below the tip (a competing Key Block may still come), then dropped."""
    h = Harness(validator(honest, queue_length=1), honest)
    stray = _stray_miniblock(honest, 1)
    h.send(list(honest.net.tasks), stray)
    assert stray.hash in h.node._pending_mbs  # white-box: no query shows what waits
    h.send(honest.history(2), honest.key_block(2))
    assert h.node.tip.height == 2 and stray.hash not in h.node._pending_mbs
    assert h.rejections() == []


# ----- wire bytes (the driver decodes them with the codec before the node sees anything) -----------------------


@proves(Reason.MALFORMED)
def test_bytes_that_do_not_decode_are_malformed_and_never_reach_the_node(honest: Honest, harness: Harness) -> None:
    task = honest.net.tasks[0]
    wire = to_wire(task)
    for garbled in (b"", b"\x09" + wire[1:], wire[: len(wire) // 2], wire[:-1]):
        with pytest.raises(DecodeError):
            CODEC.decode_message(garbled)
    assert CODEC.decode_message(wire) == task  # the same bytes, intact, decode
    harness.send(object())  # anything that is not a BagChain message is refused by the node itself
    assert harness.rejections() == [("object", Reason.MALFORMED)]
    assert task.task_id not in harness.node.tasks


def catching_up(honest: Honest, answer: bytes, **overrides: Any) -> Harness:
    """A validator started late whose only peer answers its catch-up with these bytes."""
    peer = sha256(b"lying peer")
    params = dataclasses.replace(honest.params, **overrides)
    node = FullNode(Identity.from_seed(b"late"), params, honest.observer.genesis, peers=(peer,))
    return Harness(node, honest, servers={peer: FakeServer(peer, answer)}, now=100)


@proves(Reason.SYNC_REPLY_TOO_LARGE)
def test_a_catch_up_answer_with_more_than_asked_for_is_dropped_whole(honest: Honest) -> None:
    limit = honest.params.sync_max_blocks
    flood = SyncReply(tuple(to_wire(honest.key_block(1)) for _ in range(limit + 1)))
    harness = catching_up(honest, encoding.encode(flood))
    assert harness.rejections() == [("SyncReply", Reason.SYNC_REPLY_TOO_LARGE)]
    assert harness.node.chain.tip.height == 0 and not harness.node._pending_kbs
    assert not harness.node.status().syncing  # its only peer failed it: it gives up rather than wait forever


@proves(Reason.SYNC_REPLY_UNASKED)
def test_a_catch_up_answer_with_key_blocks_not_asked_for_is_dropped_whole(honest: Honest) -> None:
    # It asks for one Key Block from height 1; the answer holds height 2's.
    harness = catching_up(honest, encoding.encode(SyncReply((to_wire(honest.key_block(2)),))), sync_max_blocks=1)
    assert harness.rejections() == [("SyncReply", Reason.SYNC_REPLY_UNASKED)]
    assert not harness.node._pending_kbs


def test_every_reason_is_proved_by_a_test() -> None:
    """A Reason no test above proves, or whose only test was deleted, fails here (@proves fills PROVEN)."""
    assert set(PROVEN) == set(Reason), sorted(set(Reason) - set(PROVEN))
