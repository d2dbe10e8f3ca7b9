from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chainlab.live.launcher import node_entries
from chainlab.live.plan import NetworkPlan
from chainlab.scenario import Experiment, build
from tests.live.test_launcher import SMALL


def _plan() -> NetworkPlan:
    exp = Experiment.from_mapping(SMALL)
    net = build(exp)
    return NetworkPlan(
        dict(exp.raw), 0.1, 123.0, "127.0.0.1:1", node_entries(net, exp),
        net.miners[0].genesis.encode().hex(), [t.encode().hex() for t in net.tasks], {"public": "Qm"},
    )  # fmt: skip


def test_a_plan_round_trips_and_rebuilds_keys_genesis_and_tasks(tmp_path: Path) -> None:
    plan = _plan()
    plan.dump(tmp_path / "plan.json")
    loaded = NetworkPlan.load(tmp_path / "plan.json")
    assert loaded == plan
    net = build(loaded.exp())
    assert loaded.genesis_block() == net.miners[0].genesis
    assert loaded.task_list() == net.tasks
    entry = loaded.node("miner-1")
    assert loaded.identity(entry).node_id == net.miners[1].node_id
    assert [e.name for e in loaded.nodes] == ["miner-0", "miner-1", "miner-2", "validator-0", "requester"]


def test_a_plan_refuses_unknown_names_and_keys_that_do_not_match() -> None:
    plan = _plan()
    with pytest.raises(ValueError, match="no node 'miner-9'"):
        plan.node("miner-9")
    forged = dataclasses.replace(plan.node("miner-0"), node_id="00" * 32)
    with pytest.raises(ValueError, match="does not match its key"):
        plan.identity(forged)
