"""The marketplace as live services over real gRPC: the results reader fetches the sealer's chain through
Peer.Serve; on experiments/datamarket_demo.yaml the live run closes its market as the simulator does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.console import Console

from chainlab.live.launcher import UpOptions, up
from chainlab.scenarios.experiment import load_experiment
from chainlab.sim.experiment import run

DEMO = Path("experiments/datamarket_demo.yaml")


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_the_datamarket_demo_runs_as_live_services_and_agrees_with_the_simulator(tmp_path: Path) -> None:
    exp = load_experiment(DEMO)
    options = UpOptions(exp, tmp_path, exp.live.round_seconds, timeout_seconds=400)
    live = asyncio.run(up(options, Console(), lambda h, r: None))
    simulated = run(exp)
    assert live["tips_agree"] and not live["truncated"] and set(live["exit_codes"].values()) == {0}
    pr, sim = live["protocol_results"], simulated["protocol_results"]
    assert pr["revealed"] and pr["conserved"]
    assert pr["accepted_additions"] >= 0.9 * sim["accepted_additions"] and pr["reports"] > 0
    assert abs(pr["final_accuracy"] - sim["final_accuracy"]) <= 0.02
