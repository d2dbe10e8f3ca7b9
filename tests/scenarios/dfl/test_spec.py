"""DFL's spec: settings validation, a deployment rebuilt node by node, a short simulated run, the configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chainlab.protocols.base import Observation
from chainlab.protocols.dfl import DflNode
from chainlab.scenarios.dfl.settings import DflSettings
from chainlab.scenarios.dfl.spec import BLOCKS, LOCAL_ACCURACY, SPEC, local_test_name, shard_name
from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.sim.experiment import run

BASE: dict[str, Any] = {
    "name": "dfl_tiny",
    "seed": 3,
    "dataset": "mnist",
    "network": {"kind": "full", "delay_rounds": 1},
    "protocol": {
        "name": "dfl",
        "nodes": 3,
        "duration": 60,
        "buffer": 2,
        "tx_per_block": 2,
        "receipt_wait": 2,
        "confirm_window": 5,
        "attack": "model",
        "attackers": [0],
        "model": {"family": "softmax", "lr": 0.1},
    },
}


def exp(**protocol: object) -> Experiment:
    return Experiment.from_mapping({**BASE, "protocol": {**BASE["protocol"], **protocol}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodes": 1}, "nodes must be"),
        ({"attack": "sybil"}, "attack must be"),
        ({"attackers": [5]}, "attackers must lie"),
        ({"attackers": [0, 1, 2]}, "at least one node must be honest"),
        ({"bogus": 1}, "unknown DFL parameter"),
        ({"aggregation": "krum"}, "aggregation must be"),
        ({"snapshot_history": "yes"}, "snapshot_history must be"),
        ({"interval_max": 2}, "interval_max must be"),
        ({"model": {"family": "resnet"}}, "family"),
        ({"model": {"family": "softmax", "momentum": 0.9}}, "unknown softmax parameter"),
    ],
)
def test_bad_settings_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        exp(**change)


def test_no_attack_means_no_attackers() -> None:
    assert DflSettings.of(exp(attack="none")).attackers == ()


def test_the_deployment_holds_shards_and_label_matched_test_sets_and_nodes_rebuild_equal() -> None:
    e = exp(attack="data")
    deployment = SPEC.build(e)
    assert [s.name for s in deployment.slots] == ["miner-0", "miner-1", "miner-2"]
    assert deployment.holdings["miner-1"] == (local_test_name(1),) and deployment.private["miner-1"] == shard_name(1)
    assert deployment.data[shard_name(0)].name.endswith("+noise")  # the data poisoner
    for slot, built in zip(deployment.slots, deployment.nodes, strict=True):
        rebuilt = SPEC.node(e, deployment.payload, slot)
        assert isinstance(built, DflNode) and isinstance(rebuilt, DflNode)
        assert (rebuilt.neighbours, rebuilt.local_test, rebuilt.spec, rebuilt.genesis, rebuilt.attacker) == (
            built.neighbours, built.local_test, built.spec, built.genesis, built.attacker,
        )  # fmt: skip
        assert built.local_test == deployment.data[local_test_name(slot.index)].commitment()
        assert len(built.neighbours) == 2 and not built.poison_model


def test_a_short_run_in_the_simulator() -> None:
    results = run(exp())
    assert results["protocol"] == "dfl" and not results["truncated"]
    assert results["rejections"] == {}
    pr = results["protocol_results"]
    assert pr["honest_nodes"] == 2 and pr["attackers"] == 1
    assert 0.0 <= pr["accuracy"]["mean"] <= 1.0
    # A draft still in its window when the run ends is finalised with what has come: the ratio dips below 1.
    assert pr["blocks"] > 0 and pr["transactions_per_block"] == 2.0 and 0.5 < pr["confirmation_ratio"] <= 1.0
    assert pr["attacker_reputation"] < 1.0  # the noise model is the worst in every buffer
    assert [row["node"] for row in pr["nodes"]] == ["miner-0", "miner-1", "miner-2"]
    assert pr["nodes"][0]["accuracy"] is None and pr["history"]["ticks"]


def test_history_snapshots_are_kept_where_a_report_set_measures_them_unless_the_config_says() -> None:
    assert not DflSettings.of(exp()).params.snapshot_history
    with_report = Experiment.from_mapping({**BASE, "report_set": 200})
    assert DflSettings.of(with_report).params.snapshot_history
    told = Experiment.from_mapping(
        {**BASE, "report_set": 200, "protocol": {**BASE["protocol"], "snapshot_history": False}}
    )
    assert not DflSettings.of(told).params.snapshot_history


def test_the_comparison_history_is_on_d_r_only_with_snapshots() -> None:
    plain = run(exp())["protocol_results"]["comparison"]["history"]
    assert plain["rounds"] == [] and plain["accuracy"] == []  # nothing measured on D_R, so nothing shown
    snapshots = run(Experiment.from_mapping({**BASE, "report_set": 200}))["protocol_results"]
    history = snapshots["comparison"]["history"]
    assert history["rounds"] and history["rounds"] == [int(t) for t in snapshots["history"]["ticks"]]
    assert history["accuracy"] != snapshots["history"]["mean"]  # D_R, not the nodes' own test samples


def test_metric_updates() -> None:
    assert SPEC.metric_updates(Observation(1, 0, "accuracy", {"accuracy": 0.5}))[0].name == LOCAL_ACCURACY
    assert SPEC.metric_updates(Observation(1, 0, "block", {"confirmations": 3}))[0].name == BLOCKS
    assert SPEC.metric_updates(Observation(1, 0, "other", {})) == ()


@pytest.mark.parametrize("path", sorted(Path("experiments").glob("dfl_*.yaml")), ids=lambda p: p.stem)
def test_every_config_validates_and_lists_deviations(path: Path) -> None:
    e = load_experiment(path)
    assert e.protocol_name == "dfl" and e.get("deviations")
