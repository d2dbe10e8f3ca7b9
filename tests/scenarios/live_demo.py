"""The slow live tests' common start: a demo experiment run as live services over real gRPC, then simulated."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console

from chainlab.live.launcher import UpOptions, up
from chainlab.scenarios.experiment import load_experiment
from chainlab.scenarios.results import Results
from chainlab.sim.experiment import run


def live_and_simulated(demo: str, tmp_path: Path, timeout_seconds: float = 300.0) -> tuple[Results, Results]:
    """experiments/<demo>.yaml run live (its files under tmp_path, stopped after timeout_seconds), then in the
    simulator: both results."""
    exp = load_experiment(Path("experiments") / f"{demo}.yaml")
    options = UpOptions(exp, tmp_path, exp.live.round_seconds, timeout_seconds=timeout_seconds)
    live = asyncio.run(up(options, Console(), lambda h, r: None))
    return live, run(exp)
