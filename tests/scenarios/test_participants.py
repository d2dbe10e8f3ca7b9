"""The deployments of the protocols without roles (DFL, BFLC, LearningChain): slots, data and key checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chainlab.scenarios import registry
from chainlab.scenarios.experiment import load_experiment

DEMOS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize("demo", ["dfl_demo.yaml", "bflc_demo.yaml", "learningchain_demo.yaml"])
def test_every_peer_gets_a_slot_its_private_data_and_a_node_with_its_own_key(demo: str) -> None:
    exp = load_experiment(DEMOS / demo)
    spec = registry.get(exp.protocol_name)
    deployment = spec.build(exp)
    slots = deployment.slots
    assert [s.name for s in slots] == [f"miner-{i}" for i in range(len(slots))]
    assert [s.index for s in slots] == list(range(len(slots)))
    assert [node.node_id for node in deployment.nodes] == [s.node_id for s in slots]
    assert len({s.node_id for s in slots}) == len(slots)
    for slot in slots:
        assert deployment.private[slot.name] in deployment.data
        assert set(deployment.holdings[slot.name]) <= deployment.data.keys()
    forged = dataclasses.replace(slots[0], node_id=slots[1].node_id)
    with pytest.raises(ValueError, match="miner-0: node ID does not match its key"):
        spec.node(exp, deployment.payload, forged)
