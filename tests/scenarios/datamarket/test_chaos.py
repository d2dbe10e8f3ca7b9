"""The marketplace under chaos in simulation: the sealer and an agent restarted on what they persisted."""

from __future__ import annotations

from pathlib import Path

from chainlab.scenarios.experiment import load_experiment
from chainlab.sim.experiment import run

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"


def test_a_restarted_sealer_goes_on_from_its_last_block_and_the_market_closes_as_without_the_fault() -> None:
    restarted = run(load_experiment(EXPERIMENTS / "chaos" / "datamarket_restart.yaml"))
    clean = run(load_experiment(EXPERIMENTS / "datamarket_demo.yaml"))
    assert restarted["tips_agree"] and not restarted["truncated"] and restarted["internal_errors"] == {}
    restarts = {c["node"]: c for c in restarted["chaos"] if c["action"] == "restart"}
    assert restarts["validator-0"]["caught_up_after_rounds"]["validator-0"] == 0  # it is the chain's source
    assert restarts["miner-0"]["caught_up_after_rounds"]["miner-0"] is not None
    # Without persistence the sealer came back at block 0: replicas refused its blocks (blk.bad_position) and the
    # market never closed. Now only what the restarted agent asks again is refused.
    assert set(restarted["rejections"]) <= {"add:too_soon", "rf:already_claimed", "rp:already_claimed"}
    assert restarted["protocol_results"]["revealed"] and clean["protocol_results"]["revealed"]
    assert restarted["protocol_results"]["conserved"]  # balances, escrow and pool still sum to the start
    accuracy, reference = (r["protocol_results"]["comparison"]["accuracy"] for r in (restarted, clean))
    assert abs(accuracy - reference) <= 0.01
