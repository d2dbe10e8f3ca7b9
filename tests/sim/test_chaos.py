"""The chaos scenario in the simulator, on the toy chain (fast, every rule visible) and on the two BagChain
scenarios of experiments/chaos/ (slow): deterministic, and each action where and when it was asked for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainlab.learning.worker import Worker
from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.sim.chaos import ChaosSimulation
from chainlab.sim.experiment import run, simulation_for
from chainlab.sim.network import TopologyNetwork

TOY: dict[str, Any] = {
    "name": "toy-chaos",
    "seed": 2,
    "protocol": {"name": "toychain"},
    "miners": 3,
    "blocks": 6,
    "network": {"kind": "full", "delay_rounds": 2},
    "work": {"hash_trials_per_round": 4},
}


@pytest.fixture(autouse=True)
def toychain(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CHAINLAB_PROTOCOLS", "toychain=tests.toyproto.spec:SPEC")
    yield


def _toy(*chaos: dict[str, Any], **more: Any) -> Experiment:
    return Experiment.from_mapping({**TOY, **more, "chaos": list(chaos)})


def _records(exp: Experiment) -> tuple[ChaosSimulation, list[Any]]:
    _, _, simulation = simulation_for(exp, Worker())
    assert isinstance(simulation, ChaosSimulation)
    simulation.run()
    return simulation, simulation.records


def test_a_killed_node_neither_receives_nor_acts() -> None:
    results = run(_toy({"at": {"round": 0}, "kill": {"node": "miner-2"}}))
    simulation, records = _records(_toy({"at": {"round": 0}, "kill": {"node": "miner-2"}}))
    assert [r for r in records if r.node == 2] == []  # it accepted nothing and mined nothing
    assert simulation.nodes[2].status().height == 0
    assert simulation.nodes[0].status().height == simulation.nodes[1].status().height == 6
    (kill,) = results["chaos"]
    assert kill["action"] == "kill" and kill["node"] == "miner-2" and kill["round"] == 0
    assert kill["caught_up_round"] == {}


def test_a_restart_is_a_new_incarnation_that_takes_part_again() -> None:
    kill_at, restart_at = 3, 40
    exp = _toy(
        {"at": {"round": kill_at}, "kill": {"node": "miner-1"}},
        {"at": {"round": restart_at}, "restart": {"node": "miner-1"}},
    )
    _, records = _records(exp)
    mine = [r for r in records if r.node == 1]
    assert mine and all(r.round >= restart_at for r in mine if r.event == "tip" and r.round > kill_at)
    assert not [r for r in mine if kill_at < r.round < restart_at]  # down in between
    # Nothing for the old incarnation (its mining job's nonce) reached the new one: no block was spoilt.
    assert not [r for r in records if r.event == "rejected"]
    results = run(exp)
    restart = results["chaos"][1]
    assert restart["round"] == restart_at and set(restart["caught_up_round"]) == {"miner-1"}
    assert restart["caught_up_round"]["miner-1"] is not None  # the toy miner re-mines its way up (no catch-up)
    assert results["chaos"] == run(exp)["chaos"]  # deterministic


def test_a_partition_splits_the_chain_and_a_heal_before_any_block_leaves_one() -> None:
    groups = {"groups": [["miner-0"], ["miner-1", "miner-2"]]}
    split = run(_toy({"at": {"round": 0}, "partition": groups}))
    assert split["tips_agree"] is False  # miner-0 mined its own chain, unseen by the others
    simulation, _ = _records(_toy({"at": {"round": 0}, "partition": groups}))
    assert isinstance(simulation.network, TopologyNetwork)  # the full network became its cuttable mesh
    healed = run(_toy({"at": {"round": 0}, "partition": groups}, {"at": {"round": 1}, "heal": {}}))
    assert healed["tips_agree"] is True and healed["protocol_results"]["height"] == 6
    heal = healed["chaos"][1]
    assert heal["round"] == 1 and set(heal["caught_up_round"]) == {"miner-0", "miner-1", "miner-2"}


def test_a_link_switched_off_is_a_partition_of_two() -> None:
    off = {"a": "miner-0", "b": "miner-1", "latency_rounds": 1, "up": False}
    two = run(_toy({"at": {"round": 0}, "set-link": off}, miners=2))
    assert two["tips_agree"] is False
    slow = {"a": "miner-0", "b": "miner-1", "latency_rounds": 30}
    assert (
        run(_toy({"at": {"round": 0}, "set-link": slow}, miners=2))["rounds"]
        > run(Experiment.from_mapping({**TOY, "miners": 2}))["rounds"]
    )


def test_a_height_trigger_fires_when_some_node_first_has_that_height() -> None:
    exp = _toy({"at": {"height": 2}, "kill": {"node": "miner-0"}})
    results = run(exp)
    _, _, plain = simulation_for(Experiment.from_mapping(TOY), Worker())
    plain.run()
    first = min(r.round for r in plain.records if r.event == "tip" and r.data["height"] == 2)
    assert results["chaos"][0]["round"] == first
    _, records = _records(exp)  # the same run up to the kill
    assert first == min(r.round for r in records if r.event == "tip" and r.data["height"] == 2)


def test_names_and_links_are_checked_before_the_run() -> None:
    with pytest.raises(ValueError, match=r"chaos\[0\] kill: no node 'miner-7'"):
        simulation_for(_toy({"at": {"round": 0}, "kill": {"node": "miner-7"}}), Worker())
    mesh = {"kind": "topology", "edges": [[0, 1], [1, 2]]}
    exp = _toy({"at": {"round": 0}, "set-link": {"a": "miner-0", "b": "miner-2", "latency_rounds": 1}}, network=mesh)
    with pytest.raises(ValueError, match="miner-0 and miner-2 are not linked"):
        run(exp)


def test_without_chaos_the_plain_simulation_runs() -> None:
    _, _, simulation = simulation_for(Experiment.from_mapping(TOY), Worker())
    assert not isinstance(simulation, ChaosSimulation)
    assert run(Experiment.from_mapping(TOY))["chaos"] == []


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["kill_restart", "partition_heal"])
def test_the_bagchain_scenarios_run_deterministically(name: str) -> None:
    exp = load_experiment(Path("experiments/chaos") / f"{name}.yaml")
    first, second = run(exp), run(exp)
    assert first["chaos"] == second["chaos"] and first["protocol_results"] == second["protocol_results"]
    assert all(entry["round"] is not None for entry in first["chaos"]), first["chaos"]
