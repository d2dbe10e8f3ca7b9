"""A BagChain miner: Phase I across fork switches (Algorithm 1.1 runs once per confirmed parent KB_{h-1}), and
Phase III building one Key Block candidate per round."""

from __future__ import annotations

import dataclasses
from typing import Any

from chainlab.ledger.identity import Identity
from chainlab.protocols.bagchain import Miner
from chainlab.protocols.bagchain.messages import DatasetKind, KeyBlock, MiniBlock
from chainlab.protocols.effects import Broadcast, Compute, Persist, Record, TrainModel
from tests.protocols.bagchain.conftest import Harness, Honest, sibling_key_block, validator

V = DatasetKind.VALIDATION


def switching_miner(honest: Honest, **overrides: Any) -> Miner:
    """A miner outside the honest run that holds its datasets (so it trains without fetching)."""
    params = dataclasses.replace(honest.params, **overrides)
    return Miner(
        Identity.from_seed(b"switching-miner"),
        params,
        honest.observer.genesis,
        seed=5,
        held=frozenset(honest.observer.datasets),
    )


def forks_of_height_one(honest: Honest) -> tuple[KeyBlock, KeyBlock]:
    """Two valid KB_1 of equal Metric_best: the miner follows the first and switches to the second (smaller hash)."""
    pair = sorted((honest.key_block(1), sibling_key_block(honest)), key=lambda kb: kb.hash)
    return pair[1], pair[0]


def trainings(h: Harness, height: int) -> list[tuple[int, TrainModel, str]]:
    """(job, op, parent hex) of every Train job the miner started for a height, in order."""
    jobs = [(e.job, e.op) for e in h.effects if isinstance(e, Compute) and isinstance(e.op, TrainModel)]
    records = [r for r in h.records if r.event == "training_started"]
    assert len(jobs) == len(records)
    return [
        (job, op, str(r.data.get("parent", "?")))
        for (job, op), r in zip(jobs, records, strict=True)
        if r.data["height"] == height
    ]


def own_miniblocks(h: Harness, height: int) -> list[MiniBlock]:
    out = [e.message for e in h.effects if isinstance(e, Broadcast) and isinstance(e.message, MiniBlock)]
    return [mb for mb in out if mb.height == height and mb.miner_key == h.node.identity.public_key]


def real_models(honest: Honest) -> list[bytes]:
    """Two distinct base models of height 2's task, taken from the honest run (validators evaluate them for real)."""
    height_two = {mb.model_hash for mb in honest.miniblocks(2)}
    models = [m for miner in honest.net.miners for d, m in miner.own_models().items() if d in height_two]
    assert len(set(models)) >= 2
    return models[:2]


def candidates(h: Harness) -> list[Record]:
    """The Key Block candidates it started mining, in order."""
    return [r for r in h.records if r.event == "mining"]


def finish(h: Harness, job: int, model: bytes) -> None:
    h._run(h.node.on_result(job, model, h.now))


def test_a_heights_first_model_does_not_depend_on_which_parent_it_is_trained_on(honest: Honest) -> None:
    # Live Key Blocks differ from simulated ones (nonces, timestamps): the models must not, or sim and live drift.
    first, second = forks_of_height_one(honest)
    seeds = []
    for parent in (first, second):
        h = Harness(switching_miner(honest), honest)
        h.send(honest.history(1), parent)
        [(_, op, parent_hex)] = trainings(h, 2)
        assert parent_hex == parent.hash.hex()
        seeds.append(op.seed)
    assert seeds[0] == seeds[1]


def test_a_miner_that_switches_fork_in_phase_one_trains_again_and_mines_a_miniblock_on_the_new_parent(
    honest: Honest,
) -> None:
    first, second = forks_of_height_one(honest)
    h = Harness(switching_miner(honest), honest)
    h.send(honest.history(1), first)
    [(job_a, op_a, parent_a)] = trainings(h, 2)
    assert parent_a == first.hash.hex()
    model_a, model_b = real_models(honest)
    finish(h, job_a, model_a)
    h.send(second)
    assert h.node.tip.hash == second.hash
    assert [parent for _, _, parent in trainings(h, 2)] == [first.hash.hex(), second.hash.hex()]
    job_b, op_b, _ = trainings(h, 2)[1]
    assert op_b.seed != op_a.seed, "two MiniBlocks of one miner at one height must hold different models"
    finish(h, job_b, model_b)
    mbs = own_miniblocks(h, 2)
    assert [mb.prehash for mb in mbs] == [first.hash, second.hash]
    assert len({mb.model_hash for mb in mbs}) == 2

    # A validator that sees both forks accepts both MiniBlocks: neither a duplicate model nor a wrong parent.
    check = Harness(validator(honest), honest)
    check.servers[h.node.node_id] = h.node
    check.send(honest.history(1), first, second, *mbs, honest.release(2, V))
    assert check.rejections() == []
    assert all(check.node.mb_verdict.get(mb.hash, False) is None for mb in mbs)


def test_a_switch_while_training_is_in_flight_does_not_start_a_second_job(honest: Honest) -> None:
    first, second = forks_of_height_one(honest)
    h = Harness(switching_miner(honest), honest)
    h.send(honest.history(1), first, second)
    [(job, _, parent)] = trainings(h, 2)
    assert parent == first.hash.hex()
    finish(h, job, real_models(honest)[0])
    # The model does not depend on the parent: it is encapsulated for the parent confirmed when it is ready.
    assert [mb.prehash for mb in own_miniblocks(h, 2)] == [second.hash]
    assert len(trainings(h, 2)) == 1


def test_with_cfs_a_fork_switch_needs_no_new_training(honest: Honest) -> None:
    first, second = forks_of_height_one(honest)
    h = Harness(switching_miner(honest, cfs=True), honest)
    h.send(honest.history(1), first)
    [(job, _, _)] = trainings(h, 2)
    finish(h, job, real_models(honest)[0])
    h.send(second)
    assert h.node.tip.hash == second.hash
    # Section V: the MiniBlock on the first parent counts in every fork's Ensemble Block at this height.
    assert len(trainings(h, 2)) == 1
    assert [mb.prehash for mb in own_miniblocks(h, 2)] == [first.hash]


def test_after_the_validation_release_a_fork_switch_trains_nothing(honest: Honest) -> None:
    first, second = forks_of_height_one(honest)
    h = Harness(switching_miner(honest), honest)
    h.send(honest.history(1), first)
    [(job, _, _)] = trainings(h, 2)
    finish(h, job, real_models(honest)[0])
    h.send(honest.release(2, V), second)
    assert h.node.tip.hash == second.hash
    assert len(trainings(h, 2)) == 1


def test_a_result_for_a_height_the_tip_has_left_is_obsolete(honest: Honest) -> None:
    h = Harness(switching_miner(honest), honest)
    h.send(honest.history(1), honest.key_block(1))
    [(job, _, _)] = trainings(h, 2)
    h.send(*honest.history(2)[len(honest.history(1)) :], honest.key_block(2))
    assert h.node.tip.height == 2
    finish(h, job, real_models(honest)[0])
    assert own_miniblocks(h, 2) == []
    assert any(r.event in ("training_obsolete", "miniblock_too_late") for r in h.records)


def test_a_restarted_miner_does_not_retrain_for_a_parent_it_already_trained_on(honest: Honest) -> None:
    first, second = forks_of_height_one(honest)
    miner = switching_miner(honest)
    h = Harness(miner, honest)
    h.send(honest.history(1), first)
    [(job, _, _)] = trainings(h, 2)
    finish(h, job, real_models(honest)[0])
    records = [e for e in h.effects if isinstance(e, Persist)]

    again = switching_miner(honest)
    again.restore(records)
    lonely = Harness(again, honest, now=h.now)
    assert again.tip.hash == first.hash
    assert trainings(lonely, 2) == []
    lonely.send(second)  # a parent it has not trained on: Algorithm 1.1 runs on it
    assert [parent for _, _, parent in trainings(lonely, 2)] == [second.hash.hex()]


def test_ensemble_blocks_arriving_in_one_round_make_one_candidate_once_the_round_is_in(honest: Honest) -> None:
    h = Harness(switching_miner(honest), honest)
    h.send(*honest.net.tasks, *honest.miniblocks(1))
    h.send(honest.release(1, V), honest.release(1, DatasetKind.TEST))
    built = len(candidates(h))  # on its own Ensemble Block, once D_E was out
    h.one_round(*honest.ensembles(1))
    assert len(honest.ensembles(1)) >= 2
    assert len(candidates(h)) == built  # nothing built while the round's arrivals come in
    h.end_round()
    (mining,) = candidates(h)[built:]
    assert mining.data["ranked"] == len(honest.ensembles(1)) + 1  # and its own
