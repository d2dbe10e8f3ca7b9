"""DFL as live services over real gRPC on experiments/dfl_demo.yaml: the adapter reads every node's report through
Peer.Serve and storage, and the result is the simulator's within 2 pp."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scenarios.live_demo import assert_wire_bytes_of_the_same_kinds, live_and_simulated


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_dfl_demo_runs_as_live_services_and_agrees_with_the_simulator(tmp_path: Path) -> None:
    live, simulated = live_and_simulated("dfl_demo", tmp_path)
    assert_wire_bytes_of_the_same_kinds(live, simulated)
    assert live["protocol"] == "dfl" and live["driver"] == "live" and live["truncated"] is False
    assert set(live) == set(simulated) and set(live["protocol_results"]) == set(simulated["protocol_results"])
    assert set(live["exit_codes"].values()) == {0} and live["rejections"] == {}
    pr = live["protocol_results"]
    assert pr["honest_nodes"] == 4 and pr["blocks"] > 0 and pr["confirmation_ratio"] >= 0.95
    assert abs(pr["accuracy"]["mean"] - simulated["protocol_results"]["accuracy"]["mean"]) <= 0.02
    # Every node accounted its CPU: the protocol core's share of it is a real, small fraction.
    assert set(live["cpu_by_node"]) == {f"miner-{i}" for i in range(4)}
    assert 0.0 < live["protocol_cpu_share"] < 0.5
