"""DFL as live services over real gRPC: the adapter reads every node's report through Peer.Serve and storage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.console import Console

from chainlab.live.launcher import UpOptions, up
from tests.scenarios.dfl.test_spec import exp


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dfl_runs_as_live_services(tmp_path: Path) -> None:
    e = exp(duration=40, tx_per_block=2, attack="none", record_every=10)
    live = asyncio.run(up(UpOptions(e, tmp_path, 0.1, timeout_seconds=150), Console(), lambda h, r: None))
    assert live["protocol"] == "dfl" and live["driver"] == "live" and live["truncated"] is False
    pr = live["protocol_results"]
    assert pr["honest_nodes"] == 3 and len(pr["nodes"]) == 3
    assert pr["accuracy"]["mean"] is not None and pr["blocks"] > 0
    assert set(live["exit_codes"].values()) == {0}
