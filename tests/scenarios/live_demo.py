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


def assert_wire_bytes_of_the_same_kinds(live: Results, simulated: Results) -> None:
    """Live counts bytes on the wire as the simulator does (chainlab.network.wire_bytes): every kind the
    simulator saw travel (payload, control, served) travels live too, and none that it did not."""
    live_wire, sim_wire = live["wire_bytes"], simulated["wire_bytes"]
    assert isinstance(live_wire, dict) and isinstance(sim_wire, dict)
    assert set(live_wire) == set(sim_wire)
    kinds = ("payload", "control", "served")
    assert {k: live_wire[k] > 0 for k in kinds} == {k: sim_wire[k] > 0 for k in kinds}
    assert live_wire["total"] == sum(live_wire[k] for k in kinds)
