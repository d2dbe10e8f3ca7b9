"""Reading results from a network whose observer may be down: the first of the spec's candidates that answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from rich.console import Console

from chainlab.live import adapters, readout
from chainlab.live.launcher import UpOptions, up
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.planning import node_entries
from chainlab.proto.v1 import node_pb2
from chainlab.scenarios import registry
from chainlab.scenarios.experiment import Experiment
from tests.live.test_launcher import SMALL


def _plan() -> NetworkPlan:
    exp = Experiment.from_mapping({**SMALL, "validators": 2})
    deployment = registry.get("bagchain").build(exp)
    return NetworkPlan(
        dict(exp.raw), 0.1, 123.0, "127.0.0.1:1", node_entries(deployment.slots), deployment.payload,
        {"public": "Qm-public", "test": "Qm-test", "report": "Qm-report"},
        {k: list(v) for k, v in deployment.holdings.items()},
        deployment.private,
    )  # fmt: skip


def _status(role: str, *, syncing: bool = False, votes: bool = True) -> node_pb2.NodeStatus:
    reply = node_pb2.NodeStatus(role=role, height=1, tip=b"\x01" * 32, votes=votes)
    if syncing:
        reply.syncing = True  # type: ignore[attr-defined,unused-ignore]  # the field comes with catch-up
    return reply


def _replies(
    plan: NetworkPlan, down: set[str], syncing: frozenset[str] = frozenset(), byzantine: frozenset[str] = frozenset()
) -> dict[str, Any]:
    return {
        e.name: None if e.name in down else _status(e.role, syncing=e.name in syncing, votes=e.name not in byzantine)
        for e in plan.nodes
    }


def _unavailable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")


def test_bagchain_candidates_are_the_validators_then_the_miners() -> None:
    plan = _plan()
    spec = registry.get("bagchain")
    names = [s.name for s in spec.observers([e.slot for e in plan.nodes])]
    assert names == ["validator-0", "validator-1", "miner-0", "miner-1", "miner-2"]
    assert names[0] == spec.observer([e.slot for e in plan.nodes]).name  # the sim's observer comes first
    assert [s.name for s in registry.get("dfl").observers([e.slot for e in plan.nodes])] == [
        registry.get("dfl").observer([e.slot for e in plan.nodes]).name
    ]  # the default: the observer alone


def test_the_order_skips_nodes_that_do_not_answer_and_puts_catching_up_ones_last() -> None:
    plan = _plan()
    candidates = ["validator-0", "validator-1", "miner-0", "miner-1", "miner-2"]
    assert readout.observer_order(candidates, _replies(plan, {"validator-0"})) == candidates[1:]
    assert readout.observer_order(candidates, _replies(plan, set(candidates))) == []
    if "syncing" in node_pb2.NodeStatus.DESCRIPTOR.fields_by_name:
        order = readout.observer_order(candidates, _replies(plan, {"validator-0"}, frozenset({"validator-1"})))
        assert order == ["miner-0", "miner-1", "miner-2", "validator-1"]


def test_a_node_turned_byzantine_is_read_only_when_no_voting_node_answers() -> None:
    """Its tip does not vote and its view is not the network's; a syncing honest node still comes before it."""
    plan = _plan()
    candidates = ["validator-0", "validator-1", "miner-0", "miner-1", "miner-2"]
    replies = _replies(plan, {"validator-0", "validator-1"}, frozenset({"miner-2"}), frozenset({"miner-0"}))
    assert readout.observer_order(candidates, replies) == ["miner-1", "miner-2", "miner-0"]


def test_reading_moves_on_when_a_node_dies_after_it_answered_status() -> None:
    plan = _plan()
    tried: list[str] = []

    async def read(entry: NodeEntry) -> str:
        tried.append(entry.name)
        if entry.name == "validator-1":
            raise _unavailable()
        return f"view of {entry.name}"

    order = [plan.node(n) for n in ("validator-1", "miner-0", "miner-1")]
    found = asyncio.run(readout.read_first(order, read))
    assert found is not None and (found[0].name, found[1]) == ("miner-0", "view of miner-0")
    assert tried == ["validator-1", "miner-0"]
    assert asyncio.run(readout.read_first(order[:1], read)) is None


def _patch_network(monkeypatch: pytest.MonkeyPatch, plan: NetworkPlan, down: set[str]) -> list[str]:
    """Statuses as given, the adapter's read_view, storage and the summary faked: what read_results asked of whom."""
    asked: list[str] = []

    async def statuses(_: NetworkPlan) -> Mapping[str, Any]:
        return _replies(plan, down)

    class Adapter:
        @staticmethod
        async def read_view(plan: NetworkPlan, observer: NodeEntry, storage: Any) -> str:
            asked.append(observer.name)
            return f"view of {observer.name}"

    class Storage:
        def __init__(self, address: str) -> None: ...

        async def get(self, cid: str) -> bytes:
            return cid.encode()

        async def close(self) -> None: ...

    spec = registry.get("bagchain")
    monkeypatch.setattr(readout, "node_statuses", statuses)
    monkeypatch.setattr(adapters, "load", lambda name: Adapter)
    monkeypatch.setattr(readout, "StorageClient", Storage)
    monkeypatch.setattr(readout, "decode_dataset", lambda data: data.decode())
    monkeypatch.setattr(spec, "summarise", lambda exp, view, data, worker: {"view": view, "data": sorted(data)})
    return asked


def test_results_come_from_the_next_full_node_when_validator_0_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan()
    asked = _patch_network(monkeypatch, plan, {"validator-0"})
    results = asyncio.run(readout.read_results(plan, truncated=False, wall_seconds=1.0, round_seconds=0.1))
    assert asked == ["validator-1"] and results["observer"] == "validator-1"
    assert results["protocol_results"] == {"view": "view of validator-1", "data": ["public", "report", "test"]}
    assert results["truncated"] is False and "error" not in results


def test_no_full_node_answering_truncates_the_results_with_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = _plan()
    full_nodes = {"validator-0", "validator-1", "miner-0", "miner-1", "miner-2"}
    asked = _patch_network(monkeypatch, plan, full_nodes)
    results = asyncio.run(readout.read_results(plan, truncated=False, wall_seconds=1.0, round_seconds=0.1))
    assert asked == []
    assert results["truncated"] is True and results["protocol_results"] == {}
    assert results["error"] == (
        "no full node answered to read results from (tried validator-0, validator-1, miner-0, miner-1, miner-2)"
    )
    assert results["observer"] == "validator-0" and set(results["rejections_by_node"]) <= {"requester"}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_chainlab_up_reads_results_from_a_miner_when_the_validator_was_killed(tmp_path: Path) -> None:
    """The issue's case as real processes: validator-0 SIGKILLed mid-task; the others finish, and the results come
    from miner-0 (the next candidate), not a traceback."""
    exp = Experiment.from_mapping(SMALL)
    options = UpOptions(exp, tmp_path, 0.1, timeout_seconds=240, kill="validator-0", kill_after_seconds=0.5)
    results = asyncio.run(up(options, Console(), lambda height, round_: None))
    assert results["observer"] == "miner-0" and results["truncated"] is False and "error" not in results
    (row,) = results["protocol_results"]["heights"]
    assert row["height"] == 1 and row["ensemble_accuracy"] > 0.5
    assert results["exit_codes"]["validator-0"] == -9
    assert json.loads((tmp_path / "results.json").read_text())["observer"] == "miner-0"
