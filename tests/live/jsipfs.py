"""Test support: a real IPFS HTTP RPC daemon (js-ipfs, installed by `make test` into tools/js-ipfs) on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "js-ipfs"
START = TOOLS / "start-daemon.sh"
STARTUP_SECONDS = 90.0


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require_installed() -> None:
    if os.environ.get("CHAINLAB_SKIP_JSIPFS") == "1":
        pytest.skip("CHAINLAB_SKIP_JSIPFS=1: the js-ipfs RPC daemon tests are switched off")
    if shutil.which("node") is None:
        pytest.fail("node is not installed, so the js-ipfs RPC daemon cannot run: run `make test`, which installs it")
    if not (TOOLS / "node_modules" / "ipfs" / "package.json").exists():
        pytest.fail(f"js-ipfs is not installed in {TOOLS}/node_modules: run `make test` (it runs npm ci there)")


def _answers(api_port: int) -> bool:
    request = urllib.request.Request(f"http://127.0.0.1:{api_port}/api/v0/version", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    # The daemon leads its own process group: signal the group so nothing it started outlives the test.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def jsipfs_daemon(workdir: Path) -> Iterator[str]:
    """Start js-ipfs with its repo in `workdir` (no swarm, no bootstrap, offline); yield its API multiaddr; kill it."""
    _require_installed()
    api_port, gateway_port = free_port(), free_port()
    log_path = workdir / "js-ipfs.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(START), str(workdir / "repo"), str(api_port), str(gateway_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(api_port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"js-ipfs did not start (exit {process.poll()}):\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield f"/ip4/127.0.0.1/tcp/{api_port}/http"
    finally:
        _stop(process)
