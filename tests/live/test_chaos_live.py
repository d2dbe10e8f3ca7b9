"""`chainlab up` runs an experiment's chaos scenario on its processes: SIGKILL, restart with the same command and
state directory, a partition and its heal through the sidecars; results.json reports each action."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chainlab.live.launcher import UpOptions, up
from chainlab.scenarios.experiment import Experiment
from tests.live.test_launcher import SMALL, _our_processes

CHAOS: list[dict[str, Any]] = [
    {"at": {"round": 0}, "partition": {"groups": [["miner-0"], ["miner-1", "miner-2", "validator-0", "requester"]]}},
    {"at": {"round": 5}, "kill": {"node": "miner-2"}},
    {"at": {"round": 10}, "heal": {}},
    {"at": {"round": 15}, "restart": {"node": "miner-2"}},
]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_scenario_runs_on_the_processes_and_is_reported(tmp_path: Path) -> None:
    exp = Experiment.from_mapping({**SMALL, "chaos": CHAOS})
    results = asyncio.run(up(UpOptions(exp, tmp_path, 0.1, timeout_seconds=240), Console(), lambda h, r: None))
    report = results["chaos"]
    assert [(e["action"], e["index"]) for e in report] == [("partition", 0), ("kill", 1), ("heal", 2), ("restart", 3)]
    rounds = [e["round"] for e in report]
    assert all(r is not None for r in rounds) and rounds == sorted(rounds) and rounds[3] >= 15
    assert all(e["seconds"] is not None for e in report)
    assert set(report[2]["caught_up_round"]) == {"miner-0", "miner-1", "miner-2", "validator-0", "requester"}
    assert report[3]["caught_up_round"]["miner-2"] is not None  # restarted before the first Key Block
    log = (tmp_path / "logs" / "miner-2.log").read_text()
    assert log.count('"round length"') == 2  # two starts, one log: the restart appended to it
    assert (tmp_path / "state" / "miner-2").is_dir()
    assert results["tips_agree"] and results["truncated"] is False
    assert results["exit_codes"]["miner-2"] == 0  # the restarted process, stopped cleanly at the end
    assert _our_processes(tmp_path) == []


def test_a_chaos_typo_is_named_before_anything_starts(tmp_path: Path) -> None:
    exp = Experiment.from_mapping({**SMALL, "chaos": [{"at": {"round": 1}, "kill": {"node": "miner-9"}}]})
    with pytest.raises(ValueError, match=r"chaos\[0\] kill: no node 'miner-9'"):
        asyncio.run(up(UpOptions(exp, tmp_path, 0.1), Console(), lambda h, r: None))
    assert _our_processes(tmp_path) == []


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_validator_killed_after_a_key_block_comes_back_on_its_state_and_keeps_its_chain(tmp_path: Path) -> None:
    """SIGKILL validator-0 in height 2's Phase II, restart it on the same state directory: it restores its chain
    from its store (not from height 0), catches up on what it missed, and ends on the common tip."""
    chaos = [
        # Phase II of height 2's work: well after height 1 was reached, so the validator has accepted Key Block 1.
        {"at": {"height": 2, "phase": 2}, "kill": {"node": "validator-0"}},
        {"at": {"height": 2, "phase": 3}, "restart": {"node": "validator-0"}},
    ]
    exp = Experiment.from_mapping({**SMALL, "tasks": 2, "chaos": chaos})
    results = asyncio.run(up(UpOptions(exp, tmp_path, 0.1, timeout_seconds=300), Console(), lambda h, r: None))
    kill, restart = results["chaos"]
    assert kill["round"] is not None and restart["round"] > kill["round"]
    assert restart["caught_up_round"]["validator-0"] is not None
    restored = [
        json.loads(line)
        for line in (tmp_path / "logs" / "validator-0.log").read_text().splitlines()
        if '"restored"' in line
    ]
    assert restored and restored[-1]["height"] >= 1 and restored[-1]["records"] > 0  # its chain, from its store
    assert results["tips_agree"] and results["truncated"] is False
    assert [h["height"] for h in results["protocol_results"]["heights"]] == [1, 2]
    assert results["exit_codes"]["validator-0"] == 0
