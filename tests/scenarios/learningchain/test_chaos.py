"""LearningChain under chaos in simulation: an agent killed and restarted at genesis catches up by asking a peer."""

from __future__ import annotations

from pathlib import Path

from chainlab.scenarios.experiment import load_experiment
from chainlab.sim.experiment import run

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"


def test_a_restarted_agent_catches_up_and_the_network_ends_as_without_the_fault() -> None:
    restarted = run(load_experiment(EXPERIMENTS / "chaos" / "learningchain_restart.yaml"))
    clean = run(load_experiment(EXPERIMENTS / "learningchain_demo.yaml"))
    restart = next(c for c in restarted["chaos"] if c["action"] == "restart")
    assert restart["caught_up_after_rounds"]["miner-3"] is not None and restart["level_at_end"]["miner-3"]
    assert restarted["tips_agree"] and not restarted["truncated"]
    # What it missed is no peer's fault: the gradients of heights it left behind are stale, and the one block that
    # reached it before its parent waited for the catch-up.
    assert set(restarted["rejections"]) <= {"blk:unknown_parent", "msg:stale"}
    assert restarted["protocol_results"]["blocks"] == clean["protocol_results"]["blocks"] == 30
    final, reference = (r["protocol_results"]["final_accuracy"] for r in (restarted, clean))
    assert abs(final - reference) <= 0.01  # one honest holder of ten missing for seven heights
