import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from cid import make_cid  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from chainlab.live.ipfs import EmbeddedKubo, IpfsBackend
from chainlab.live.server import CHUNK_BYTES, STORAGE_MESSAGE_BYTES, running_server
from chainlab.live.storage_client import StorageClient, chunks
from services.storage.servicer import StorageServicer, registrar
from tests.live.jsipfs import jsipfs_daemon

pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter:FutureWarning")

ROOT = Path(__file__).resolve().parents[3]
ABSENT = "QmX6knHemJSajoN851PY2EUc2bvakdsdMsaCDh3FpArSu8"  # well-formed; nothing here stores it
T = TypeVar("T")
# Far longer than a local blockstore lookup takes on a loaded machine; a backend that searched the network for a
# block it lacks (Kubo without routing searches forever) would not answer within it.
LOOKUP_DEADLINE = 30.0


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKubo]:
    node = EmbeddedKubo(tmp_path_factory.mktemp("kubo") / "repo")
    yield node
    node.close()


def _serve(
    backend: IpfsBackend,
    body: Callable[[StorageClient], Awaitable[T]],
    max_object_bytes: int = 64 * 1024 * 1024,
    deadline: float | None = None,
) -> T:
    """Run `body` against a real Storage server on a free loopback port (each call under `deadline` seconds when
    given), stopped afterwards."""

    async def run() -> T:
        servicer = StorageServicer(backend, max_object_bytes=max_object_bytes)
        async with (
            running_server("storage", "127.0.0.1:0", registrar(servicer), STORAGE_MESSAGE_BYTES) as running,
            StorageClient(f"127.0.0.1:{running.port}", timeout=deadline) as client,
        ):
            return await body(client)

    return asyncio.run(run())


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _refusals(method: str, code: str, reason: str) -> float:
    labels = {"service": "storage", "method": method, "code": code, "reason": reason}
    return _sample("chainlab_grpc_refusals_total", labels)


async def _refused(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=700))
def test_chunks_reassemble_and_each_fits(data: bytes, size: int) -> None:
    pieces = list(chunks(data, size))
    assert b"".join(pieces) == data
    assert all(0 < len(piece) <= size for piece in pieces)
    assert len(pieces) == -(-len(data) // size)


def test_a_5mb_object_streams_through_grpc_and_its_cid_is_the_backends(backend: EmbeddedKubo) -> None:
    data = os.urandom(5 * 1024 * 1024 + 11)
    assert len(data) > STORAGE_MESSAGE_BYTES and len(data) > 5 * CHUNK_BYTES
    put_bytes = _sample("chainlab_storage_bytes_total", {"op": "put"})

    async def body(client: StorageClient) -> tuple[str, bytes]:
        cid = await client.put(data)
        return cid, await client.get(cid)

    cid, back = _serve(backend, body)
    assert back == data
    assert make_cid(cid).version == 0
    assert backend.add(data, pin=True) == cid
    assert _sample("chainlab_storage_bytes_total", {"op": "put"}) == put_bytes + len(data)


def test_pin_then_unpin_then_stat_shows_unpinned(backend: EmbeddedKubo) -> None:
    data = os.urandom(2 * CHUNK_BYTES)

    async def body(client: StorageClient) -> list[Any]:
        cid = await client.put(data, pin=False)
        return [
            await client.stat(cid),
            await client.pin(cid),
            (await client.stat(cid)).pinned,
            await client.unpin(cid),
            await client.stat(cid),
        ]

    before, pinned, stat_pinned, unpinned, after = _serve(backend, body)
    assert (before.size, before.pinned) == (len(data), False)
    assert pinned is True and stat_pinned is True and unpinned is False
    assert (after.size, after.pinned) == (len(data), False)


def test_an_unknown_cid_is_not_found_with_its_reason_and_counted(backend: EmbeddedKubo) -> None:
    before = {m: _refusals(m, "NOT_FOUND", "unknown_cid") for m in ("Get", "Stat", "Pin", "Unpin")}

    async def body(client: StorageClient) -> list[tuple[grpc.StatusCode, str]]:
        return [
            await _refused(client.get(ABSENT)),
            await _refused(client.stat(ABSENT)),
            await _refused(client.pin(ABSENT)),
            await _refused(client.unpin(ABSENT)),
        ]

    # A backend that searched the network for ABSENT would let the deadline pass: DEADLINE_EXCEEDED, not NOT_FOUND.
    for code, details in _serve(backend, body, deadline=LOOKUP_DEADLINE):
        assert code == grpc.StatusCode.NOT_FOUND
        assert details.startswith("unknown_cid") and ABSENT in details
    for method, count in before.items():
        assert _refusals(method, "NOT_FOUND", "unknown_cid") == count + 1


def test_a_malformed_cid_is_an_invalid_argument(backend: EmbeddedKubo) -> None:
    before = _refusals("Get", "INVALID_ARGUMENT", "bad_cid")

    async def body(client: StorageClient) -> list[tuple[grpc.StatusCode, str]]:
        return [await _refused(client.get("not-a-cid")), await _refused(client.stat("Qm123"))]

    for code, details in _serve(backend, body):
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("bad_cid")
    assert _refusals("Get", "INVALID_ARGUMENT", "bad_cid") == before + 1


def test_find_reads_a_stored_object_and_answers_none_for_an_unknown_or_malformed_cid(backend: EmbeddedKubo) -> None:
    async def body(client: StorageClient) -> list[bytes | None]:
        cid = await client.put(b"a contribution")
        return [await client.find(cid), await client.find(ABSENT), await client.find("not-a-cid")]

    assert _serve(backend, body, deadline=LOOKUP_DEADLINE) == [b"a contribution", None, None]


def test_an_oversized_object_is_refused_while_it_streams(backend: EmbeddedKubo) -> None:
    before = _refusals("Put", "INVALID_ARGUMENT", "object_too_large")

    async def body(client: StorageClient) -> tuple[grpc.StatusCode, str]:
        return await _refused(client.put(os.urandom(3 * CHUNK_BYTES + 1)))

    code, details = _serve(backend, body, max_object_bytes=3 * CHUNK_BYTES)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("object_too_large")
    assert _refusals("Put", "INVALID_ARGUMENT", "object_too_large") == before + 1


def test_a_chunk_over_the_chunk_size_is_refused_under_its_own_reason(backend: EmbeddedKubo) -> None:
    """The object would fit; one chunk of it does not: counted as chunk_too_large, not as object_too_large."""
    before = {r: _refusals("Put", "INVALID_ARGUMENT", r) for r in ("chunk_too_large", "object_too_large")}
    data = os.urandom(CHUNK_BYTES + 1)

    async def body(client: StorageClient) -> tuple[tuple[grpc.StatusCode, str], bytes]:
        oversized = StorageClient(channel=client.channel, chunk_bytes=CHUNK_BYTES + 1)
        refused = await _refused(oversized.put(data))
        return refused, await client.get(await client.put(data))  # the same object in regular chunks is stored

    (code, details), stored = _serve(backend, body, max_object_bytes=4 * CHUNK_BYTES)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == f"chunk_too_large: a chunk of {CHUNK_BYTES + 1} bytes > {CHUNK_BYTES}"
    assert stored == data
    assert _refusals("Put", "INVALID_ARGUMENT", "chunk_too_large") == before["chunk_too_large"] + 1
    assert _refusals("Put", "INVALID_ARGUMENT", "object_too_large") == before["object_too_large"]


def test_an_object_of_exactly_the_limit_is_accepted(backend: EmbeddedKubo) -> None:
    data = os.urandom(2 * CHUNK_BYTES)

    async def body(client: StorageClient) -> bytes:
        return await client.get(await client.put(data))

    assert _serve(backend, body, max_object_bytes=len(data)) == data


def test_an_empty_object_is_refused(backend: EmbeddedKubo) -> None:
    before = _refusals("Put", "INVALID_ARGUMENT", "empty_object")

    async def body(client: StorageClient) -> tuple[grpc.StatusCode, str]:
        return await _refused(client.put(b""))

    code, details = _serve(backend, body)
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "empty_object")
    assert _refusals("Put", "INVALID_ARGUMENT", "empty_object") == before + 1


def test_concurrent_clients_each_get_their_own_object(backend: EmbeddedKubo) -> None:
    blobs = [os.urandom(CHUNK_BYTES + i) for i in range(6)]

    async def body(client: StorageClient) -> list[bytes]:
        cids = await asyncio.gather(*(client.put(blob) for blob in blobs))
        return list(await asyncio.gather(*(client.get(cid) for cid in cids)))

    assert _serve(backend, body) == blobs


# --- The service as a process: `python -m services.storage.main`, stopped with SIGTERM ------------------------


class _Service:
    """A running storage service process and its JSON log lines."""

    def __init__(self, *flags: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.storage.main", "--listen", "127.0.0.1:0", "--metrics-port", "0", *flags],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                self.lines.put({"msg": "raw", "line": line})

    def wait_for(self, msg: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.get("msg") == msg:
                return line
        raise AssertionError(f"no {msg!r} log line (exit {self.process.poll()})")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _round_trip(port: int, data: bytes) -> tuple[bytes, bool]:
    async def run() -> tuple[bytes, bool]:
        async with StorageClient(f"127.0.0.1:{port}") as client:
            cid = await client.put(data)
            return await client.get(cid), (await client.stat(cid)).pinned

    return asyncio.run(run())


@pytest.mark.slow
def test_the_service_over_a_kubo_rpc_daemon_stores_and_stops_on_sigterm(tmp_path: Path) -> None:
    with jsipfs_daemon(tmp_path) as addr:
        service = _Service("--ipfs-api", addr)
        try:
            ready = service.wait_for("ready")
            assert ready["backend"] == "rpc"
            data = os.urandom(5 * 1024 * 1024)
            assert _round_trip(ready["port"], data) == (data, True)
            assert service.terminate() == 0
            service.wait_for("stopped", timeout=5)
        finally:
            service.kill()


@pytest.mark.slow
def test_the_embedded_service_removes_its_temporary_repo_on_sigterm() -> None:
    service = _Service()
    try:
        started = service.wait_for("embedded kubo started")
        ready = service.wait_for("ready")
        assert ready["backend"] == "embedded"
        assert Path(started["repo"]).exists()
        data = os.urandom(3 * CHUNK_BYTES)
        assert _round_trip(ready["port"], data) == (data, True)
        assert service.terminate() == 0
        assert not Path(started["repo"]).exists()
    finally:
        service.kill()


@pytest.mark.slow
def test_the_service_exits_when_the_rpc_daemon_is_unreachable() -> None:
    from tests.live.jsipfs import free_port

    service = _Service("--ipfs-api", f"/ip4/127.0.0.1/tcp/{free_port()}/http")
    try:
        line = service.wait_for("cannot start")
        assert "backend_unavailable" in line["error"]
        assert service.process.wait(timeout=15) == 1
    finally:
        service.kill()
