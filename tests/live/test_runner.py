"""The live driver runs the same node objects in real time: 4 miners and a requester for 2 heights."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chainlab.live.runner import run_live
from chainlab.protocols.bagchain.messages import from_wire, to_wire
from chainlab.protocols.effects import EvaluateEnsemble
from chainlab.sim.report import figures
from chainlab.work import executor
from tests.bagchain_net import Experiment, Network, build

LIVE: dict[str, Any] = {
    "name": "live",
    "seed": 5,
    "dataset": "digits",
    "model": {"family": "decision_tree"},
    "metric_min": 0.3,
    "tasks": 2,
    "miners": 4,
    "validators": 1,
    "partition": {"kappa": 0.1, "zeta": 0.2},
    # Rounds of 0.1 s: Phase II leaves a second to fetch and evaluate models even on a loaded 2-core machine.
    "protocol": {"phase1_rounds": 20, "phase2_rounds": 15, "target": "2**250-1", "ensemble_wait_rounds": 10},
    "work": {"hash_trials_per_round": 8},
}


@pytest.mark.slow
def test_four_miners_and_a_requester_finish_two_heights_in_real_time() -> None:
    exp = Experiment.from_mapping(LIVE)
    deployment, raw = asyncio.run(run_live(exp, round_seconds=0.1, timeout_seconds=90))
    net, results = Network(deployment), figures(raw)
    assert raw["truncated"] is False
    assert [h["height"] for h in results["heights"]] == [1, 2]
    assert results["tips_agree"]
    assert results["rejections"] == {}
    assert all(h["miniblocks_used"] >= 2 for h in results["heights"])
    assert results["ensemble_accuracy"] > 0.5
    assert results["gossip_bytes"] > 0
    # BagChain's blocks are control; its models travel as answers to requests, through the store.
    wire = results["wire_bytes"]
    assert wire["payload"] == 0 and wire["control"] > 0 and wire["served"] > 0
    finished = net.requester.results()
    assert [r.height for r in finished] == [1, 2]
    assert all(r.winning_ensemble is not None for r in finished)


@pytest.mark.slow
def test_a_failing_evaluate_inside_a_node_is_retried_and_rejects_no_peer_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inject one exception into the first ensemble evaluation: an internal error, a retry, and no verdict on
    the honest peer whose MiniBlock was being evaluated."""
    real = executor.execute
    injected: list[str] = []

    def flaky(worker: Any, op: Any, datasets: Any, train: Any = None, private: Any = None) -> Any:
        if isinstance(op, EvaluateEnsemble) and not injected:
            injected.append("once")
            raise RuntimeError("injected evaluation failure")
        return real(worker, op, datasets, train, private)

    monkeypatch.setattr(executor, "execute", flaky)
    exp = Experiment.from_mapping({**LIVE, "tasks": 1})
    _, raw = asyncio.run(run_live(exp, round_seconds=0.1, timeout_seconds=90))
    assert injected == ["once"]
    assert sum(raw["internal_errors"].values()) == 1
    assert raw["rejections"] == {}
    assert raw["truncated"] is False
    assert len(figures(raw)["heights"]) == 1


def test_wire_round_trip_of_every_message_kind() -> None:
    net = build(Experiment.from_mapping({**LIVE, "miners": 1, "validators": 0}))
    task = net.tasks[0]
    assert from_wire(to_wire(task)) == task
    genesis = net.miners[0].genesis
    assert from_wire(to_wire(genesis)) == genesis
