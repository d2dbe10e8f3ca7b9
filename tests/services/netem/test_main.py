import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chainlab.live.netem.topology import LinkSpec, dump_topology, from_edges
from services.netem.main import configure

ME = bytes([1]) * 32
OTHER = bytes([2]) * 32


def _topology_file(folder: str, round_seconds: float | None = 0.4) -> str:
    topology = from_edges(
        {ME: "127.0.0.1:1", OTHER: "127.0.0.1:2"}, [(ME, OTHER)], spec=LinkSpec(), round_seconds=round_seconds
    )
    path = str(Path(folder) / "topology.yaml")
    dump_topology(topology, path)
    return path


def test_configure_reads_the_flags_and_resolves_round_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAINLAB_ROUND_SECONDS", raising=False)
    with tempfile.TemporaryDirectory() as folder:
        path = _topology_file(folder)
        base = ["--node-id", ME.hex(), "--node", "127.0.0.1:9", "--topology", path]
        args, me, topology, seconds = configure(base)
        assert (me, seconds, args.round_seconds_source) == (ME, 0.4, "file")
        assert set(topology.nodes) == {ME, OTHER}
        monkeypatch.setenv("CHAINLAB_ROUND_SECONDS", "0.2")
        assert configure(base)[3] == 0.2
        assert configure([*base, "--round-seconds", "0.1"])[3] == 0.1


@pytest.mark.parametrize(
    "argv",
    [
        ["--node", "a:1", "--topology", "{path}"],
        ["--node-id", "zz", "--node", "a:1", "--topology", "{path}"],
        ["--node-id", bytes([9]).hex() * 32, "--node", "a:1", "--topology", "{path}"],
        ["--node-id", ME.hex(), "--node", "a:1", "--topology", "{path}.missing"],
        ["--node-id", ME.hex(), "--node", "a:1", "--topology", "{path}", "--round-seconds", "0"],
    ],
)
def test_configure_refuses_bad_command_lines(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _topology_file(folder)
        with pytest.raises(SystemExit) as caught:
            configure([a.format(path=path) for a in argv])
        assert caught.value.code == 2


@pytest.mark.slow
def test_the_service_serves_health_and_stops_on_sigterm() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _topology_file(folder)
        env = {**os.environ, "CHAINLAB_LISTEN": "127.0.0.1:0", "CHAINLAB_METRICS_PORT": "0"}
        env.pop("CHAINLAB_ROUND_SECONDS", None)
        command = [sys.executable, "-m", "services.netem.main", "--node-id", ME.hex(), "--node", "127.0.0.1:9"]
        process = subprocess.Popen(
            [*command, "--topology", path], env=env, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3]
        )
        try:
            assert process.stderr is not None
            port = None
            deadline = time.monotonic() + 20
            while port is None and time.monotonic() < deadline:
                line = process.stderr.readline()
                if not line:
                    break
                record = json.loads(line)
                if record["msg"] == "netem ready":
                    port = record["port"]
                    assert record["round_seconds"] == 0.4
            assert port is not None, "the sidecar did not come up"
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="chainlab.v1.NetemControl"), timeout=5
                )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
