"""Every rejection reason of a BFLC node, each from one bad input; the node's state is untouched afterwards."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from chainlab.ledger.identity import Identity
from chainlab.protocols.bflc import BflcNode
from chainlab.protocols.bflc.messages import (
    Commit,
    Endorsement,
    Join,
    Proposal,
    Reward,
    RoundBlocks,
    Scores,
    Update,
    UpdateBlock,
)
from chainlab.protocols.effects import Compute, EvaluateModel, EvaluationFailed, Record, Send
from tests.protocols.bflc.net import Net, fake_compute, identities, network, pack

N = 10


@pytest.fixture(scope="module")
def honest() -> Net:
    """A finished honest run (3 rounds) to take blocks from; tests never change it."""
    return network(N).start().run()


def fresh(index: int = 0, **overrides: Any) -> BflcNode:
    """Node `index` of a new, unstarted network identical to the honest one."""
    return network(N, **overrides).nodes[index]


def reasons(effects: Sequence[object]) -> list[str]:
    return [f"{e.data['kind']}.{e.data['reason']}" for e in effects if isinstance(e, Record) and e.event == "rejected"]


def ids() -> list[Identity]:
    return identities(N)


def member_index(node: BflcNode, rank: int = 0) -> int:
    return [i.node_id for i in ids()].index(sorted(node.chain.committee)[rank])


def trainer_index(node: BflcNode, rank: int = 0) -> int:
    return [i.node_id for i in ids()].index(node.chain.trainers[rank])


def update_from(index: int, round_: int = 0, weights: bytes | None = None, n: int = 100) -> Update:
    identity = ids()[index]
    return Update(round_, identity.public_key, weights or pack([0.5] * 4), n).signed_by(identity)


# -- updates ---------------------------------------------------------------------------------------------------


def member_node() -> BflcNode:
    node = fresh()
    node = fresh(member_index(node))
    node.start(0)
    return node


def test_updates_are_checked_before_they_are_scored() -> None:
    node = member_node()
    trainer = trainer_index(node)
    other_member = member_index(node, 1) if sorted(node.chain.committee)[0] == node.node_id else member_index(node, 0)
    idle = next(
        i for i, k in enumerate(ids()) if k.node_id not in node.chain.trainers and k.node_id not in node.chain.committee
    )
    outsider = Identity.from_seed(b"outsider")
    cases: list[tuple[Update, str]] = [
        (update_from(trainer, round_=5), "upd.wrong_round"),
        (Update(0, outsider.public_key, pack([0.0] * 4), 1).signed_by(outsider), "upd.not_member"),
        (update_from(other_member), "upd.committee_member"),
        (update_from(idle), "upd.not_trainer"),
        (dataclasses.replace(update_from(trainer), n_samples=7), "upd.bad_signature"),
    ]
    for update, reason in cases:
        assert reasons(node.on_message(b"peer", update, 0)) == [reason]
    assert node._work.updates == {}
    effects = node.on_message(b"peer", update_from(trainer), 0)
    assert [type(e.op) for e in effects if isinstance(e, Compute)] == [EvaluateModel]
    # A resend of the same update is ignored; a second, different update from the same trainer is refused.
    assert node.on_message(b"peer", update_from(trainer), 0) == []
    other = update_from(trainer, weights=pack([0.25] * 4))
    assert reasons(node.on_message(b"peer", other, 0)) == ["upd.duplicate"]


def test_an_update_to_a_node_off_the_committee_is_not_for_it() -> None:
    first = fresh()
    node = fresh(trainer_index(first))
    node.start(0)
    assert reasons(node.on_message(b"peer", update_from(trainer_index(first, 1)), 0)) == ["upd.not_recipient"]


def test_an_update_after_the_member_sent_its_scores_finds_the_round_full() -> None:
    node = member_node()
    node._send_scores(force=True)
    assert reasons(node.on_message(b"peer", update_from(trainer_index(node)), 0)) == ["upd.round_full"]


@pytest.mark.parametrize(
    ("detail", "reason"), [("bad shape", "upd.bad_shape"), ("non-finite weights", "upd.non_finite")]
)
def test_weights_that_do_not_evaluate_are_rejected(detail: str, reason: str) -> None:
    node = member_node()
    trainer = trainer_index(node)
    (compute,) = [e for e in node.on_message(b"peer", update_from(trainer), 0) if isinstance(e, Compute)]
    assert reasons(node.on_result(compute.job, EvaluationFailed(detail), 0)) == [reason]
    assert node.chain.trainers[0] not in node._work.updates


def test_a_far_future_update_is_a_wrong_round_but_the_next_rounds_is_held() -> None:
    node = member_node()
    assert node.on_message(b"peer", update_from(trainer_index(node), round_=1), 0) == []
    assert len(node._future) == 1


# -- scores ----------------------------------------------------------------------------------------------------


def scores_from(index: int, entries: dict[bytes, float], round_: int = 0) -> Scores:
    identity = ids()[index]
    return Scores.of(round_, identity.public_key, entries).signed_by(identity)


def test_score_vectors_are_checked() -> None:
    node = member_node()
    me = node.node_id
    peer = next(i for i, k in enumerate(ids()) if k.node_id in node.chain.committee and k.node_id != me)
    trainer = node.chain.trainers[0]
    idle = next(k.node_id for k in ids() if k.node_id not in node.chain.trainers)
    good = {trainer: 0.5}
    twice = Scores(0, ids()[peer].public_key, (trainer, trainer), (0.5, 0.4)).signed_by(ids()[peer])
    short = Scores(0, ids()[peer].public_key, (trainer,), ()).signed_by(ids()[peer])
    cases: list[tuple[Scores, str]] = [
        (scores_from(trainer_index(node), good), "score.not_committee"),
        (dataclasses.replace(scores_from(peer, good), scores=(0.6,)), "score.bad_signature"),
        (scores_from(peer, {trainer: 1.5}), "score.out_of_range"),
        (scores_from(peer, {trainer: float("nan")}), "score.out_of_range"),
        (short, "score.out_of_range"),
        (scores_from(peer, {idle: 0.5}), "score.not_trainer"),
        (twice, "score.duplicate"),
    ]
    for vector, reason in cases:
        assert reasons(node.on_message(b"peer", vector, 0)) == [reason]
    node.on_message(b"peer", scores_from(peer, good), 0)
    assert ids()[peer].node_id in node._work.vectors
    assert reasons(node.on_message(b"peer", scores_from(peer, good), 0)) == ["score.duplicate"]


def test_scores_of_a_past_round_are_a_wrong_round(honest: Net) -> None:
    node = honest.nodes[0]
    member = next(i for i, k in enumerate(ids()) if k.node_id in node.chain.committee)
    vector = scores_from(member, {}, round_=0)
    assert reasons(node.on_message(b"peer", vector, 0)) in (["score.wrong_round"], ["score.not_recipient"])
    on_committee = next(n for n in honest.nodes if n.node_id in n.chain.committee)
    assert reasons(on_committee.on_message(b"peer", vector, 0)) == ["score.wrong_round"]


def test_scores_to_a_node_off_the_committee_are_not_for_it() -> None:
    first = fresh()
    node = fresh(trainer_index(first))
    node.start(0)
    member = member_index(first)
    assert reasons(node.on_message(b"peer", scores_from(member, {}), 0)) == ["score.not_recipient"]


# -- committed rounds ------------------------------------------------------------------------------------------


def round0(honest: Net) -> RoundBlocks:
    return honest.nodes[0].chain.rounds[0]


def with_updates(blocks: RoundBlocks, ubs: tuple[UpdateBlock, ...], **changes: Any) -> Commit:
    """Blocks with other update blocks (the model block lists their hashes) and model block fields."""
    mb = dataclasses.replace(blocks.model_block, update_blocks=tuple(ub.hash for ub in ubs), **changes)
    return Commit(mb, ubs)


def tampered(blocks: RoundBlocks, **changes: Any) -> Commit:
    return with_updates(blocks, blocks.update_blocks, **changes)


def commit_cases(honest: Net) -> list[tuple[Callable[[RoundBlocks], Commit], str]]:
    first = honest.nodes[0].chain.rounds[0]
    trainers = fresh().chain.trainers
    not_packed = next(t for t in trainers if t not in {ub.uploader for ub in first.update_blocks})
    idle = next(k.node_id for k in ids() if k.node_id not in trainers)
    ub0 = first.update_blocks[0]

    def swap(ub: UpdateBlock) -> Callable[[RoundBlocks], Commit]:
        return lambda b: with_updates(b, (ub, *b.update_blocks[1:]))

    return [
        (lambda b: tampered(b, round=5), "mblk.bad_position"),
        (lambda b: tampered(b, number=b.model_block.number + 1), "mblk.bad_position"),
        (lambda b: tampered(b, prev=b"\x00" * 32), "mblk.wrong_parent"),
        (lambda b: tampered(b, attempt=99), "mblk.not_leader"),
        (lambda b: Commit(b.model_block, b.update_blocks[1:]), "mblk.bad_position"),
        (swap(dataclasses.replace(ub0, number=ub0.number + 7)), "ublk.bad_position"),
        (
            lambda b: Commit(b.model_block, (b.update_blocks[1], b.update_blocks[0], *b.update_blocks[2:])),
            "ublk.bad_position",
        ),
        (swap(dataclasses.replace(ub0, score=0.123)), "ublk.bad_median"),
        (swap(dataclasses.replace(ub0, uploader=not_packed)), "ublk.not_selected"),  # equal scores: by ID
        (swap(dataclasses.replace(ub0, uploader=idle)), "ublk.not_selected"),
        (lambda b: with_updates(b, b.update_blocks[:-1], number=b.model_block.number - 1), "ublk.not_selected"),
        (lambda b: tampered(b, scores=b.model_block.scores[::-1]), "mblk.bad_scores"),
        (
            lambda b: tampered(b, scores=(dataclasses.replace(b.model_block.scores[0], signature=b"x" * 64),)),
            "mblk.bad_scores",
        ),
        (lambda b: tampered(b, committee=b.model_block.committee[1:]), "mblk.bad_committee"),
        (lambda b: tampered(b, blacklisted=(idle,)), "mblk.bad_blacklist"),
        (lambda b: tampered(b, rewards=(Reward(idle, 1.0),)), "mblk.bad_rewards"),
        (lambda b: tampered(b, members=(ids()[0].public_key,)), "mblk.bad_joins"),
        (lambda b: tampered(b, weights=pack([9.0] * 4)), "mblk.insufficient_signatures"),
        (
            lambda b: Commit(b.model_block.with_signatures(b.model_block.signatures[:1]), b.update_blocks),
            "mblk.insufficient_signatures",
        ),
    ]


def test_every_rule_of_a_committed_round_is_checked(honest: Net) -> None:
    blocks = round0(honest)
    for make, reason in commit_cases(honest):
        node = fresh()
        node.start(0)
        before = node.chain.tip.hash
        assert reasons(node.on_message(b"peer", make(blocks), 0)) == [reason], reason
        assert node.chain.tip.hash == before and node.chain.round == 0
    node = fresh()
    node.start(0)
    assert reasons(node.on_message(b"peer", Commit(blocks.model_block, blocks.update_blocks), 0)) == []
    assert node.chain.round == 1
    assert node.on_message(b"peer", Commit(blocks.model_block, blocks.update_blocks), 0) == []  # a copy: ignored
    other = tampered(blocks, attempt=1)
    assert reasons(node.on_message(b"peer", other, 0)) == ["mblk.bad_position"]  # round 0 is written already


def test_the_baselines_score_nothing() -> None:
    net = network(N, method="basic_fl", rounds=1).start().run()
    blocks = net.nodes[0].chain.rounds[0]
    node = fresh(method="basic_fl")
    node.start(0)
    ub0 = blocks.update_blocks[0]
    bad = with_updates(blocks, (dataclasses.replace(ub0, score=0.5), *blocks.update_blocks[1:]))
    assert reasons(node.on_message(b"peer", bad, 0)) == ["ublk.bad_median"]
    vector = scores_from(0, {})
    assert reasons(node.on_message(b"peer", tampered(blocks, scores=(vector,)), 0)) == ["mblk.bad_scores"]


# -- proposals and endorsements --------------------------------------------------------------------------------


def test_a_proposal_is_checked_and_its_aggregate_recomputed(honest: Net) -> None:
    blocks = round0(honest)
    net = network(N)
    mb = blocks.model_block
    member_ids = sorted(net.nodes[0].chain.committee)
    leader = next(n for n in net.nodes if n.node_id == member_ids[0])
    member = next(n for n in net.nodes if n.node_id == member_ids[1])
    proposal = Proposal(mb.with_signatures(()), blocks.update_blocks)
    member.start(0)
    assert reasons(member.on_message(member_ids[1], proposal, 0)) == ["mblk.not_leader"]
    outsider = next(n for n in net.nodes if n.node_id not in member_ids)
    outsider.start(0)
    assert reasons(outsider.on_message(leader.node_id, proposal, 0)) == ["mblk.not_recipient"]
    # The member holds no updates yet: it abstains rather than sign blind.
    effects = member.on_message(leader.node_id, proposal, 0)
    assert [e.event for e in effects if isinstance(e, Record)] == ["abstained"]
    # Holding them, it re-runs the aggregate: other weights are a bad aggregate, the true ones are endorsed.
    # Holding other weights under the packed uploaders' names, the blocks are not what they sent.
    for ub in blocks.update_blocks:
        index = [i.node_id for i in ids()].index(ub.uploader)
        member._work.updates[ub.uploader] = update_from(index, weights=pack([0.25] * 4), n=ub.n_samples)
    assert reasons(member.on_message(leader.node_id, proposal, 0)) == ["ublk.not_selected"]
    for ub in blocks.update_blocks:
        index = [i.node_id for i in ids()].index(ub.uploader)
        member._work.updates[ub.uploader] = update_from(index, n=ub.n_samples)
    (compute,) = [e for e in member.on_message(leader.node_id, proposal, 0) if isinstance(e, Compute)]
    (sent,) = member.on_result(compute.job, fake_compute(compute.op), 0)
    assert isinstance(sent, Send) and isinstance(sent.message, Endorsement) and sent.peer == leader.node_id
    assert member.on_message(leader.node_id, proposal, 0) == []  # one endorsement per attempt


def test_a_proposal_with_a_false_aggregate_is_refused() -> None:
    net = network(N, rounds=1)
    member_ids = sorted(net.nodes[0].chain.committee)
    leader = next(n for n in net.nodes if n.node_id == member_ids[0])
    member = next(n for n in net.nodes if n.node_id == member_ids[1])
    net.drop.add(member.node_id)  # the member hears the round, but we feed it the proposal by hand
    net.start().run(until=45)  # the leader proposes at its deadline with the scores it has
    proposal = leader._work.proposal
    assert proposal is not None
    false = Proposal(dataclasses.replace(proposal.model_block, weights=pack([7.0] * 4)), proposal.update_blocks)
    net.drop.discard(member.node_id)
    for _, update in list(leader._work.updates.items()):
        member._work.updates[update.uploader] = update
    effects = member.on_message(leader.node_id, false, 0)
    (compute,) = [e for e in effects if isinstance(e, Compute)]
    assert reasons(member.on_result(compute.job, fake_compute(compute.op), 0)) == ["mblk.bad_aggregate"]


def test_endorsements_from_outside_the_committee_or_unsigned_are_refused() -> None:
    net = network(N, rounds=1)
    member_ids = sorted(net.nodes[0].chain.committee)
    leader = next(n for n in net.nodes if n.node_id == member_ids[0])
    for other in member_ids[1:]:
        net.drop.add(other)
    net.start().run(until=60)
    proposal = leader._work.proposal
    assert proposal is not None
    mb = proposal.model_block
    outsider = ids()[
        [i.node_id for i in ids()].index(next(n.node_id for n in net.nodes if n.node_id not in member_ids))
    ]
    foreign = Endorsement(mb.round, mb.hash, outsider.public_key).signed_by(outsider)
    assert reasons(leader.on_message(b"peer", foreign, 0)) == ["endorse.not_committee"]
    member = ids()[[i.node_id for i in ids()].index(member_ids[1])]
    forged = Endorsement(mb.round, mb.hash, member.public_key, b"\x00" * 64)
    assert reasons(leader.on_message(b"peer", forged, 0)) == ["endorse.bad_signature"]
    assert leader.chain.round == 0


# -- joins -----------------------------------------------------------------------------------------------------


def test_joins_pay_the_fee_and_are_not_blacklisted_or_members_already() -> None:
    node = fresh(fee=5)
    newcomer = Identity.from_seed(b"newcomer")
    assert reasons(node.on_message(b"p", Join(newcomer.public_key, 4).signed_by(newcomer), 0)) == ["join.fee_unpaid"]
    assert reasons(node.on_message(b"p", Join(newcomer.public_key, 5, b"\x00" * 64), 0)) == ["join.bad_signature"]
    member = ids()[1]
    assert reasons(node.on_message(b"p", Join(member.public_key, 5).signed_by(member), 0)) == ["join.already_member"]
    node.chain.blacklist.add(newcomer.node_id)
    assert reasons(node.on_message(b"p", Join(newcomer.public_key, 5).signed_by(newcomer), 0)) == ["join.blacklisted"]
    node.chain.blacklist.clear()
    assert node.on_message(b"p", Join(newcomer.public_key, 5).signed_by(newcomer), 0) == []
    assert newcomer.node_id in node.pending_joins


def test_a_join_is_admitted_by_the_next_model_block() -> None:
    net = network(N, rounds=2)
    newcomer = Identity.from_seed(b"newcomer")
    join = Join(newcomer.public_key, 1).signed_by(newcomer)
    for node in net.nodes:
        node.on_message(b"p", join, 0)
    net.start().run()
    assert all(newcomer.node_id in n.chain.members for n in net.nodes)
    assert net.rejections() == []


def test_a_message_that_is_not_bflc_is_malformed() -> None:
    assert reasons(fresh().on_message(b"p", object(), 0)) == ["object.malformed"]
