"""BFLC as live services over real gRPC: the results reader fetches the observer's chain through Peer.Serve; on
experiments/bflc_demo.yaml the final model is the simulator's within 2 pp."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.console import Console

from chainlab.live.launcher import UpOptions, up
from chainlab.scenarios.experiment import load_experiment
from chainlab.sim.experiment import run

DEMO = Path("experiments/bflc_demo.yaml")


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_bflc_demo_runs_as_live_services_and_agrees_with_the_simulator(tmp_path: Path) -> None:
    exp = load_experiment(DEMO)
    options = UpOptions(exp, tmp_path, exp.live.round_seconds, timeout_seconds=300)
    live = asyncio.run(up(options, Console(), lambda h, r: None))
    simulated = run(exp)
    assert live["tips_agree"] and not live["truncated"] and set(live["exit_codes"].values()) == {0}
    assert live["protocol_results"]["rounds_written"] == simulated["protocol_results"]["rounds_written"] == 5
    final = live["protocol_results"]["final_accuracy"]
    assert abs(final - simulated["protocol_results"]["final_accuracy"]) <= 0.02
    assert live["protocol_results"]["packed_malicious"] == 0
