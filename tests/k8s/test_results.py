from __future__ import annotations

import json

import pytest

from chainlab.k8s.api import K8sError
from chainlab.k8s.results import ResultsFailed, extract_results, job_prefix, run_results
from tests.k8s.fake_apiserver import RECORDED, FakeApiServer, Reply, recorded

NS = "chainlab"
JOB = "chainlab-results-x7k2q"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
PODS = f"/api/v1/namespaces/{NS}/pods"
STS = f"/apis/apps/v1/namespaces/{NS}/statefulsets"
LOG = f"{PODS}/{JOB}-xk2p9/log"
EXPECTED = json.loads((RECORDED / "log_results_stdout.txt").read_text())


class Clock:
    """Virtual time: sleep advances it, so a timeout takes no wall time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1


def cluster(*job_states: str, log: str = "log_results_stdout.txt", pods: str = "pods_job.json") -> FakeApiServer:
    fake = FakeApiServer()
    fake.add("GET", STS, recorded("statefulsets_miner.json"))
    fake.add("POST", JOBS, recorded("job_created.json", 201))
    fake.add("GET", f"{JOBS}/{JOB}/status", *(recorded(f"job_{state}.json") for state in job_states))
    fake.add("GET", PODS, recorded(pods))
    fake.add("GET", LOG, recorded(log))
    fake.add("DELETE", f"{JOBS}/{JOB}", recorded("status_deleted_job.json"))
    return fake


def test_results_job_runs_in_the_node_image_and_returns_its_stdout() -> None:
    fake = cluster("running", "running", "complete")
    clock = Clock()
    with fake.running() as kube:
        name, results = run_results(kube, "chainlab", NS, 600, clock=clock, sleep=clock.sleep)
    assert name == JOB and results == EXPECTED
    assert clock.sleeps == 2
    assert fake.requests("GET", STS)[0].query == {
        "labelSelector": ["app.kubernetes.io/instance=chainlab,app.kubernetes.io/component=miner"]
    }
    job = fake.requests("POST", JOBS)[0].body
    assert job["metadata"]["generateName"] == "chainlab-results-" and "name" not in job["metadata"]
    assert job["metadata"]["labels"]["chainlab.dev/client"] == "true"
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["chainlab.dev/client"] == "true"
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "chainlab"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] > 600
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "chainlab/node:0.1.0" and container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["chainlab", "results", "--plan", "/etc/chainlab/plan/plan.json"]
    # The miner pod's restricted security contexts, copied; its GPU left behind.
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["plan"]["configMap"]["name"] == "chainlab-plan"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/etc/chainlab/plan", "/tmp"}
    assert fake.requests("GET", PODS)[0].query == {"labelSelector": [f"job-name={JOB}"]}
    assert fake.requests("GET", LOG)[0].query == {"container": ["results"], "stream": ["Stdout"]}
    assert fake.requests("DELETE", f"{JOBS}/{JOB}")[0].query == {"propagationPolicy": ["Background"]}


def test_interleaved_stdout_and_stderr_still_give_the_results() -> None:
    fake = cluster("complete", log="log_results_combined.txt")
    with fake.running() as kube:
        _name, results = run_results(kube, "chainlab", NS, 60)
    assert results == EXPECTED


def test_failed_job_raises_with_its_log_tail_and_is_deleted() -> None:
    fake = cluster("running", "failed", log="log_failed.txt", pods="pods_job_failed.json")
    clock = Clock()
    with fake.running() as kube, pytest.raises(ResultsFailed) as failed:
        run_results(kube, "chainlab", NS, 600, clock=clock, sleep=clock.sleep)
    message = str(failed.value)
    assert message.startswith(f"Job {JOB} failed; its log ends:")
    assert "StatusCode.UNAVAILABLE" in message
    assert fake.requests("GET", LOG)[0].query == {"container": ["results"], "tailLines": ["40"]}
    assert len(fake.requests("DELETE", f"{JOBS}/{JOB}")) == 1


def test_timeout_raises_with_the_log_so_far_and_deletes_the_job() -> None:
    fake = cluster("running", log="log_failed.txt")
    clock = Clock()
    with fake.running() as kube, pytest.raises(ResultsFailed, match=rf"Job {JOB} did not finish in 10 s"):
        run_results(kube, "chainlab", NS, 10, poll_seconds=2.0, clock=clock, sleep=clock.sleep)
    assert clock.now == 10.0 and len(fake.requests("GET", f"{JOBS}/{JOB}/status")) == 6
    assert len(fake.requests("DELETE", f"{JOBS}/{JOB}")) == 1


def test_no_release_is_a_clear_error_and_creates_nothing() -> None:
    fake = FakeApiServer()
    fake.add("GET", STS, recorded("statefulsets_none.json"))
    with fake.running() as kube, pytest.raises(K8sError, match="no miner StatefulSet of release 'other'"):
        run_results(kube, "other", NS, 60)
    assert not fake.requests("POST", JOBS)


def test_a_job_that_prints_no_json_is_an_error() -> None:
    fake = cluster("complete")
    fake.add("GET", LOG, Reply(200, b"Traceback (most recent call last):\nValueError: boom\n", "text/plain"))
    with fake.running() as kube, pytest.raises(ResultsFailed, match=r"printed no results\.json"):
        run_results(kube, "chainlab", NS, 60)
    assert len(fake.requests("DELETE", f"{JOBS}/{JOB}")) == 1


def test_extract_results_and_the_job_prefix() -> None:
    assert extract_results('{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError, match="not an object"):
        extract_results("[1, 2]")
    with pytest.raises(ValueError, match="no JSON object"):
        extract_results('{"ts": 1.0, "level": "info", "msg": "only a log line"}\nplain text\n')
    assert job_prefix("chainlab") == "chainlab-results-"
    assert len(job_prefix("x" * 80)) + 5 == 63
