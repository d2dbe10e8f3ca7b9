"""Child processes of `chainlab up`: started with their logs in files, remembered in a state file, stopped cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

STOP_SECONDS = 15.0


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Child:
    """One started service."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path


class ProcessGroup:
    """The services of one network; the state file lets `chainlab down` clean up after a crash."""

    def __init__(self, state_file: Path, log_dir: Path) -> None:
        self.state_file = state_file
        self.log_dir = log_dir
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(
        self, name: str, module: str, args: list[str], env: dict[str, str] | None = None, append: bool = False
    ) -> Child:
        """Run `python -m module args` with stdout and stderr in logs/<name>.log (appended to: a restart)."""
        log = self.log_dir / f"{name}.log"
        with log.open("ab" if append else "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # a Ctrl-C in the terminal reaches chainlab up, which stops them in order
            )
        child = Child(name, process, log)
        self.children.append(child)
        self._save()
        return child

    def get(self, name: str) -> Child:
        """The child called name (its latest start); ValueError naming the known ones otherwise."""
        for child in reversed(self.children):
            if child.name == name:
                return child
        raise ValueError(f"no process {name!r} (known: {', '.join(c.name for c in self.children)})")

    def stop(self, seconds: float = STOP_SECONDS) -> dict[str, int | None]:
        """SIGTERM everyone, newest first; SIGKILL whoever is left after `seconds`. Returns exit codes by name."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + seconds
        for child in reversed(self.children):
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(5)
        codes = {c.name: c.process.returncode for c in self.children}
        self.state_file.unlink(missing_ok=True)
        return codes

    def _save(self) -> None:
        remember(self.state_file, {c.name: c.process.pid for c in self.children if c.process.poll() is None})


def remember(state_file: Path, pids: dict[str, int]) -> None:
    """Write the processes `down` will stop: name, PID and start time (so a recycled PID is never taken for ours)."""
    state = [{"name": name, "pid": pid, "create_time": psutil.Process(pid).create_time()} for name, pid in pids.items()]
    state_file.write_text(json.dumps(state, indent=2))


def down(state_file: Path, seconds: float = STOP_SECONDS) -> list[str]:
    """Stop the processes a crashed `chainlab up` left behind; returns the names stopped."""
    if not state_file.exists():
        return []
    stopped, alive = [], []
    for entry in json.loads(state_file.read_text()):
        try:
            process = psutil.Process(int(entry["pid"]))
            # A recycled PID belongs to someone else: only a process started at the recorded time is ours.
            if abs(process.create_time() - float(entry["create_time"])) > 1e-3:
                continue
            process.terminate()
            alive.append(process)
            stopped.append(str(entry["name"]))
        except psutil.NoSuchProcess:
            continue
    _, survivors = psutil.wait_procs(alive, timeout=seconds)
    for process in survivors:
        process.kill()
    state_file.unlink(missing_ok=True)
    return stopped
