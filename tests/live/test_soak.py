"""make soak's verdict: what counts as a crash, a lost block and a node that never caught up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chainlab.live.soak import failure_codes, verdict

CLEAN: dict[str, Any] = {
    "protocol_results": {"heights": [{"height": 1}, {"height": 2}]},
    "exit_codes": {"miner-0": 0, "validator-0": 0},
    "tips_agree": True,
    "chaos": [{"action": "restart", "round": 9, "caught_up_after_rounds": {"miner-0": 4}}],
    "load": {"total": {"requests": 10, "failures": 0, "rps": 1.0}},
}


def test_a_clean_soak_is_ok_and_names_its_load() -> None:
    found = verdict(CLEAN, tasks=2)
    assert found["ok"] and found["tasks_completed"] == 2 and found["load"] == {"requests": 10, "failures": 0}
    assert found["crashes"] == [] and found["blocks_lost"] == [] and found["never_caught_up"] == []


def test_a_crash_a_lost_block_a_missing_task_and_a_node_that_never_caught_up_each_fail_it() -> None:
    assert verdict({**CLEAN, "exit_codes": {"miner-0": -9}}, tasks=2)["crashes"] == ["miner-0"]
    gap = verdict({**CLEAN, "protocol_results": {"heights": [{"height": 1}, {"height": 3}]}}, tasks=2)
    assert gap["blocks_lost"] == [2]
    assert not verdict(CLEAN, tasks=3)["ok"] and verdict(CLEAN, tasks=1)["ok"]  # run-time tasks count too
    assert verdict(CLEAN, tasks=2, failures={"UNAVAILABLE": 5})["ok"]  # a killed or catching-up node refuses
    assert not verdict(CLEAN, tasks=2, failures={"UNAVAILABLE": 5, "INTERNAL": 1})["ok"]
    never = verdict({**CLEAN, "chaos": [{"action": "heal", "round": 1, "caught_up_after_rounds": {"m": None}}]}, 2)
    assert never["never_caught_up"] == ["m"] and not never["ok"]
    assert not verdict({**CLEAN, "tips_agree": False}, tasks=2)["ok"]


def test_locust_failures_are_counted_by_grpc_status_code(tmp_path: Path) -> None:
    csv_file = tmp_path / "locust_failures.csv"
    csv_file.write_text(
        "Method,Name,Error,Occurrences,First Seen,Last Seen\n"
        'grpc,Tip,"<_InactiveRpcError status = StatusCode.UNAVAILABLE details = ""not_ready"">",4,a,b\n'
        'grpc,GetBlock,"<_InactiveRpcError status = StatusCode.UNAVAILABLE>",18,a,b\n'
        'grpc,Predict,"<_InactiveRpcError status = StatusCode.INTERNAL>",1,a,b\n'
    )
    assert failure_codes(csv_file) == {"UNAVAILABLE": 22, "INTERNAL": 1}
    assert failure_codes(tmp_path / "absent.csv") == {}
