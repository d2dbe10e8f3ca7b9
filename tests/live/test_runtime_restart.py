"""Runtime.restart: the same service started again with the same command, arguments and state directory."""

from __future__ import annotations

import time
from pathlib import Path

from chainlab.live.containers import PATHS, node_pod
from chainlab.live.runtimes import STATE_DIR_ENV, ProcessRuntime


def _wait_for(path: Path, text: str, count: int) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = path.read_text() if path.exists() else ""
        if found.count(text) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{path}: {text!r} not seen {count} times")


def test_a_restart_is_the_same_command_on_the_same_state(tmp_path: Path) -> None:
    runtime = ProcessRuntime(tmp_path, 0.1, 0, None, "processes.json")
    state = tmp_path / "state" / "miner-0"
    runtime._start("miner-0", "tests.live.sleeper", ["--name", "miner-0"], {STATE_DIR_ENV: str(state)})
    try:
        first = runtime.group.get("miner-0").process
        _wait_for(tmp_path / "logs" / "miner-0.log", "started", 1)
        runtime.kill("miner-0")
        first.wait(10)
        assert not runtime.alive("miner-0") and first.returncode == -9
        runtime.restart("miner-0")
        second = runtime.group.get("miner-0").process
        assert second.pid != first.pid and runtime.alive("miner-0")
        log = _wait_for(tmp_path / "logs" / "miner-0.log", "started", 2)  # appended, not overwritten
        assert log.count(f"started ['--name', 'miner-0'] state={state}") == 2
        runtime.restart("miner-0")  # a running service is killed first
        assert second.poll() is not None and runtime.group.get("miner-0").process.pid != second.pid
    finally:
        codes = runtime.stop()
    assert codes["miner-0"] is not None


def test_node_services_get_a_state_directory_of_their_own() -> None:
    env = {var.name: var.value for var in node_pod("miner")["node"].env}
    assert env["CHAINLAB_STATE_DIR"] == PATHS.state == "/var/lib/chainlab"  # the chart's state volume
    assert "CHAINLAB_STATE_DIR" not in {var.name for var in node_pod("miner")["netem"].env}
