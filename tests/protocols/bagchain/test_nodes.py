"""Behaviour of the nodes themselves: model serving, the requester's schedule, fork choice, convergence."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chainlab.ledger.identity import Identity
from chainlab.protocols.bagchain.fullnode import ModelKey
from chainlab.protocols.bagchain.messages import DatasetKind, ModelRequest
from chainlab.protocols.bagchain.timers import ReleaseDataset
from chainlab.protocols.effects import Broadcast, StartTimer
from chainlab.sim.experiment import run
from tests.bagchain_net import Experiment
from tests.protocols.bagchain.conftest import (
    Harness,
    Honest,
    before_phase_two,
    resign,
    sibling_key_block,
    validator,
)

V, E = DatasetKind.VALIDATION, DatasetKind.TEST


def test_models_are_not_served_before_the_validation_release(honest: Honest) -> None:
    """Section VI-B: a fresh miner that has not seen D_V serves its model only against a genuine release."""
    miner = before_phase_two(honest.net.miners[0])
    mb = next(m for m in honest.miniblocks(1) if m.miner_id == miner.node_id)
    release = honest.release(1, V)
    assert miner.serve_model(ModelRequest(mb.model_hash, None), 0) is None
    forged = resign(release, Identity.from_seed(b"impostor"))
    assert miner.serve_model(ModelRequest(mb.model_hash, forged), 0) is None
    wrong_height = resign(release, honest.net.requester.identity, height=2)
    assert miner.serve_model(ModelRequest(mb.model_hash, wrong_height), 0) is None
    test_set = resign(release, honest.net.requester.identity, kind=E)
    assert miner.serve_model(ModelRequest(mb.model_hash, test_set), 0) is None
    assert miner.serve_model(ModelRequest(mb.model_hash, release), 0) == miner.own_models()[mb.model_hash]
    assert miner.serve_model(ModelRequest(honest.miniblocks(1)[-1].model_hash + b"x", release), 0) is None


def test_requester_schedules_releases_after_each_key_block(honest: Honest) -> None:
    requester = honest.net.requester
    v1, e1 = honest.release(1, V), honest.release(1, E)
    assert e1.timestamp - v1.timestamp == honest.params.phase2_rounds
    v2 = honest.release(2, V)
    assert v2.timestamp - honest.key_block(1).timestamp >= honest.params.phase1_rounds
    assert requester.serve_dataset(honest.net.tasks[0].train_commitment)
    assert [r.height for r in requester.results()] == [1, 2]


def test_requester_releases_nothing_for_a_height_twice(honest: Honest) -> None:
    fresh = type(honest.net.requester)(
        Identity.from_seed(b"req"), honest.params, honest.observer.genesis, honest.net.tasks
    )
    effects = fresh.start(0)
    assert sum(isinstance(e, Broadcast) for e in effects) == len(honest.net.tasks)
    assert [e.timer for e in effects if isinstance(e, StartTimer)] == [
        ReleaseDataset(1, DatasetKind.VALIDATION, honest.net.tasks[0].task_id)
    ]
    # the requester only follows blocks with a valid signature and proof of work
    assert fresh.on_message(b"peer", honest.key_block(1), 5)  # honest KB_1: schedules height 2
    assert fresh.on_message(b"peer", honest.key_block(1), 6) == []


def test_equal_competitors_converge_on_the_smaller_hash(honest: Honest) -> None:
    fork = sibling_key_block(honest)
    tips = set()
    for order in ((honest.key_block(1), fork), (fork, honest.key_block(1))):
        h = Harness(validator(honest), honest)
        h.send(honest.history(1), *order)
        assert h.rejections() == []
        tips.add(h.node.tip.hash)
    assert tips == {min(fork.hash, honest.key_block(1).hash)}


def test_forking_mesh_with_cfs_stays_honest_and_converges() -> None:
    """Slow Key Blocks on a sparse mesh fork the chain; honest nodes must never reject each other."""
    config: dict[str, Any] = {
        "name": "forks", "seed": 9, "dataset": "digits", "model": {"family": "decision_tree"},
        "metric_min": 0.3, "tasks": 3, "miners": 8, "validators": 1,
        "partition": {"kappa": 0.1, "zeta": 0.1},
        "network": {"kind": "erdos_renyi", "avg_degree": 2.5, "bandwidth_mb": 0.5, "topology_seed": 2},
        "protocol": {"target": "2**249-1", "key_block_size_mb": 40, "phase1_rounds": 60, "cfs": True},
        "work": {"train_rounds": 5},
    }  # fmt: skip
    for cfs in (True, False):
        results = run(Experiment.from_mapping({**config, "protocol": {**config["protocol"], "cfs": cfs}}))
        assert results["forks"] > 0, "the scenario must fork to test anything"
        assert results["tips_agree"], cfs
        # Slow links legitimately make a MiniBlock arrive after D_V at some node, and then an Ensemble
        # Block that lists it is unknown there; nothing else may be rejected between honest nodes.
        timing = ("MiniBlock:after_validation_release", "EnsembleBlock:unknown_miniblock")
        assert {k: v for k, v in results["rejections"].items() if k not in timing} == {}, cfs
        assert len(results["protocol_results"]["heights"]) == 3


@given(st.lists(st.binary(min_size=1, max_size=8), max_size=20))
def test_a_model_key_is_the_tuple_of_its_model_hashes_as_a_dictionary_key(hashes: list[bytes]) -> None:
    key = ModelKey(sorted(hashes))
    plain = tuple(sorted(hashes))
    assert key == plain and hash(key) == hash(plain) == hash(key)  # the second hash is the cached one
    restored: dict[tuple[bytes, ...], int] = {plain: 1}  # metrics read back from disk are plain tuples
    computed: dict[tuple[bytes, ...], int] = {key: 2}
    assert restored[key] == 1 and computed[plain] == 2


@given(st.lists(st.binary(min_size=1, max_size=8), max_size=20))
def test_model_key_of_sorts_and_gives_one_object_per_ensemble(hashes: list[bytes]) -> None:
    key = ModelKey.of(hashes)
    assert key == tuple(sorted(hashes)) and type(key) is ModelKey
    assert ModelKey.of(reversed(hashes)) is key


hash_lists = st.lists(st.binary(max_size=4), max_size=4)


@given(hash_lists, hash_lists)
def test_model_keys_are_equal_exactly_when_their_hashes_are(a: list[bytes], b: list[bytes]) -> None:
    assert (ModelKey(a) == ModelKey(b)) is (a == b)
    assert (ModelKey(a) != ModelKey(b)) is (a != b)
    assert (ModelKey(a) == tuple(b)) is (a == b)
