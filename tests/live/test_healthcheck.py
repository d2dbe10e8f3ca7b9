import socket
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from chainlab.live.healthcheck import (
    HEALTHY,
    MISCONFIGURED,
    UNHEALTHY,
    NoAddress,
    check,
    dialable,
    main,
    resolve_address,
)
from chainlab.live.plan import NetworkPlan, NodeEntry


class _Served:
    def __init__(self, server: grpc.Server, servicer: health.HealthServicer, port: int) -> None:
        self.server = server
        self.servicer = servicer
        self.port = port


@pytest.fixture
def served() -> Iterator[_Served]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("chainlab.v1.Node", health_pb2.HealthCheckResponse.NOT_SERVING)
    yield _Served(server, servicer, port)
    server.stop(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_serving_server_is_healthy(served: _Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--address", f"127.0.0.1:{served.port}"]) == HEALTHY
    assert capsys.readouterr().out.strip() == f"127.0.0.1:{served.port} SERVING"


def test_a_not_serving_service_is_unhealthy(served: _Served) -> None:
    assert check(f"127.0.0.1:{served.port}", "chainlab.v1.Node") == (False, "NOT_SERVING")
    assert main(["--address", f"127.0.0.1:{served.port}", "--service", "chainlab.v1.Node"]) == UNHEALTHY


def test_a_server_in_graceful_shutdown_is_unhealthy(served: _Served) -> None:
    served.servicer.enter_graceful_shutdown()
    assert main(["--address", f"127.0.0.1:{served.port}"]) == UNHEALTHY


def test_nothing_listening_is_unhealthy_within_the_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    assert main(["--address", f"127.0.0.1:{port}", "--timeout", "1"]) == UNHEALTHY
    said = capsys.readouterr().err
    assert said.startswith(f"127.0.0.1:{port} ")
    assert said.split()[1].rstrip(":") in {"UNAVAILABLE", "DEADLINE_EXCEEDED"}


def test_the_environment_address_is_the_default(served: _Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINLAB_HEALTH_ADDRESS", f"0.0.0.0:{served.port}")
    assert main([]) == HEALTHY


def test_no_address_anywhere_is_a_misconfiguration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CHAINLAB_HEALTH_ADDRESS", "CHAINLAB_LISTEN", "CHAINLAB_PLAN", "CHAINLAB_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert main([]) == MISCONFIGURED
    assert "--address" in capsys.readouterr().err


def test_resolution_order() -> None:
    env = {"CHAINLAB_HEALTH_ADDRESS": "10.0.0.1:1", "CHAINLAB_LISTEN": "0.0.0.0:7000"}
    assert resolve_address("10.0.0.2:2", "node", env) == "10.0.0.2:2"
    assert resolve_address(None, "node", env) == "10.0.0.1:1"
    assert resolve_address(None, "node", {"CHAINLAB_LISTEN": "0.0.0.0:7000"}) == "127.0.0.1:7000"
    with pytest.raises(NoAddress):  # port 0 (any) says nothing about where the service ended up
        resolve_address(None, "node", {"CHAINLAB_LISTEN": "127.0.0.1:0"})


def _write_plan(path: Path, *addresses: tuple[str, str]) -> Path:
    """A plan of miners at (listen, sidecar) addresses."""
    nodes = [NodeEntry(f"miner-{k}", "miner", k, "00" * 32, a, b, 9000, 9001) for k, (a, b) in enumerate(addresses)]
    NetworkPlan(experiment={}, round_seconds=1.0, epoch=0.0, storage="storage:7000", nodes=nodes).dump(path)
    return path


def test_the_plan_gives_a_node_or_its_sidecar_by_name_or_by_role_and_index(tmp_path: Path) -> None:
    plan = _write_plan(
        tmp_path / "plan.json", ("0.0.0.0:7000", "0.0.0.0:7001"), ("miner-1.example:7000", "miner-1.example:7001")
    )
    env = {"CHAINLAB_PLAN": str(plan), "CHAINLAB_NAME": "miner-0"}
    assert resolve_address(None, "node", env) == "127.0.0.1:7000"
    assert resolve_address(None, "sidecar", env) == "127.0.0.1:7001"
    pod = {"CHAINLAB_PLAN": str(plan), "CHAINLAB_ROLE": "miner", "CHAINLAB_INDEX": "1"}
    assert resolve_address(None, "sidecar", pod) == "miner-1.example:7001"
    with pytest.raises(NoAddress, match="miner-7"):
        resolve_address(None, "node", {**env, "CHAINLAB_NAME": "miner-7"})
    with pytest.raises(NoAddress, match="index 7"):
        resolve_address(None, "node", {**pod, "CHAINLAB_INDEX": "7"})
    with pytest.raises(NoAddress, match=r"absent\.json"):
        resolve_address(None, "node", {**env, "CHAINLAB_PLAN": str(tmp_path / "absent.json")})


def test_the_target_comes_from_the_environment(
    tmp_path: Path, served: _Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _write_plan(tmp_path / "plan.json", (f"127.0.0.1:{_free_port()}", f"0.0.0.0:{served.port}"))
    monkeypatch.delenv("CHAINLAB_HEALTH_ADDRESS", raising=False)
    monkeypatch.delenv("CHAINLAB_LISTEN", raising=False)
    monkeypatch.setenv("CHAINLAB_PLAN", str(plan))
    monkeypatch.setenv("CHAINLAB_NAME", "miner-0")
    monkeypatch.setenv("CHAINLAB_HEALTH_TARGET", "sidecar")
    assert main([]) == HEALTHY
    monkeypatch.setenv("CHAINLAB_HEALTH_TARGET", "nonsense")
    with pytest.raises(SystemExit):
        main([])


def test_dialable_rejects_what_is_not_host_port() -> None:
    assert dialable("[::]:7000") == "127.0.0.1:7000"
    assert dialable("storage:7000") == "storage:7000"
    for bad in ("storage", "storage:http", ""):
        with pytest.raises(NoAddress):
            dialable(bad)
