import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from chainlab.live.errors import not_found
from chainlab.live.server import insecure_channel, running_server
from chainlab.proto.v1 import node_pb2, node_pb2_grpc


class _Node(node_pb2_grpc.NodeServicer):
    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def Status(self, request: node_pb2.StatusRequest, context: grpc.aio.ServicerContext) -> node_pb2.NodeStatus:
        if self.mode == "refuse":
            raise not_found("unknown_task", "abc")
        if self.mode == "crash":
            raise RuntimeError("boom")
        return node_pb2.NodeStatus(role="test")


def _register(mode: str):  # type: ignore[no-untyped-def]
    def register(server: grpc.aio.Server) -> list[str]:
        node_pb2_grpc.add_NodeServicer_to_server(_Node(mode), server)
        return ["chainlab.v1.Node"]

    return register


def _refusals(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "chainlab_grpc_refusals_total",
        {"service": "test", "method": "Status", "code": "NOT_FOUND", "reason": reason},
    )
    return value or 0.0


async def _call(mode: str) -> tuple[grpc.StatusCode, str, str]:
    async with (
        running_server("test", "127.0.0.1:0", _register(mode)) as running,
        insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="chainlab.v1.Node")
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        try:
            reply = await node_pb2_grpc.NodeStub(channel).Status(node_pb2.StatusRequest())
            return grpc.StatusCode.OK, "", reply.role
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or "", ""


def test_a_refusal_becomes_its_status_with_the_reason_and_is_counted() -> None:
    before = _refusals("unknown_task")
    code, details, _ = asyncio.run(_call("refuse"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details == "unknown_task: abc"
    assert _refusals("unknown_task") == before + 1


def test_an_unexpected_error_becomes_internal_and_the_server_keeps_serving() -> None:
    code, details, _ = asyncio.run(_call("crash"))
    assert code == grpc.StatusCode.INTERNAL
    assert "boom" in details
    assert asyncio.run(_call("ok")) == (grpc.StatusCode.OK, "", "test")


@pytest.mark.parametrize("mode", ["ok"])
def test_the_server_stops_and_frees_its_port(mode: str) -> None:
    async def run() -> int:
        async with running_server("test", "127.0.0.1:0", _register(mode)) as running:
            port = running.port
        async with running_server("test", f"127.0.0.1:{port}", _register(mode)) as again:
            return again.port

    assert asyncio.run(run()) > 0
