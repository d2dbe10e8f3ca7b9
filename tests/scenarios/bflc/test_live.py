"""BFLC as live services over real gRPC: the results reader fetches the observer's chain through Peer.Serve, and
the summary matches the simulator's in shape."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chainlab.live.launcher import UpOptions, up
from chainlab.scenarios.experiment import Experiment
from chainlab.sim.experiment import run

LIVE: dict[str, Any] = {
    "name": "bflc_live",
    "seed": 5,
    "dataset": "mnist5k",
    "partition": {"scheme": "iid", "zeta": 0.2},
    "network": {"kind": "full", "delay_rounds": 1},
    "protocol": {
        "name": "bflc",
        "nodes": 4,
        "rounds": 2,
        "active": 0.5,
        "committee": 0.5,
        "local_steps": 5,
        "round_deadline": 40,
        "leader_deadline": 40,
        "model": {"family": "softmax", "lr": 0.1},
    },
}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bflc_runs_as_live_services(tmp_path: Path) -> None:
    exp = Experiment.from_mapping(LIVE)
    live = asyncio.run(up(UpOptions(exp, tmp_path, 0.05, timeout_seconds=180), Console(), lambda h, r: None))
    simulated = run(exp)
    assert live["protocol"] == "bflc" and live["driver"] == "live"
    assert live["tips_agree"] and live["rejections"] == {} and not live["truncated"]
    assert live["protocol_results"]["rounds_written"] >= 2
    assert set(live["protocol_results"]) == set(simulated["protocol_results"])
