"""ProcessGroup and `chainlab down`: children are recorded, stopped in order, and cleaned up after a crash."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest

from chainlab.live.processes import ProcessGroup, down, free_ports, remember


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


@pytest.mark.slow
def test_a_prometheus_kept_after_a_run_is_stopped_by_down(tmp_path: Path) -> None:
    """`up --keep-monitor` leaves Prometheus running and remembers it; `chainlab down` stops it."""
    from chainlab.cli import main
    from chainlab.live.launcher import MONITOR_STATE_FILE
    from chainlab.monitoring.prometheus import PrometheusServer

    server = PrometheusServer(tmp_path / "prometheus")
    server.start()
    pid = server.pid
    assert pid is not None
    remember(tmp_path / MONITOR_STATE_FILE, {"prometheus": pid})
    assert main(["down", "--out", str(tmp_path)]) == 0
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (tmp_path / MONITOR_STATE_FILE).exists()
    server.stop()  # reaps it
