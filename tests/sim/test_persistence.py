"""Nodes restarted on their store, and nodes healed from a partition, catch up in the simulator."""

from __future__ import annotations

from typing import Any

from chainlab.learning.worker import Worker
from chainlab.protocols.base import ProtocolNode, tips_agree
from chainlab.scenarios import registry
from chainlab.scenarios.experiment import Experiment
from chainlab.sim import experiment as sim_experiment
from chainlab.sim.chaos import ChaosSimulation


def config(chaos: list[dict[str, Any]], **extra: Any) -> Experiment:
    return Experiment.from_mapping(
        {
            "name": "persistence",
            "seed": 11,
            "dataset": "digits",
            "model": {"family": "decision_tree"},
            "metric_min": 0.3,
            "tasks": 3,
            "miners": 3,
            "validators": 1,
            "partition": {"kappa": 0.1, "zeta": 0.25},
            "network": {"kind": "full", "delay_rounds": 1},
            "protocol": {"phase1_rounds": 20, "phase2_rounds": 10, "queue_length": 2, "target": str(2**252 - 1)},
            "work": {"train_rounds": 2, "hash_trials_per_round": 1},
            "chaos": chaos,
            **extra,
        }
    )


def on_store(exp: Experiment) -> tuple[ChaosSimulation, list[tuple[str, int]]]:
    """The scenario's simulation with restarts restored from each node's store; and (node, height) right after each
    restore, before the node hears from anybody."""
    spec, deployment, simulation = sim_experiment.simulation_for(exp, Worker())
    assert isinstance(simulation, ChaosSimulation)
    restored: list[tuple[str, int]] = []

    def rebuild(i: int) -> ProtocolNode:
        node = simulation.restored(i, spec.node(exp, deployment.payload, deployment.slots[i]))
        restored.append((deployment.slots[i].name, node.status().height))
        return node

    simulation.rebuild = rebuild
    return simulation, restored


def test_a_validator_killed_between_heights_comes_back_on_its_store_and_catches_up() -> None:
    exp = config(
        [
            {"at": {"height": 2, "phase": 2}, "kill": {"node": "validator-0"}},
            {"at": {"height": 3, "phase": 2}, "restart": {"node": "validator-0"}},
        ]
    )
    simulation, restored = on_store(exp)
    simulation.run()
    statuses = {name: simulation.nodes[i].status() for i, name in enumerate(simulation.names)}
    # Killed in Phase II of height 2, restarted in Phase II of height 3: it came back with the chain it had when
    # killed (height 1), not from genesis, missed KB_2 while down, and caught up with the rest.
    assert restored == [("validator-0", 1)]
    assert statuses["validator-0"].height == 3
    assert tips_agree(list(statuses.values()))
    assert not any(s.syncing for s in statuses.values())
    spec = registry.get("bagchain")
    assert spec.finished(exp, list(statuses.values()))


def test_a_miner_killed_in_phase_two_serves_its_model_after_its_restart() -> None:
    exp = config(
        [
            {"at": {"height": 1, "phase": 2}, "kill": {"node": "miner-2"}},
            {"at": {"height": 2, "phase": 1}, "restart": {"node": "miner-2"}},
        ]
    )
    simulation, restored = on_store(exp)
    simulation.run()
    statuses = [node.status() for node in simulation.nodes]
    assert [name for name, _ in restored] == ["miner-2"]
    assert tips_agree(statuses) and {s.height for s in statuses if s.votes} == {3}
    # Its MiniBlocks of the heights after its restart made it into ensembles on the common chain.
    miner = simulation.nodes[simulation.names.index("miner-2")]
    validator: Any = simulation.nodes[simulation.names.index("validator-0")]
    used = {
        h
        for kb in validator.best_chain()[1:]
        for e in kb.ranking[:1]
        for h in validator.ensembles[e.ensemble_block].miniblocks
    }
    assert any(validator.miniblocks[h].miner_id == miner.node_id and validator.miniblocks[h].height == 3 for h in used)


def test_a_partitioned_miner_converges_on_the_majority_chain_after_the_heal() -> None:
    exp = config(
        [
            {
                "at": {"round": 2},
                "partition": {"groups": [["miner-0"], ["miner-1", "miner-2", "requester", "validator-0"]]},
            },
            {"at": {"height": 2}, "heal": {}},
        ]
    )
    simulation, _ = on_store(exp)
    simulation.run()
    statuses = {name: simulation.nodes[i].status() for i, name in enumerate(simulation.names)}
    assert tips_agree(list(statuses.values()))
    assert statuses["miner-0"].height == statuses["validator-0"].height == 3
    synced = [r for r in simulation.records if r.event == "sync_answered" and simulation.names[r.node] == "miner-0"]
    assert synced, "miner-0 caught up through catch-up answers"


def test_the_same_scenario_gives_the_same_outcome() -> None:
    chaos = [
        {"at": {"height": 2, "phase": 2}, "kill": {"node": "validator-0"}},
        {"at": {"height": 3, "phase": 2}, "restart": {"node": "validator-0"}},
    ]
    tips = []
    for _ in range(2):
        simulation, _ = on_store(config(chaos))
        simulation.run()
        tips.append([node.status().tip for node in simulation.nodes])
    assert tips[0] == tips[1]
