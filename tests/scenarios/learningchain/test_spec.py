"""LearningChain's spec: settings are validated, small networks run in the simulator, results are complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chainlab.cli import main
from chainlab.scenarios import registry
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.learningchain.settings import LearningChainSettings
from chainlab.scenarios.learningchain.spec import SPEC
from chainlab.sim.experiment import run

DEMO = Path("experiments/learningchain_demo.yaml")
SMALL: dict[str, Any] = {
    "name": "learningchain_small",
    "seed": 4,
    "dataset": "synthetic_ball",
    "partition": {"scheme": "iid", "zeta": 0.02},
    "network": {"kind": "full", "delay_rounds": 1},
    "protocol": {
        "name": "learningchain",
        "nodes": 6,
        "rounds": 4,
        "lr": 0.002,
        "target": "2**250",
        "record_every": 2,
        "collect_rounds": 4,  # every message arrives before a miner aggregates (delay 1, gradients instant)
    },
}


def config(**protocol: object) -> Experiment:
    return Experiment.from_mapping({**SMALL, "protocol": {**SMALL["protocol"], **protocol}})


def test_the_registry_finds_learningchain() -> None:
    assert registry.get("learningchain") is SPEC


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"nodes": 0}, "nodes"),
        ({"byzantine_holders": 1.5}, "byzantine_holders"),
        ({"byzantine_miners": 6}, "honest"),
        ({"model": {"family": "mlp"}}, "softmax"),
        ({"aggregator": "krum"}, "aggregator"),
        ({"clip": "none"}, "clip"),
        ({"epsilon": 0}, "epsilon"),
        ({"budget": "uniform"}, "epsilon"),
        ({"label_flip": 1.0}, "label_flip"),
        ({"colour": "red"}, "unknown protocol parameter"),
        ({"target": "2**x"}, "target"),
    ],
)
def test_bad_settings_are_named(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**bad)


def test_attackers_follow_from_the_settings() -> None:
    s = LearningChainSettings.of(config(byzantine_holders=0.34, byzantine_miners=1, label_flip=0.5))
    assert s.byzantine_holders == 2 and s.params.krum_f == 2
    assert [s.byzantine_holder(i) for i in range(6)] == [True, True, False, False, False, False]
    assert [s.byzantine_miner(i) for i in range(6)] == [False] * 5 + [True]
    assert s.dishonest() == frozenset({0, 1, 2, 5})


@pytest.mark.parametrize("aggregator", ["l_nearest", "multi_krum"])
def test_a_small_network_runs_in_the_simulator(aggregator: str) -> None:
    results = run(config(aggregator=aggregator, byzantine_holders=1))
    pr = results["protocol_results"]
    assert not results["truncated"]
    assert pr["blocks"] == 4 and [r["height"] for r in pr["heights"]] == [1, 2, 3, 4]
    assert pr["final_accuracy"] > pr["initial_accuracy"]
    assert pr["selected_attackers"] == 0
    comparison = pr["comparison"]
    assert set(comparison) == {"accuracy", "history", "chain_bytes", "blocks", "forks", "honest_reward_share"}
    assert comparison["accuracy"] == pr["final_accuracy"] and comparison["blocks"] == 4
    assert comparison["history"]["rounds"][0] == 0 and len(comparison["history"]["accuracy"]) == 3
    assert comparison["chain_bytes"] > 4 * 6 * 22 * 8


def test_one_agent_is_the_centralised_baseline() -> None:
    # The Fig. 5 baseline configs: K = M = 1, l = 1, no DP, no clipping -- each block is one full-batch step.
    results = run(config(nodes=1, epsilon=None, bound=1.0e9, record_every=1))
    pr = results["protocol_results"]
    assert not results["truncated"] and pr["blocks"] == 4 and pr["forks"] == 0
    assert [r["selected"] for r in pr["heights"]] == [1, 1, 1, 1]
    assert pr["final_accuracy"] > pr["initial_accuracy"]


def test_byzantine_miners_blocks_never_reach_the_honest_chain() -> None:
    results = run(config(byzantine_miners=2, miner_attack="model"))
    pr = results["protocol_results"]
    assert all(r["honest_miner"] for r in pr["heights"])
    assert pr["comparison"]["honest_reward_share"] == 1.0


def test_the_demo_runs_end_to_end_with_chainlab_sim(tmp_path: Path) -> None:
    assert main(["sim", "--config", str(DEMO), "--out", str(tmp_path), "--workers", "1"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    pr = results["protocol_results"]
    assert not results["truncated"] and pr["blocks"] == 30
    assert pr["final_accuracy"] > 0.9 and pr["selected_attackers"] == 0
    assert (tmp_path / "results.png").exists()
