"""ProcessGroup and `chainlab down`: children are recorded, stopped in order, and cleaned up after a crash."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

from chainlab.live.processes import ProcessGroup, down, free_ports


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5 and all(p > 0 for p in ports)


def test_stop_terminates_children_and_removes_the_state_file(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path / "state.json", tmp_path / "logs")
    group.start("sleeper", "http.server", ["0", "--bind", "127.0.0.1"])
    assert [e["name"] for e in json.loads((tmp_path / "state.json").read_text())] == ["sleeper"]
    codes = group.stop(seconds=10)
    assert codes["sleeper"] is not None
    assert not (tmp_path / "state.json").exists()


def test_down_stops_what_a_crashed_up_left_and_ignores_recycled_pids(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path / "state.json", tmp_path / "logs")
    child = group.start("orphan", "http.server", ["0", "--bind", "127.0.0.1"])
    state = json.loads((tmp_path / "state.json").read_text())
    # A second entry whose PID is ours but whose start time is not: a recycled PID must be left alone.
    state.append({"name": "stranger", "pid": psutil.Process().pid, "create_time": 0.0})
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert down(tmp_path / "state.json", seconds=10) == ["orphan"]
    deadline = time.monotonic() + 10
    while child.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.process.poll() is not None
    assert psutil.Process().is_running()
    assert not (tmp_path / "state.json").exists()
    assert down(tmp_path / "state.json") == []
