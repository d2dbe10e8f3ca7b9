"""protocols.md 6's common world in the existing protocols: the report set D_R, the label-flip attack, the public
shard that pre-trains w0, and the comparison block every summary returns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from chainlab.learning.datasets import Dataset, load_dataset
from chainlab.protocols.dfl import DflNode
from chainlab.scenarios import registry
from chainlab.scenarios.bagchain.settings import BagChainSettings
from chainlab.scenarios.bflc.settings import BflcSettings
from chainlab.scenarios.data import load_split, split_report
from chainlab.scenarios.dfl.settings import DflSettings
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import federated_data, flipped_shards, label_flip_of
from chainlab.sim.experiment import run

COMPARISON_KEYS = {"accuracy", "history", "chain_bytes", "blocks", "forks", "honest_reward_share"}
OPTIONAL_KEYS = {"clock"}  # "height" where the history is on chain heights, not virtual rounds

DFL: dict[str, Any] = {
    "name": "dfl_world",
    "seed": 3,
    "dataset": "digits",
    "report_set": 300,
    "network": {"kind": "full", "delay_rounds": 1},
    "protocol": {
        "name": "dfl",
        "nodes": 4,
        "duration": 60,
        "buffer": 2,
        "tx_per_block": 2,
        "receipt_wait": 2,
        "confirm_window": 5,
        "record_every": 20,
        "label_flip": 0.25,
        "model": {"family": "softmax", "lr": 0.1},
    },
}
BFLC: dict[str, Any] = {
    "name": "bflc_world",
    "seed": 3,
    "dataset": "digits",
    "report_set": 300,
    "network": {"kind": "full", "delay_rounds": 1},
    "protocol": {
        "name": "bflc",
        "nodes": 6,
        "rounds": 2,
        "active": 1.0,
        "committee": 0.5,
        "label_flip": 0.34,
        "local_steps": 5,
        "model": {"family": "softmax", "lr": 0.1},
    },
}
BAGCHAIN: dict[str, Any] = {
    "name": "bagchain_world",
    "seed": 3,
    "dataset": "digits",
    "report_set": 300,
    "model": {"family": "softmax", "params": {"epochs": 2}},
    "aggregate": "soft",
    "metric_min": 0.2,
    "tasks": 1,
    "miners": 4,
    "partition": {"scheme": "iid", "kappa": 0.1, "zeta": 0.2},
    "network": {"kind": "full", "delay_rounds": 1},
    "protocol": {"phase1_rounds": 30, "phase2_rounds": 5, "target": "2**250-1", "label_flip": 0.5},
    "work": {"train_rounds": 5, "hash_trials_per_round": 1},
}


def test_the_report_set_is_drawn_from_the_seed_and_left_out_of_the_test_set() -> None:
    _, test = load_dataset("digits")
    report, rest = split_report(test, 100, 7)
    assert report is not None and len(report) == 100 and len(rest) == len(test) - 100
    again, _ = split_report(test, 100, 7)
    assert again is not None and again.commitment() == report.commitment()
    other, _ = split_report(test, 100, 8)
    assert other is not None and other.commitment() != report.commitment()
    assert split_report(test, None, 7) == (None, test)
    with pytest.raises(ValueError, match="leaves nothing"):
        split_report(test, len(test), 7)


def test_federated_and_bagchain_data_hold_the_report_set_out() -> None:
    fed = federated_data(Experiment.from_mapping(DFL), 4)
    _, original = load_dataset("digits")
    assert fed.report is not None and len(fed.report) == 300 and len(fed.test) == len(original) - 300
    assert fed.reported is fed.report
    plain = federated_data(Experiment.from_mapping({k: v for k, v in DFL.items() if k != "report_set"}), 4)
    assert plain.report is None and plain.reported is plain.test and len(plain.test) == len(original)
    split = load_split(Experiment.from_mapping(BAGCHAIN), 4)
    assert split.report is not None and len(split.report) == 300
    assert len(split.validation) + len(split.test) == len(original) - 300


@pytest.mark.parametrize("value", [0, True, 1.5, "x"])
def test_report_set_must_be_a_positive_count(value: object) -> None:
    with pytest.raises(ValueError, match="report_set must be"):
        Experiment.from_mapping({**DFL, "report_set": value})


def test_label_flip_flips_the_first_shards() -> None:
    X = np.zeros((4, 2), dtype=np.float32)
    shards = [Dataset(X, np.array([0, 1, 2, 9]), 10, (2,), f"s{i}") for i in range(4)]
    out = flipped_shards(shards, 0.5)
    assert [s.y.tolist() for s in out] == [[1, 2, 3, 0], [1, 2, 3, 0], [0, 1, 2, 9], [0, 1, 2, 9]]
    assert flipped_shards(shards, 0.0) == tuple(shards)
    assert label_flip_of({}) == 0.0
    for bad in (1.0, -0.1, True, "x", float("nan")):
        with pytest.raises(ValueError, match="label_flip must be a fraction"):
            label_flip_of({"label_flip": bad})


def test_label_flip_is_a_key_of_every_existing_protocol() -> None:
    assert DflSettings.of(Experiment.from_mapping(DFL)).flippers == 1
    assert BflcSettings.of(Experiment.from_mapping(BFLC)).flippers == 2
    assert BagChainSettings.of(Experiment.from_mapping(BAGCHAIN)).flippers == 2
    with pytest.raises(ValueError, match="label_flip"):
        Experiment.from_mapping({**DFL, "protocol": {**DFL["protocol"], "label_flip": 2}})
    deployment = registry.get("dfl").build(Experiment.from_mapping(DFL))
    assert deployment.data["shard:0"].name.endswith("+flip") and not deployment.data["shard:1"].name.endswith("+flip")
    assert len(deployment.data["report"]) == 300


def _check(block: object) -> dict[str, Any]:
    assert isinstance(block, dict) and COMPARISON_KEYS <= set(block) <= COMPARISON_KEYS | OPTIONAL_KEYS
    assert 0.0 < block["accuracy"] <= 1.0
    assert len(block["history"]["rounds"]) == len(block["history"]["accuracy"]) > 0
    assert block["chain_bytes"] > 0 and block["blocks"] >= 1 and block["forks"] >= 0
    return block


def test_dfl_summary_has_the_comparison_block() -> None:
    block = _check(run(Experiment.from_mapping(DFL))["protocol_results"]["comparison"])
    assert block["honest_reward_share"] is None and block["forks"] == 0


def test_bflc_summary_has_the_comparison_block() -> None:
    results = run(Experiment.from_mapping(BFLC))
    block = _check(results["protocol_results"]["comparison"])
    assert block["blocks"] == 3 and block["history"]["rounds"] == [0, 1, 2] and block["clock"] == "height"
    assert 0.0 <= block["honest_reward_share"] <= 1.0
    trace = results["round_trace"]
    assert trace["heights"][-1] == 2 and trace["heights"] == sorted(trace["heights"])  # the chain's growth, traced


def test_bagchain_with_softmax_base_models_has_the_comparison_block() -> None:
    results = run(Experiment.from_mapping(BAGCHAIN))
    assert not results["truncated"]
    block = _check(results["protocol_results"]["comparison"])
    assert block["blocks"] == 1 and 0.0 <= block["honest_reward_share"] <= 1.0


def test_the_public_shard_is_held_out_of_the_participants_shards() -> None:
    exp = Experiment.from_mapping({**BFLC, "public_share": 0.1})
    fed = federated_data(exp, 6)
    plain = federated_data(Experiment.from_mapping(BFLC), 6)
    assert plain.public is None and fed.public is not None
    assert len(fed.public) == round(0.1 * len(fed.train))
    dealt = sum(len(s) for s in fed.shards)
    assert dealt <= len(fed.train) - len(fed.public) and dealt < sum(len(s) for s in plain.shards)
    public_rows = {row.tobytes() for row in fed.public.X}
    assert not any(row.tobytes() in public_rows for s in fed.shards for row in s.X[:50])
    again = federated_data(exp, 6)
    assert again.public is not None and again.public.commitment() == fed.public.commitment()
    zero = federated_data(Experiment.from_mapping({**BFLC, "public_share": 0.0}), 6)  # off: the same shards as before
    assert zero.public is None and [s.commitment() for s in zero.shards] == [s.commitment() for s in plain.shards]


@pytest.mark.parametrize("value", [1.0, -0.1, True, "x", float("nan")])
def test_public_share_must_be_a_fraction(value: object) -> None:
    for config in (BFLC, LEARNINGCHAIN, DFL):
        with pytest.raises(ValueError, match="public_share must be a fraction"):
            registry.get(config["protocol"]["name"]).validate(
                Experiment.from_mapping({**config, "public_share": value})
            )


def test_dfl_nodes_all_start_from_the_w0_pre_trained_on_the_public_shard() -> None:
    spec = registry.get("dfl")
    plain = spec.build(Experiment.from_mapping(DFL))
    public = spec.build(Experiment.from_mapping({**DFL, "public_share": 0.2}))
    assert "initial" not in plain.payload  # without a public shard every node initialises w0 from the seed
    assert (
        public.payload["initial"]
        == spec.build(Experiment.from_mapping({**DFL, "public_share": 0.2})).payload["initial"]
    )
    initial = bytes.fromhex(public.payload["initial"])
    assert initial and all(isinstance(n, DflNode) and n.initial == initial for n in public.nodes)


LEARNINGCHAIN: dict[str, Any] = {
    "name": "learningchain_world",
    "seed": 3,
    "dataset": "digits",
    "report_set": 300,
    "network": {"kind": "full", "delay_rounds": 1},
    "protocol": {"name": "learningchain", "nodes": 4, "select": 2, "rounds": 1, "model": {"family": "softmax"}},
}


@pytest.mark.parametrize("config", [BFLC, LEARNINGCHAIN], ids=["bflc", "learningchain"])
def test_genesis_w0_is_pre_trained_on_the_public_shard(config: dict[str, Any]) -> None:
    spec = registry.get(config["protocol"]["name"])
    plain = spec.build(Experiment.from_mapping(config))
    public = spec.build(Experiment.from_mapping({**config, "public_share": 0.2}))
    again = spec.build(Experiment.from_mapping({**config, "public_share": 0.2}))
    assert public.payload["genesis"] == again.payload["genesis"]  # deterministic in the seed
    assert public.payload["genesis"] != plain.payload["genesis"]
    before = run(Experiment.from_mapping(config))["protocol_results"]["initial_accuracy"]
    after = run(Experiment.from_mapping({**config, "public_share": 0.2}))["protocol_results"]["initial_accuracy"]
    assert after > before + 0.2  # w0 learnt something from the public shard
