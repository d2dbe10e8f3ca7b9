"""Byzantine BagChain miners in simulation: each lie caught by its named rejection, the honest outcome unmoved.

Every scenario is experiments/chaos/<behaviour>.yaml (miner-2 lies from round 0); it is compared with the same file
without `chaos:` (clean), and, where the liar's own base model is rightly dropped (lazy, withholding), with the run in
which miner-2 is absent from the start (killed at round 0): lying costs the liar its share and the network nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from chainlab.learning.worker import Worker
from chainlab.ledger.pow import meets_target
from chainlab.protocols.bagchain import FullNode, Miner
from chainlab.protocols.bagchain.messages import DatasetKind, KeyBlock, MiniBlock, ModelRequest
from chainlab.protocols.bagchain.reasons import Reason
from chainlab.protocols.effects import Broadcast, CancelJob, Compute, Mine, Record, TrainModel
from chainlab.protocols.spec import ModelSpec
from chainlab.scenarios import registry
from chainlab.scenarios.bagchain import byzantine as bz
from chainlab.scenarios.chaos import Byzantine, scenario
from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.scenarios.results import without_measurements
from chainlab.sim.experiment import run, simulation_for
from tests.bagchain_net import build
from tests.protocols.bagchain.conftest import Honest

CHAOS = Path(__file__).resolve().parents[3] / "experiments" / "chaos"
LIAR = "miner-2"
HONEST_MINERS = ("miner-0", "miner-1", "miner-3", "miner-4")
TOLERANCE = 0.005  # 0.5 percentage points of ensemble accuracy

# What honest full nodes count for each behaviour: `caught` at every one of them (the plagiarist's victim excepted:
# see test_the_plagiarists_victim_rejects_the_copy), `collateral` allowed besides (a liar's own later blocks built
# on what was already rejected). Nothing else may be rejected.
CAUGHT: dict[str, str] = {
    "plagiarist": "MiniBlock:model_unavailable",
    "lazy": "MiniBlock:below_metric_min",
    "false_metric_v": "EnsembleBlock:false_metric_v",
    "false_metric_best": "KeyBlock:false_metric_best",
    "false_ranking": "KeyBlock:ranking_not_sorted",
    "bad_pow": "KeyBlock:bad_pow",
    "wrong_rewards": "KeyBlock:wrong_rewards",
    "withholding": "MiniBlock:model_unavailable",
    "equivocation": "EnsembleBlock:duplicate_model",
    "garbage_flood": "MiniBlock:bad_signature",
}
COLLATERAL: dict[str, frozenset[str]] = {
    # The victim's own Ensemble Block took the copy in (the victim accepts it): everybody else rejects that block.
    # Once the victim checks the copy's ModelHash against its author too, it rejects the copy by this reason.
    "plagiarist": frozenset({"EnsembleBlock:invalid_miniblock", "MiniBlock:model_hash_mismatch"}),
    # The withholder's Ensemble and Key Blocks rank its own, unavailable model.
    "withholding": frozenset({"EnsembleBlock:invalid_miniblock", "KeyBlock:invalid_ensemble_block"}),
}
WITHOUT_THE_LIARS_MODEL = frozenset({"lazy", "withholding"})


def _config(behaviour: str) -> dict[str, Any]:
    return dict(load_experiment(CHAOS / f"{behaviour}.yaml").raw)


@cache
def _results(behaviour: str, variant: str) -> dict[str, Any]:
    """The scenario's results: as written (byzantine), without chaos (clean) or with the liar killed at round 0."""
    raw = {k: v for k, v in _config(behaviour).items() if k != "chaos"}
    if variant == "byzantine":
        raw["chaos"] = _config(behaviour)["chaos"]
    elif variant == "absent":
        raw["chaos"] = [{"at": {"round": 0}, "kill": {"node": LIAR}}]
    return run(Experiment.from_mapping(raw))


def _accuracy(results: Mapping[str, Any]) -> float:
    return float(results["protocol_results"]["ensemble_accuracy"])


# ----- the scenarios ------------------------------------------------------------------------------------------------


def test_every_behaviour_has_its_scenario() -> None:
    spec = registry.get("bagchain")
    assert spec.behaviours == tuple(bz.BEHAVIOURS) == tuple(CAUGHT)
    for behaviour in spec.behaviours:
        actions = scenario(load_experiment(CHAOS / f"{behaviour}.yaml"))
        assert [t.action for t in actions] == [Byzantine(LIAR, behaviour)]


@pytest.mark.parametrize("behaviour", list(CAUGHT))
def test_the_lie_is_caught_by_its_reason_at_every_honest_node(behaviour: str) -> None:
    results = _results(behaviour, "byzantine")
    counted = results["rejections_by_node"]
    assert results["truncated"] is False and results["internal_errors"] == {}
    assert counted.get("validator-0", {}).get(CAUGHT[behaviour], 0) >= 1
    catching = [m for m in HONEST_MINERS if counted.get(m, {}).get(CAUGHT[behaviour], 0) >= 1]
    assert len(catching) >= len(HONEST_MINERS) - (1 if behaviour == "plagiarist" else 0)
    allowed = {CAUGHT[behaviour]} | COLLATERAL.get(behaviour, frozenset())
    for name, reasons in counted.items():
        if name not in (LIAR, "requester"):
            assert set(reasons) <= allowed, f"{name} rejected {reasons}"


@pytest.mark.parametrize("behaviour", list(CAUGHT))
def test_the_honest_outcome_does_not_move(behaviour: str) -> None:
    lied = _results(behaviour, "byzantine")
    reference = _results(behaviour, "absent" if behaviour in WITHOUT_THE_LIARS_MODEL else "clean")
    assert lied["tips_agree"]
    assert len(lied["protocol_results"]["heights"]) == len(reference["protocol_results"]["heights"]) == 1
    assert abs(_accuracy(lied) - _accuracy(reference)) <= TOLERANCE


def test_a_lie_that_costs_the_liar_its_model_costs_the_network_nothing_more() -> None:
    # The clean run's ensemble has miner-2's honest model; without it (absent, lazy, withholding) all agree.
    absent = _accuracy(_results("lazy", "absent"))
    assert _accuracy(_results("lazy", "byzantine")) == _accuracy(_results("withholding", "byzantine")) == absent
    assert _accuracy(_results("lazy", "clean")) != absent  # so the reference above is not the clean run in disguise


def test_without_validators_the_results_come_from_the_first_honest_miner_not_a_liar() -> None:
    """The compare grid's case: no validator, and miner-0 (the spec's observer) lies. Its tip does not vote, so the
    results are read from miner-1, and they are the honest network's."""
    raw = {**_config("false_metric_v"), "validators": 0}
    raw["chaos"] = [{"at": {"round": 0}, "byzantine": {"node": "miner-0", "behaviour": "false_metric_v"}}]
    lied = run(Experiment.from_mapping(raw))
    assert lied["observer"] == "miner-1" and lied["truncated"] is False and lied["tips_agree"]
    clean = run(Experiment.from_mapping({k: v for k, v in raw.items() if k != "chaos"}))
    assert clean["observer"] == "miner-0"
    assert abs(_accuracy(lied) - _accuracy(clean)) <= TOLERANCE


def test_a_scenario_runs_the_same_twice() -> None:
    first, second = (run(load_experiment(CHAOS / "garbage_flood.yaml")) for _ in range(2))
    assert without_measurements(first) == without_measurements(second)


def test_the_plagiarists_victim_rejects_the_copy() -> None:
    _, deployment, simulation = simulation_for(load_experiment(CHAOS / "plagiarist.yaml"), Worker())
    simulation.run()
    copied = [
        r.data for r in simulation.records if r.event == bz.RECORD_BYZANTINE and r.data["act"] == "copied_miniblock"
    ]
    assert len(copied) == 1
    original, copy = bytes.fromhex(str(copied[0]["of"])), bytes.fromhex(str(copied[0]["block"]))
    nodes = list(simulation.nodes)
    observer = nodes[[s.name for s in deployment.slots].index("validator-0")]
    assert isinstance(observer, FullNode)
    author = observer.miniblocks[original].miner_id
    victim = next(n for n in nodes if n.node_id == author)
    assert isinstance(victim, Miner)
    assert observer.mb_verdict[copy] is not None  # the others catch it (test above): only the victim is fooled
    assert victim.mb_verdict[copy] is Reason.MODEL_HASH_MISMATCH


# ----- the wrappers ---------------------------------------------------------------------------------------------------


@pytest.fixture
def fresh() -> Miner:
    """An unstarted miner of the lazy scenario's network."""
    miner = build(load_experiment(CHAOS / "lazy.yaml")).miners[2]
    assert isinstance(miner, Miner)
    return miner


def test_unknown_behaviours_and_non_miners_are_refused_by_name(fresh: Miner) -> None:
    spec = registry.get("bagchain")
    with pytest.raises(ValueError, match=r"no behaviour 'sybil'.*plagiarist"):
        spec.byzantine(fresh, "sybil")
    validator = build(load_experiment(CHAOS / "lazy.yaml")).validators[0]
    with pytest.raises(ValueError, match="'lazy' needs a miner, got a validator"):
        spec.byzantine(validator, "lazy")


def test_a_liar_keeps_its_miners_id_does_not_vote_and_switches_without_nesting(fresh: Miner) -> None:
    lazy = bz.byzantine_miner(fresh, "lazy")
    assert lazy.node_id == fresh.node_id and lazy.role == "miner"
    assert lazy.status().votes is False and fresh.status().votes is True
    flood = bz.byzantine_miner(lazy, "garbage_flood")
    assert isinstance(flood, bz.GarbageFlood) and flood.honest is fresh


def test_the_withholder_serves_no_model_its_miner_would(honest: Honest) -> None:
    miner = honest.net.miners[0]
    digest = next(iter(miner.own_models()))
    height = next(mb.height for mb in miner.miniblocks.values() if mb.model_hash == digest)
    request = ModelRequest(digest, honest.release(height, DatasetKind.VALIDATION))
    assert isinstance(miner.on_request(b"peer", request, 0), bytes)
    assert bz.Withholder(miner).on_request(b"peer", request, 0) is None


def test_the_flood_is_bounded_per_round_and_in_all(fresh: Miner) -> None:
    flood = bz.GarbageFlood(fresh)
    task = next(iter(fresh.tasks.values()), None) or build(load_experiment(CHAOS / "lazy.yaml")).tasks[0]
    sent: dict[int, int] = {}
    for now in range(0, 3 * bz.FLOOD_BUDGET):
        for k in range(3):  # several inputs in one round send no more than one round's share
            effects = flood.start(now) if now == k == 0 else flood.on_message(b"peer", task, now)
            garbage = [e.message for e in effects if isinstance(e, Broadcast) and isinstance(e.message, MiniBlock)]
            sent[now] = sent.get(now, 0) + len(garbage)
            assert all(not mb.signature_valid(mb.miner_key) for mb in garbage)
    assert max(sent.values()) == bz.FLOOD_PER_ROUND
    assert sum(sent.values()) == bz.FLOOD_BUDGET


def test_key_block_forgeries_differ_from_the_candidate_as_named(fresh: Miner) -> None:
    candidate = KeyBlock(
        merkle_root=b"", timestamp=1, metric_best=0.8, ranking=(), miner_key=fresh.identity.public_key,
        task_id=b"t" * 32, task_queue=(), prehash=fresh.tip.hash, height=1, rewards=(),
    )  # fmt: skip
    best = bz.FalseMetricBest(fresh)._forge(candidate)
    assert best is not None and best.metric_best == 0.9
    assert bz.FalseRanking(fresh)._forge(candidate) is None  # nothing ranked: nothing to misorder, it mines honestly
    rewards = bz.WrongRewards(fresh)._forge(candidate)
    assert rewards is not None and rewards.rewards[0].recipient == fresh.node_id
    assert rewards.rewards[0].amount == fresh.params.key_block_reward
    sealed = bz.BadPow(fresh)._seal(candidate, 0)
    assert sealed is not None and not meets_target(sealed.hash, fresh.params.target)
    assert sealed.signature_valid(fresh.identity.public_key)


def test_a_forgery_is_mined_in_place_of_the_candidate_and_sent_even_when_cancelled(fresh: Miner) -> None:
    liar = bz.FalseMetricBest(fresh)
    candidate = KeyBlock(
        merkle_root=b"", timestamp=1, metric_best=0.5, ranking=(), miner_key=fresh.identity.public_key,
        task_id=b"t" * 32, task_queue=(), prehash=fresh.tip.hash, height=1, rewards=(),
    )  # fmt: skip
    honest_mine = Mine(7, candidate.pow_prefix(), fresh.params.target, b"\x71")
    (forged_mine,) = liar._transform(honest_mine, 0)
    assert isinstance(forged_mine, Mine) and forged_mine.job == 7 and forged_mine.prefix != honest_mine.prefix
    assert liar._transform(CancelJob(7), 0) == ()
    out = liar.on_result(7, 12345, 5)
    sent = [e.message for e in out if isinstance(e, Broadcast)]
    assert len(sent) == 1 and isinstance(sent[0], KeyBlock)
    assert sent[0].metric_best == 0.6 and sent[0].nonce == 12345
    assert any(isinstance(e, Record) and e.event == bz.RECORD_BYZANTINE for e in out)


def test_lazy_trains_a_stump_for_a_tree_and_noise_otherwise(fresh: Miner) -> None:
    lazy = bz.Lazy(fresh)
    tree = Compute(3, TrainModel(ModelSpec.of("decision_tree", {"min_samples_leaf": 2}), (), True, 1))
    (stump, _) = lazy._transform(tree, 0)
    assert isinstance(stump, Compute) and isinstance(stump.op, TrainModel)
    assert stump.op.spec == ModelSpec.of("decision_tree", {"max_depth": 1, "min_samples_leaf": 2})
    net = Compute(4, TrainModel(ModelSpec.of("lenet5", {}), (), True, 1))
    assert lazy._transform(net, 0)[0] == net
    assert 4 in lazy._random
