from __future__ import annotations

import json

from rich.console import Console

from chainlab.k8s.status import collect, parse_metrics, status_table, tips, to_json
from tests.k8s.fake_apiserver import RECORDED, FakeApiServer, Reply, recorded

NS = "chainlab"
PODS = f"/api/v1/namespaces/{NS}/pods"


def proxy(pod: str) -> str:
    return f"{PODS}/{pod}:9000/proxy/metrics"


def ready_cluster() -> FakeApiServer:
    fake = FakeApiServer()
    fake.add("GET", PODS, recorded("pods_release_ready.json"))
    for node in ("miner-0", "miner-1", "miner-2", "validator-0"):
        fake.add("GET", proxy(f"chainlab-{node}"), recorded(f"metrics_{node}.txt"))
    fake.add("GET", proxy("chainlab-requester-7d9f8b6c5d-x2kq9"), recorded("metrics_requester-0.txt"))
    return fake


def test_parse_metrics_reads_height_round_tip_and_name() -> None:
    found = parse_metrics((RECORDED / "metrics_miner-0.txt").read_text())
    assert (found.height, found.round, found.tip, found.node) == (3, 57, "9f2c4e1a7b3d5f60", "miner-0")
    requester = parse_metrics((RECORDED / "metrics_requester-0.txt").read_text())
    assert requester.tip is None  # light clients export no tip
    assert parse_metrics("# nothing here\n").height is None


def test_ready_release_lists_every_pod_with_heights() -> None:
    fake = ready_cluster()
    with fake.running() as kube:
        rows = collect(kube, "chainlab", NS)
    listing = fake.requests("GET", PODS)
    assert listing[0].query == {"labelSelector": ["app.kubernetes.io/instance=chainlab"]}
    by_pod = {row.pod: row for row in rows}
    assert [row.node for row in rows[:5]] == ["miner-0", "miner-1", "miner-2", "validator-0", "requester-0"]
    assert [row.component for row in rows[5:]] == ["storage", "kubo", "loader"]
    assert all(row.ok for row in rows)
    assert by_pod["chainlab-miner-2"].height == 2 and by_pod["chainlab-miner-0"].round == 57
    assert (by_pod["chainlab-miner-0"].ready, by_pod["chainlab-miner-0"].containers) == (2, 2)
    assert by_pod["chainlab-loader-hk4zp"].status == "Completed" and by_pod["chainlab-loader-hk4zp"].height is None
    assert tips(rows) == {"9f2c4e1a7b3d5f60", "41d07c9e2b8a6f13"}
    # The pod proxy is asked for the node container's `metrics` port, once per node pod and never for others.
    proxied = [s for s in fake.seen if s.path.endswith("/proxy/metrics")]
    assert len(proxied) == 5
    assert any(s.raw_path == f"{PODS}/chainlab-miner-0%3A9000/proxy/metrics" for s in proxied)


def test_not_ready_pods_and_a_proxy_503_are_shown_not_raised() -> None:
    fake = FakeApiServer()
    fake.add("GET", PODS, recorded("pods_release_not_ready.json"))
    fake.add("GET", proxy("chainlab-miner-0"), recorded("metrics_miner-0.txt"))
    fake.add("GET", proxy("chainlab-miner-1"), recorded("status_proxy_503.json", 503))
    fake.add("GET", proxy("chainlab-miner-2"), recorded("status_proxy_503.json", 503))
    fake.add("GET", proxy("chainlab-requester-7d9f8b6c5d-x2kq9"), Reply(200, b"not an exposition {", "text/plain"))
    with fake.running() as kube:
        rows = collect(kube, "chainlab", NS)
    by_node = {row.node: row for row in rows if row.node}
    assert by_node["miner-0"].ok and by_node["miner-0"].height == 3
    assert by_node["miner-1"].ok and by_node["miner-1"].height is None
    assert by_node["miner-1"].error == "no answer: HTTP 503 Service Unavailable"
    crashing = by_node["miner-2"]
    assert (crashing.ok, crashing.status, crashing.ready, crashing.restarts) == (False, "CrashLoopBackOff", 1, 4)
    pending = by_node["validator-0"]
    assert (pending.ok, pending.status, pending.error) == (
        False,
        "ContainerCreating",
        "not running (ContainerCreating)",
    )
    assert not fake.requests("GET", proxy("chainlab-validator-0"))  # a pod that is not running is not asked
    assert by_node["requester-0"].error is not None and by_node["requester-0"].error.startswith("bad metrics")
    console = Console(record=True, width=200)
    console.print(status_table(rows, "t"))
    text = console.export_text()
    assert "CrashLoopBackOff" in text and "no answer: HTTP 503" in text
    assert json.loads(json.dumps(to_json(rows)))[2]["ok"] is False
