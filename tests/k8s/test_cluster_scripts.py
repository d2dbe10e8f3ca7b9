"""deploy/k8s/*.sh run against stub tools (kind, minikube, kubectl, helm, docker, make) that log their arguments:
the order of steps and the flags each tool gets, without a cluster."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("kind", "nvkind", "minikube", "kubectl", "helm", "docker", "make", "chainlab")
STUB = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") $1" in
  "kubectl get") echo "containerd://1.7.24" ;;
  "minikube status") exit 1 ;;
  "docker save") touch "$3" ;;
esac
exit 0
"""


def run_script(tmp_path: Path, script: str, **env: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "STUB_LOG": str(log),
        "HELM": str(bin_dir / "helm"),
        "CHAINLAB_DOCKER": str(bin_dir / "docker"),
        "CHAINLAB": str(bin_dir / "chainlab"),
        "DOCKER_HOST": "unix:///run/chainlab-docker.sock",
        **env,
    }
    done = subprocess.run(
        ["bash", str(ROOT / "deploy/k8s" / script)], env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines()


def index(calls: list[str], prefix: str) -> int:
    return next(i for i, call in enumerate(calls) if call.startswith(prefix))


def test_kind_up_builds_loads_and_installs_in_order(tmp_path: Path) -> None:
    calls = run_script(tmp_path, "kind-up.sh", MONITORING="1", CHAOS="1")
    version = "0.1.0"
    assert calls[index(calls, "make")] == f"make -C {ROOT} images"
    save = calls[index(calls, "docker save")]
    assert f"chainlab/node:{version}" in save and f"chainlab/slim:{version}" in save
    create = calls[index(calls, "kind create cluster")]
    assert f"--config {ROOT}/deploy/kind/cluster.yaml" in create
    assert index(calls, "kind load image-archive") > index(calls, "kind create cluster")
    kps = calls[index(calls, "helm upgrade --install kube-prometheus-stack")]
    assert "--version 92.11.0" in kps and "--namespace monitoring" in kps
    chaos = calls[index(calls, "helm upgrade --install chaos-mesh")]
    assert "chaosDaemon.runtime=containerd" in chaos and "/run/containerd/containerd.sock" in chaos
    install = calls[index(calls, "helm upgrade --install chainlab")]
    assert f"images.tag={version}" in install and "deploy/kind/values.yaml" in install
    assert "deploy/k8s/chaos-values.yaml" in install and "monitoring.enabled=true" in install
    assert "--wait" not in install  # the node pods wait for the post-install hook's plan ConfigMap
    assert index(calls, "kubectl -n chainlab wait pod") > index(calls, "helm upgrade --install chainlab")
    assert calls[-1] == "chainlab k8s status --release chainlab -n chainlab"


def test_kind_up_gpu_uses_nvkind_and_the_gpu_operator(tmp_path: Path) -> None:
    calls = run_script(tmp_path, "kind-up.sh", GPU="1", IMAGES="skip")
    assert not any(call.startswith("make") for call in calls)
    assert "chainlab/node-gpu:0.1.0" in calls[index(calls, "docker save")]
    assert "deploy/kind/nvkind-template.yaml" in calls[index(calls, "nvkind cluster create")]
    assert "driver.enabled=false" in calls[index(calls, "helm upgrade --install gpu-operator")]
    assert "gpu.enabled=true" in calls[index(calls, "helm upgrade --install chainlab")]


def test_minikube_up_loads_images_and_uses_its_values(tmp_path: Path) -> None:
    calls = run_script(tmp_path, "minikube-up.sh", LOCUST="1")
    start = calls[index(calls, "minikube start")]
    assert "-p chainlab" in start and "--cni=calico" in start and "--gpus" not in start
    assert index(calls, "minikube -p chainlab image load") > index(calls, "minikube start")
    install = calls[index(calls, "helm upgrade --install chainlab")]
    assert "deploy/minikube/values.yaml" in install and "locust.enabled=true" in install


def test_kind_down_deletes_the_cluster(tmp_path: Path) -> None:
    assert run_script(tmp_path, "kind-down.sh") == ["kind delete cluster --name chainlab"]
    assert os.access(ROOT / "deploy/k8s/kind-up.sh", os.X_OK)
