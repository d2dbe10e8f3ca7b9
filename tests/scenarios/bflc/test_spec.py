"""BFLC's spec: settings are validated, a config runs in the simulator for every method, results are complete."""

from __future__ import annotations

from typing import Any

import pytest

from chainlab.ledger import encoding
from chainlab.protocols.bflc import BflcNode
from chainlab.protocols.bflc.messages import Chain, ChainRequest
from chainlab.scenarios import registry
from chainlab.scenarios.bflc.settings import BflcSettings, malicious_ids
from chainlab.scenarios.bflc.spec import SPEC, identity_of
from chainlab.scenarios.experiment import Experiment
from chainlab.sim.experiment import run

SMALL: dict[str, Any] = {
    "name": "bflc_small",
    "seed": 3,
    "dataset": "mnist5k",
    "partition": {"scheme": "iid", "zeta": 0.15},
    "network": {"kind": "full", "delay_rounds": 1},
    "protocol": {
        "name": "bflc",
        "nodes": 6,
        "rounds": 2,
        "active": 0.5,
        "committee": 0.67,
        "malicious": 0.2,
        "local_steps": 5,
        "model": {"family": "softmax", "lr": 0.1},
    },
}


def config(**protocol: object) -> Experiment:
    return Experiment.from_mapping({**SMALL, "protocol": {**SMALL["protocol"], **protocol}})


def test_the_registry_finds_bflc() -> None:
    assert registry.get("bflc") is SPEC


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"nodes": 1}, "nodes"),
        ({"malicious": 1.0}, "malicious"),
        ({"model": {"family": "softmax", "depth": 3}}, "model"),
        ({"method": "krum"}, "method"),
        ({"colour": "red"}, "unknown protocol parameter"),
        ({"eval_every": 0}, "eval_every"),
    ],
)
def test_bad_settings_are_named(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**bad)


def test_attackers_are_drawn_from_the_seed_and_never_the_aggregator() -> None:
    exp = config(nodes=10, malicious=0.5)
    members = [identity_of(exp.seed, i).node_id for i in range(10)]
    bad = malicious_ids(exp, members)
    assert len(bad) == 5 and min(members) not in bad
    assert bad == malicious_ids(config(nodes=10, malicious=0.5, method="cwmed"), members)
    assert BflcSettings.of(exp).params.method == "bflc"


@pytest.mark.parametrize("method", ["bflc", "basic_fl", "cwmed"])
def test_a_small_network_runs_in_the_simulator(method: str) -> None:
    exp = config(method=method)
    results = run(exp)
    pr = results["protocol_results"]
    assert results["tips_agree"] and not results["truncated"]
    assert pr["rounds_written"] == 2 and pr["method"] == method
    assert isinstance(pr["final_accuracy"], float) and pr["final_accuracy"] > pr["initial_accuracy"]
    rows = pr["rounds"]
    assert [r["round"] for r in rows] == [0, 1]
    seats = 2 if method == "bflc" else 1
    assert rows[0]["units"] == 3 + 3 * seats + 5  # downloads + uploads per recipient + N - 1 block copies
    assert pr["malicious_nodes"] == 1


def test_the_observer_serves_the_chain_the_simulator_reads() -> None:
    exp = config()
    deployment = SPEC.build(exp)
    node = deployment.nodes[0]
    assert isinstance(node, BflcNode)
    answer = node.on_request(b"reader", ChainRequest(0), 0)
    assert isinstance(answer, bytes)
    assert encoding.decode(Chain, answer) == SPEC.sim_view(node, deployment.by_name())
    rebuilt = SPEC.node(exp, deployment.payload, deployment.slots[3])
    assert isinstance(rebuilt, BflcNode) and rebuilt.chain.genesis == node.chain.genesis


def test_the_same_config_gives_the_same_results() -> None:
    exp = config(rounds=1)
    assert run(exp)["protocol_results"] == run(exp)["protocol_results"]
