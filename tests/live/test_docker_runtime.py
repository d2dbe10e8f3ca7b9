"""`chainlab up --runtime docker`: the network in containers of the chainlab images, with the pods' commands.

The end-to-end test needs the images (`make images`); it runs under `make test-images` only (marker `images`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chainlab.live import containers
from chainlab.live.launcher import LiveNetwork, UpOptions, up
from chainlab.live.runtimes import CONTAINERS_FILE, DockerRuntime, docker_client, run_argv
from chainlab.scenarios.experiment import Experiment
from chainlab.sim.experiment import run as simulate
from chainlab.sim.report import figures
from tests.live.test_launcher import SMALL


def test_docker_run_arguments_carry_the_pods_command_environment_and_restrictions() -> None:
    node = containers.node_pod("validator")["node"]
    argv = run_argv(node, node.resolved_env(0), "chainlab/node:dev", ["type=bind,src=/a,dst=/b,readonly"], name="n")
    assert argv[:4] == ["run", "--detach", "--name", "n"]
    assert argv[-1:] == ["chainlab-validator"] and argv[-2] == "chainlab/node:dev"
    for flag in ("--read-only", "--network", "--cap-drop", "--user", "--tmpfs", "--mount"):
        assert flag in argv
    assert "CHAINLAB_ROLE=validator" in argv and "CHAINLAB_INDEX=0" in argv and "CHAINLAB_LISTEN_HOST=0.0.0.0" in argv
    tool = containers.tool_pods()["results"]["results"]
    assert run_argv(tool, {}, "img", [])[:2] == ["run", "--rm"]


@pytest.mark.images
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_three_miners_finish_a_task_in_containers_and_the_pod_tools_read_the_network(tmp_path: Path) -> None:
    """The same network as the process test, every service in its container; then the helm test's check and
    the results Job's reader run in containers against it, as they would in a cluster."""
    exp = Experiment.from_mapping(SMALL)
    tools: dict[str, subprocess.CompletedProcess[str]] = {}

    async def run_tools(network: LiveNetwork) -> None:
        runtime = network.runtime
        assert isinstance(runtime, DockerRuntime)
        for tool in ("check", "results"):
            tools[tool] = await asyncio.to_thread(runtime.run_tool, tool)

    options = UpOptions(exp, tmp_path, 0.1, timeout_seconds=400, runtime="docker")
    raw = asyncio.run(up(options, Console(), lambda h, r: None, after=run_tools))
    results: dict[str, Any] = figures(raw)
    (row,) = results["heights"]
    assert row["height"] == 1 and row["ensemble_accuracy"] > 0.5
    assert row["predict_accuracy"] == pytest.approx(row["ensemble_accuracy"], abs=1e-6)
    assert results["tips_agree"] and results["rejections"] == {}
    simulated = figures(simulate(exp))
    assert abs(simulated["ensemble_accuracy"] - results["ensemble_accuracy"]) <= 0.02
    # The deployment test passes and the in-cluster reader gives the same chain as `chainlab up` read.
    assert tools["check"].returncode == 0, tools["check"].stdout + tools["check"].stderr
    assert tools["results"].returncode == 0, tools["results"].stderr
    read = json.loads(tools["results"].stdout)
    assert read["truncated"] is False and read["observer"] == raw["observer"]
    assert figures(read)["heights"][0]["key_block"] == row["key_block"]
    # Every container stopped on SIGTERM with exit code 0 and is gone; logs were kept.
    assert set(raw["exit_codes"].values()) == {0}, raw["exit_codes"]
    assert not (tmp_path / CONTAINERS_FILE).exists()
    left = subprocess.run(
        [docker_client(), "ps", "-aq", "--filter", "label=chainlab.run"], capture_output=True, text=True
    )
    assert left.stdout.strip() == ""
    assert (tmp_path / "logs" / "miner-0.log").read_text()
