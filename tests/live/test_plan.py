"""The network plan: round trip, deployment order, and nodes rebuilt from it equal the deployment's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chainlab.live.plan import NetworkPlan
from chainlab.live.planning import dns_entries, node_entries
from chainlab.scenarios import registry
from chainlab.scenarios.experiment import Experiment
from tests.live.test_launcher import SMALL


def _plan() -> NetworkPlan:
    exp = Experiment.from_mapping(SMALL)
    deployment = registry.get("bagchain").build(exp)
    return NetworkPlan(
        dict(exp.raw), 0.1, 123.0, "127.0.0.1:1", node_entries(deployment.slots), deployment.payload,
        {"public": "Qm"}, {k: list(v) for k, v in deployment.holdings.items()}, deployment.private,
    )  # fmt: skip


def test_a_plan_round_trips_and_rebuilds_every_node_as_the_deployment_built_it(tmp_path: Path) -> None:
    plan = _plan()
    plan.dump(tmp_path / "plan.json")
    loaded = NetworkPlan.load(tmp_path / "plan.json")
    assert loaded == plan
    spec = registry.get("bagchain")
    deployment = spec.build(loaded.exp())
    # Deployment order is graph vertex order, in sim and live alike: miners, the requester, validators.
    assert [e.name for e in loaded.nodes] == ["miner-0", "miner-1", "miner-2", "requester", "validator-0"]
    for entry, built in zip(loaded.nodes, deployment.nodes, strict=True):
        rebuilt = spec.node(loaded.exp(), loaded.payload, entry.slot)
        assert (type(rebuilt), rebuilt.node_id, rebuilt.status()) == (type(built), built.node_id, built.status())
    assert loaded.holdings["miner-1"] == ["public"] and loaded.private["miner-1"] == "private:1"


def test_a_plan_refuses_unknown_names_and_keys_that_do_not_match() -> None:
    plan = _plan()
    with pytest.raises(ValueError, match="no node 'miner-9'"):
        plan.node("miner-9")
    forged = dataclasses.replace(plan.node("miner-0"), node_id="00" * 32)
    with pytest.raises(ValueError, match="does not match its key"):
        registry.get("bagchain").node(plan.exp(), plan.payload, forged.slot)


def test_pod_addresses_follow_the_host_template_and_a_template_may_name_only_role_and_index() -> None:
    deployment = registry.get("bagchain").build(Experiment.from_mapping(SMALL))
    entries = dns_entries(deployment.slots, "{role}-{index}.x")
    assert [e.listen for e in entries if e.role == "miner"] == ["miner-0.x:7000", "miner-1.x:7000", "miner-2.x:7000"]
    with pytest.raises(ValueError, match="may name only"):
        dns_entries(deployment.slots, "{pod}.x")


def test_a_node_state_belongs_to_its_node_and_to_one_run_of_the_network(tmp_path: Path) -> None:
    """Another node, or a new run of the same config (a new round 0), must not restore this store."""
    from chainlab.live.node_service import open_state, state_owner

    exp = Experiment.from_mapping(SMALL)
    deployment = registry.get("bagchain").build(exp)
    entries = node_entries(deployment.slots)
    plan = NetworkPlan(dict(exp.raw), 0.1, 100.0, "127.0.0.1:1", entries, deployment.payload)
    again = dataclasses.replace(plan, epoch=200.0)
    miner, other = plan.node("miner-0"), plan.node("miner-1")
    assert state_owner(plan, miner) != state_owner(plan, other)
    assert state_owner(plan, miner) != state_owner(again, miner)
    open_state(tmp_path, plan, miner).close()
    open_state(tmp_path, plan, miner).close()  # the same node of the same run: its own store
    with pytest.raises(ValueError):
        open_state(tmp_path, again, miner)
