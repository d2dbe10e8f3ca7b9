"""The marketplace's spec: settings are validated by name, and experiments/datamarket_demo.yaml runs end to end in
the simulator with balances conserved, refunds and reports made, and the bad agent losing deposits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chainlab.learning import market_data
from chainlab.protocols.base import DataGrant, DataRequest, Observation
from chainlab.protocols.datamarket import OwnerNode
from chainlab.scenarios import registry
from chainlab.scenarios.datamarket.settings import MarketSettings
from chainlab.scenarios.datamarket.spec import SPEC, market_data_of
from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.scenarios.federated import federated_data
from chainlab.sim.experiment import run

DEMO = Path("experiments/datamarket_demo.yaml")
SMALL: dict[str, Any] = {
    "name": "datamarket_small",
    "seed": 5,
    "dataset": "digits",
    "network": {"kind": "full", "delay_rounds": 1},
    "protocol": {"name": "datamarket", "initial": 0.2, "day": 200, "days": 3, "contribute": 300},
}


def config(**protocol: object) -> Experiment:
    return Experiment.from_mapping({**SMALL, "protocol": {**SMALL["protocol"], **protocol}})


def test_the_registry_finds_the_marketplace() -> None:
    assert registry.get("datamarket") is SPEC


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"contributors": []}, "contributors"),
        ({"contributors": [{"behaviour": "sly"}]}, "behaviour"),
        ({"contributors": [{"behaviour": "good", "colour": 1}]}, "colour"),
        ({"initial": 1.0}, "initial"),
        ({"epochs": 0}, "epochs"),
        ({"label_flip": 1.0}, "label_flip"),
        ({"day": 0}, "day"),
        ({"reward_fund": 10**9}, "reward_fund"),
        ({"colour": "red"}, "unknown protocol parameter"),
        ({"task": "regression"}, "task"),
        ({"trainers": -1}, "trainers"),
        ({"cid_share": 1.5}, "cid_share"),
        ({"cid_samples": 0}, "cid_samples"),
    ],
)
def test_bad_settings_are_named(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**bad)


def test_label_flip_turns_the_first_contributors_bad() -> None:
    settings = MarketSettings.of(config(contributors=[{"behaviour": "good"}] * 4, label_flip=0.5))
    assert [a.behaviour for a in settings.contributors] == ["bad", "bad", "good", "good"]


def test_a_small_market_runs_and_conserves_value() -> None:
    results = run(config())
    pr = results["protocol_results"]
    assert results["tips_agree"] and not results["truncated"] and pr["revealed"] and pr["conserved"]
    assert pr["accepted_additions"] > 100 and pr["refunds"] > 0 and pr["reports"] > 0
    assert pr["final_balances"]["bad-1"] < pr["start_balances"]["bad-1"]
    comparison = pr["comparison"]
    assert comparison["blocks"] == pr["blocks"] > 0 and comparison["forks"] == 0 and comparison["chain_bytes"] > 0
    assert 0.5 < comparison["accuracy"] <= 1.0 and comparison["honest_reward_share"] > 0.5


def test_the_demo_runs_in_the_simulator() -> None:
    results = run(load_experiment(DEMO))
    pr = results["protocol_results"]
    assert results["tips_agree"] and not results["truncated"] and pr["revealed"] and pr["conserved"]
    samples = pr["accepted_additions"] - pr["cid_additions"] + pr["samples_by_cid"]
    assert samples >= 300 and pr["refunds"] > 100 and pr["reports"] > 20
    assert pr["cid_additions"] > 10 and pr["samples_by_cid"] >= 9 * pr["cid_additions"]  # files of 10 (the last fewer)
    uploads = pr["uploads"]
    assert uploads and [u["parent"] for u in uploads] == list(range(len(uploads)))  # each on the one before
    assert all(u["data_cids"] > 0 and u["accuracy"] is not None for u in uploads)
    assert pr["final_balance_malicious"] < 10_000
    assert pr["final_accuracy"] >= pr["initial_accuracy"] - 0.02
    assert set(pr["rejections"]) <= {"rf.model_disagrees", "rp.model_agrees", "add.too_soon", "rp.no_good_data"}


def test_records_become_metric_updates() -> None:
    def obs(event: str, **data: str | int | float) -> Observation:
        return Observation(0, 0, event, data)

    (balance,) = SPEC.metric_updates(obs("balance", account="ab", balance=7))
    assert balance.value == 7.0 and balance.labels == ("ab",)
    assert [u.name for u in SPEC.metric_updates(obs("tx_applied", kind="rp"))] == ["chainlab_datamarket_reports_total"]
    assert SPEC.metric_updates(obs("tx_applied", kind="pa")) == ()
    (accuracy,) = SPEC.metric_updates(obs("accuracy", accuracy=0.8))
    assert accuracy.value == 0.8


def test_the_owner_serves_its_test_set_only_once_revealed() -> None:
    exp = config()
    deployment = SPEC.build(exp)
    owner = deployment.by_name()["requester-0"]
    assert isinstance(owner, OwnerNode)
    commitment = deployment.data["test"].commitment()
    assert owner.on_request(b"x", DataRequest(commitment), 0) is None
    owner.state.revealed = True
    assert owner.on_request(b"x", DataRequest(commitment), 0) == DataGrant(commitment)
    assert owner.on_request(b"x", DataRequest(b"other"), 0) is None


def test_the_multiclass_task_deals_the_partition_and_runs_with_cids_and_a_trainer() -> None:
    exp = Experiment.from_mapping(
        {
            **SMALL,
            "public_share": 0.1,
            "report_set": 300,
            "partition": {"scheme": "dirichlet", "beta": 0.5},
            "protocol": {
                **SMALL["protocol"],
                "task": "multiclass",
                "contributors": [{"behaviour": "good"}] * 4,
                "label_flip": 0.25,
                "cid_share": 0.3,
                "trainers": 1,
                "trainer_every_days": 0.5,
            },
        }
    )
    initial, test, report, streams = market_data_of(exp, MarketSettings.of(exp))
    fed = federated_data(exp, 4)
    assert fed.public is not None and initial.commitment() == market_data.binary_features(fed.public).commitment()
    assert report is not None and len(report) == 300 and test.n_classes == 10
    assert sum(len(s) for s in streams) <= 300 and all(
        len(s) <= len(f) for s, f in zip(streams, fed.shards, strict=True)
    )
    results = run(exp)
    pr = results["protocol_results"]
    assert results["tips_agree"] and not results["truncated"] and pr["revealed"] and pr["conserved"]
    assert pr["accepted_additions"] > 20 and pr["cid_additions"] > 0 and pr["uploads"]
    assert pr["initial_accuracy"] > 0.5 and pr["comparison"]["accuracy"] == pr["final_accuracy"]
    assert pr["final_balances"]["bad-0"] < pr["start_balances"]["bad-0"]
