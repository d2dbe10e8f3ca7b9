"""BFLC as live services over real gRPC: the results reader fetches the observer's chain through Peer.Serve; on
experiments/bflc_demo.yaml the final model is the simulator's within 2 pp."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scenarios.live_demo import assert_wire_bytes_of_the_same_kinds, live_and_simulated


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_bflc_demo_runs_as_live_services_and_agrees_with_the_simulator(tmp_path: Path) -> None:
    live, simulated = live_and_simulated("bflc_demo", tmp_path)
    assert_wire_bytes_of_the_same_kinds(live, simulated)
    assert live["tips_agree"] and not live["truncated"] and set(live["exit_codes"].values()) == {0}
    assert live["protocol_results"]["rounds_written"] == simulated["protocol_results"]["rounds_written"] == 5
    final = live["protocol_results"]["final_accuracy"]
    assert abs(final - simulated["protocol_results"]["final_accuracy"]) <= 0.02
    assert live["protocol_results"]["packed_malicious"] == 0
