from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from rich.console import Console

from chainlab.k8s.cli import add_k8s_parser, run_k8s
from tests.k8s.fake_apiserver import FakeApiServer, recorded
from tests.k8s.test_results import EXPECTED, JOB, JOBS, cluster
from tests.k8s.test_status import ready_cluster


def kubeconfig(tmp_path: Path, port: int) -> Path:
    """A kubeconfig whose current context is the fake API server, with a bearer token."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: dev, user: {token: test-token}}]\n"
        "contexts: [{name: kind-chainlab, context: {cluster: fake, user: dev}}]\n"
        "current-context: kind-chainlab\n"
    )
    return path


def run(argv: list[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="chainlab")
    add_k8s_parser(parser.add_subparsers(dest="command", required=True))
    console = Console(record=True, width=220)
    code = run_k8s(parser.parse_args(argv), console)
    return code, console.export_text()


def test_status_table_and_exit_code(tmp_path: Path) -> None:
    fake = ready_cluster()
    with fake.running():
        code, text = run(["k8s", "status", "--kubeconfig", str(kubeconfig(tmp_path, fake.port))])
    assert code == 0, text
    assert "8/8 pods ready; 2 distinct tip(s)" in text
    assert "chainlab-miner-0" in text and "miner-0" in text
    assert fake.seen[0].authorization == "Bearer test-token"


def test_status_json_and_not_ready_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeApiServer()
    fake.add("GET", "/api/v1/namespaces/chainlab/pods", recorded("pods_release_not_ready.json"))
    with fake.running():
        code, _text = run(["k8s", "status", "--json", "--kubeconfig", str(kubeconfig(tmp_path, fake.port))])
    assert code == 1
    found = json.loads(capsys.readouterr().out)
    assert found["release"] == "chainlab" and len(found["pods"]) == 7
    assert {p["node"]: p["ok"] for p in found["pods"] if p["node"]}["miner-2"] is False


def test_results_writes_the_file_and_prints_the_table(tmp_path: Path) -> None:
    fake = cluster("complete")
    out = tmp_path / "out" / "results.json"
    with fake.running():
        code, text = run(["k8s", "results", "--kubeconfig", str(kubeconfig(tmp_path, fake.port)), "--out", str(out)])
    assert code == 0, text
    assert json.loads(out.read_text()) == EXPECTED
    assert "chainlab k8s results: chainlab" in text and "tips agree: True" in text
    assert len(fake.requests("DELETE", f"{JOBS}/{JOB}")) == 1


def test_failed_results_job_is_exit_2_with_the_log(tmp_path: Path) -> None:
    fake = cluster("failed", log="log_failed.txt", pods="pods_job_failed.json")
    with fake.running():
        code, text = run(["k8s", "results", "--kubeconfig", str(kubeconfig(tmp_path, fake.port))])
    assert code == 2
    assert f"Job {JOB} failed" in text and "Connection refused" in text
    assert not (tmp_path / "results.json").exists()


def test_unreachable_cluster_and_missing_kubeconfig_are_exit_2(tmp_path: Path) -> None:
    fake = FakeApiServer()
    with fake.running():
        config = kubeconfig(tmp_path, fake.port)
    code, text = run(["k8s", "status", "--kubeconfig", str(config)])  # the server is gone now
    assert code == 2 and "cannot reach the Kubernetes API server" in text
    code, text = run(["k8s", "status", "--kubeconfig", str(tmp_path / "absent")])
    assert code == 2 and "no Kubernetes cluster configured" in text
