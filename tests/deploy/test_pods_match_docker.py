"""The chart's pods run what `chainlab up --runtime docker` runs: the same command, arguments and environment
(as the kubelet resolves it for the pod's ordinal) for every service of the same config.

Renders the chart with the real helm binary (the helm_bin fixture: `make chart-check` installs it).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from chainlab.live import containers
from chainlab.live.containers import POD_INDEX_FIELD
from chainlab.live.runtimes import run_argv

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "rel"
Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def render(helm_bin: str) -> Render:
    """Render the default chart with --set values."""

    def rendered(*values: str) -> list[dict[str, Any]]:
        argv = [helm_bin, "template", RELEASE, str(ROOT / "helm" / "chainlab"), "--namespace", "lab"]
        for value in values:
            argv += ["--set", value]
        text = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]

    return rendered


def _pod_templates(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each workload's pod spec by its component label (miner, validator, requester, storage, check)."""
    pods = {}
    for doc in docs:
        if doc["kind"] in ("StatefulSet", "Deployment", "Job"):
            template = doc["spec"]["template"]
        elif doc["kind"] == "Pod":
            template = doc
        else:
            continue
        pods[template["metadata"]["labels"]["app.kubernetes.io/component"]] = template["spec"]
    return pods


def _kubelet_env(env: list[dict[str, Any]], index: int) -> dict[str, str]:
    """What the process sees: literal values, and the pod-index label as the ordinal `index`."""
    resolved = {}
    for var in env:
        if "valueFrom" in var:
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": POD_INDEX_FIELD}}, var
            resolved[var["name"]] = str(index)
        else:
            resolved[var["name"]] = var["value"]
    return resolved


def _docker_process(argv: list[str], image: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment a `docker run` argv gives the container's process."""
    env = dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "--env")
    return argv[argv.index(image) + 1 :], env


@pytest.mark.parametrize("index", [0, 2])
def test_every_node_and_sidecar_container_runs_as_under_docker(index: int, render: Render) -> None:
    pods = _pod_templates(render())
    for role in ("miner", "validator", "requester"):
        rendered = {c["name"]: c for c in pods[role]["containers"]}
        for name, container in containers.node_pod(role).items():
            pod_index = 0 if role == "requester" else index
            chart = rendered[name]
            argv = run_argv(container, container.resolved_env(pod_index), "IMAGE", [], name="x")
            command, env = _docker_process(argv, "IMAGE")
            assert chart["command"] + chart["args"] == command, (role, name)
            assert _kubelet_env(chart["env"], pod_index) == env, (role, name)


def test_the_storage_container_runs_as_under_docker_plus_the_kubo_daemons_address(render: Render) -> None:
    (container,) = containers.storage_pod().values()
    _, docker_env = _docker_process(run_argv(container, container.resolved_env(0), "IMAGE", []), "IMAGE")
    embedded = {c["name"]: c for c in _pod_templates(render("kubo.enabled=false"))["storage"]["containers"]}
    assert _kubelet_env(embedded["storage"]["env"], 0) == docker_env
    assert embedded["storage"]["command"] == list(container.command)
    with_kubo = {c["name"]: c for c in _pod_templates(render("kubo.enabled=true"))["storage"]["containers"]}
    extra = _kubelet_env(with_kubo["storage"]["env"], 0).items() - docker_env.items()
    assert [name for name, _ in extra] == ["CHAINLAB_IPFS_API"]  # the chart runs Kubo beside storage


def test_the_helm_test_runs_the_deployment_check_as_the_docker_test_does(render: Render) -> None:
    (check,) = containers.tool_pods()["check"].values()
    pod = _pod_templates(render())["check"]
    (chart,) = pod["containers"]
    assert chart["command"] + chart["args"] == [*check.command, *check.args]
