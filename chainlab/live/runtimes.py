"""Where `chainlab up` runs a network's services: as processes of this Python, or as containers of the images
`make images` builds (the commands, arguments and environment the Helm chart gives the pods)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Protocol

from chainlab.live import containers
from chainlab.live.containers import Container
from chainlab.live.plan import NodeEntry
from chainlab.live.planning import PLAN_FILE, TOPOLOGY_FILE
from chainlab.live.processes import ProcessGroup
from chainlab.live.rounds import ROUND_SECONDS_ENV

CONTAINERS_FILE = "containers.json"  # the containers a docker run started, for `chainlab down`
DOCKER_ENV = "CHAINLAB_DOCKER"  # the docker client to use (Debian's, which talks to the 20.10 engine)
IMAGE_TAG_ENV = "CHAINLAB_IMAGE_TAG"
DEFAULT_IMAGE_TAG = "dev"
CONTAINER_UID = "10001"
STATE_DIR = "state"  # <out>/state/<node>: each node service's own state (its block store), kept across a restart
STATE_DIR_ENV = "CHAINLAB_STATE_DIR"
STOP_SECONDS = 15


class Runtime(Protocol):
    """Starts a network's services and stops them; names are the plan's (storage, netem-miner-0, miner-0).

    start_* return once the service is launched, not ready: the launcher waits for its gRPC health. stop()
    stops everything it started, newest first, and returns exit codes by name; it is safe to call once.
    """

    def start_storage(self, port: int, metrics_port: int) -> None:
        """The storage service on port (gRPC) and metrics_port."""

    def start_netem(self, entry: NodeEntry) -> None:
        """The netem sidecar of one node."""

    def start_node(self, entry: NodeEntry) -> None:
        """One node's service (its role's)."""

    def alive(self, name: str) -> bool:
        """Whether the service is still running."""

    def kill(self, name: str) -> None:
        """SIGKILL one service (chaos)."""

    def restart(self, name: str) -> None:
        """Start a service again as it was started (same command, arguments and state), killing it first if it
        still runs (chaos)."""

    def log_tail(self, name: str, chars: int = 2000) -> str:
        """The end of a service's log."""

    def stop(self) -> dict[str, int | None]:
        """Stop every service; exit codes by name."""


class ProcessRuntime:
    """Every service a child process of this Python (`python -m services.<name>.main`), logs in <out>/logs."""

    def __init__(self, out: Path, round_seconds: float, seed: int, ipfs_api: str | None, state_file: str) -> None:
        self.out = out
        self.seed = seed
        self.ipfs_api = ipfs_api
        self.group = ProcessGroup(out / state_file, out / "logs")
        # A new run is a new network: the node states of an earlier run in this folder belong to another one.
        shutil.rmtree(out / STATE_DIR, ignore_errors=True)
        # The one setting every service shares (the storage service ignores it).
        self.env = {ROUND_SECONDS_ENV: str(round_seconds)}
        self.commands: dict[str, tuple[str, list[str], dict[str, str]]] = {}  # name -> module, args, env

    def _start(self, name: str, module: str, args: list[str], env: dict[str, str]) -> None:
        self.commands[name] = (module, args, env)
        self.group.start(name, module, args, env)

    def start_storage(self, port: int, metrics_port: int) -> None:
        """Storage with its Kubo repo in <out>/ipfs (or a Kubo daemon's RPC)."""
        args = ["--listen", f"127.0.0.1:{port}", "--metrics-port", str(metrics_port), "--repo", str(self.out / "ipfs")]
        if self.ipfs_api:
            args += ["--ipfs-api", self.ipfs_api]
        self._start("storage", "services.storage.main", args, self.env)

    def start_netem(self, entry: NodeEntry) -> None:
        """The sidecar with its addresses as flags."""
        args = ["--node-id", entry.node_id, "--node", entry.listen, "--topology", str(self.out / TOPOLOGY_FILE)]
        args += ["--listen", entry.sidecar, "--metrics-port", str(entry.sidecar_metrics_port), "--seed", str(self.seed)]
        self._start(f"netem-{entry.name}", "services.netem.main", args, self.env)

    def start_node(self, entry: NodeEntry) -> None:
        """The node's service, reading the plan, with its own state directory <out>/state/<name> (kept for a
        restart)."""
        args = ["--plan", str(self.out / PLAN_FILE), "--name", entry.name]
        state = self.out / STATE_DIR / entry.name
        state.mkdir(parents=True, exist_ok=True)
        self._start(entry.name, f"services.{entry.role}.main", args, {**self.env, STATE_DIR_ENV: str(state)})

    def alive(self, name: str) -> bool:
        """Whether the child has not exited."""
        return self.group.get(name).process.poll() is None

    def kill(self, name: str) -> None:
        """SIGKILL the child."""
        self.group.get(name).process.kill()

    def restart(self, name: str) -> None:
        """SIGKILL the child if it runs, then start the same command again, its log appended to."""
        child = self.group.get(name)
        if child.process.poll() is None:
            child.process.kill()
        child.process.wait(STOP_SECONDS)
        module, args, env = self.commands[name]
        self.group.start(name, module, args, env, append=True)

    def log_tail(self, name: str, chars: int = 2000) -> str:
        """The end of logs/<name>.log."""
        log = self.group.get(name).log
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def stop(self) -> dict[str, int | None]:
        """SIGTERM newest first, SIGKILL after the grace period."""
        return self.group.stop()


def docker_client() -> str:
    """The docker client: $CHAINLAB_DOCKER, else Debian's /usr/bin/docker, else docker on PATH."""
    chosen = os.environ.get(DOCKER_ENV) or ("/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker")
    if shutil.which(chosen) is None:
        raise RuntimeError(f"no docker client {chosen!r}: `make install-docker`, or set {DOCKER_ENV}")
    return chosen


def image_name(kind: str, tag: str) -> str:
    """The local image of a kind ("node", "slim") that `make images` builds."""
    return f"chainlab/{kind}:{tag}"


class DockerRuntime:
    """Every service a container on the host network, run with the containers module's command, arguments and
    environment (the pods'): read-only root, /tmp a tmpfs, non-root, no capabilities; plan files bind-mounted
    where the chart mounts its ConfigMap. Logs are copied to <out>/logs/<name>.log when the containers stop."""

    def __init__(self, out: Path, run_id: str, tag: str = DEFAULT_IMAGE_TAG, ipfs_api: str | None = None) -> None:
        self.out = out
        self.docker = docker_client()
        self.prefix = f"chainlab-{run_id}"
        self.tag = tag
        self.ipfs_api = ipfs_api
        self.started: list[str] = []
        (out / "logs").mkdir(parents=True, exist_ok=True)
        for kind in ("node", "slim"):
            if self._docker("image", "inspect", image_name(kind, tag), check=False).returncode != 0:
                raise RuntimeError(f"no image {image_name(kind, tag)}: build it with `make images`")

    def _docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.docker, *args], capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {args[0]} failed: {done.stderr.strip()[-500:]}")
        return done

    def container(self, name: str) -> str:
        """The container's name for a service."""
        return f"{self.prefix}-{name}"

    def run(self, name: str, container: Container, index: int, mounts: list[str]) -> None:
        """`docker run` one service as its pod would run it (pod index `index`)."""
        env = container.resolved_env(index)
        if container.command == ("chainlab-storage",) and self.ipfs_api:
            env["CHAINLAB_IPFS_API"] = self.ipfs_api
        image = image_name(container.image, self.tag)
        self._docker(*run_argv(container, env, image, mounts, {"chainlab.run": self.prefix}, self.container(name)))
        self.started.append(name)
        (self.out / CONTAINERS_FILE).write_text(json.dumps([self.container(n) for n in self.started], indent=2))

    def run_tool(self, tool: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        """Run a tool pod's container (containers.tool_pods: check, results) to completion against this network."""
        (container,) = containers.tool_pods()[tool].values()
        image = image_name(container.image, self.tag)
        argv = run_argv(container, container.resolved_env(0), image, self._plan_mounts())
        return subprocess.run([self.docker, *argv], capture_output=True, text=True, timeout=timeout)

    def _plan_mounts(self) -> list[str]:
        return [
            f"type=bind,src={(self.out / file).resolve()},dst={containers.PATHS.plan_dir}/{file},readonly"
            for file in (PLAN_FILE, TOPOLOGY_FILE)
        ]

    def start_storage(self, port: int, metrics_port: int) -> None:
        """Storage with its Kubo repo on an anonymous volume (removed with the container)."""
        pod = containers.storage_pod(port, metrics_port)
        self.run("storage", pod["storage"], 0, [f"type=volume,dst={containers.PATHS.ipfs}"])

    def start_netem(self, entry: NodeEntry) -> None:
        """The sidecar container of the node's pod."""
        self.run(f"netem-{entry.name}", containers.node_pod(entry.role)["netem"], entry.index, self._plan_mounts())

    def start_node(self, entry: NodeEntry) -> None:
        """The node container of the node's pod, its state on a volume of its own (kept across a restart)."""
        state = [f"type=volume,dst={containers.PATHS.state}"]
        self.run(entry.name, containers.node_pod(entry.role)["node"], entry.index, self._plan_mounts() + state)

    def alive(self, name: str) -> bool:
        """Whether the container is running."""
        done = self._docker("inspect", "--format", "{{.State.Running}}", self.container(name), check=False)
        return done.stdout.strip() == "true"

    def kill(self, name: str) -> None:
        """SIGKILL the container's process."""
        self._docker("kill", self.container(name))

    def restart(self, name: str) -> None:
        """Start the same container again (same command, arguments and state volume), killed first if it runs."""
        if self.alive(name):
            self.kill(name)
        self._docker("start", self.container(name))

    def log_tail(self, name: str, chars: int = 2000) -> str:
        """The end of the container's log."""
        done = self._docker("logs", "--tail", "200", self.container(name), check=False)
        return (done.stdout + done.stderr)[-chars:]

    def stop(self) -> dict[str, int | None]:
        """docker stop (SIGTERM, then SIGKILL after the grace period), newest first; logs saved; containers removed."""
        names = list(reversed(self.started))
        if names:
            self._docker("stop", "--time", str(STOP_SECONDS), *(self.container(n) for n in names), check=False)
        codes: dict[str, int | None] = {}
        for name in reversed(names):
            done = self._docker("inspect", "--format", "{{.State.ExitCode}}", self.container(name), check=False)
            codes[name] = int(done.stdout.strip()) if done.returncode == 0 else None
            logs = self._docker("logs", self.container(name), check=False)
            (self.out / "logs" / f"{name}.log").write_text(logs.stdout + logs.stderr)
        if names:
            self._docker("rm", "--force", "--volumes", *(self.container(n) for n in names), check=False)
        (self.out / CONTAINERS_FILE).unlink(missing_ok=True)
        return codes


def run_argv(
    container: Container,
    env: dict[str, str],
    image: str,
    mounts: list[str],
    labels: dict[str, str] | None = None,
    name: str | None = None,
) -> list[str]:
    """`docker run` arguments for a container as its pod runs it: host network, read-only root with /tmp a
    tmpfs, the image's non-root user, no capabilities; detached when named, else removed when it exits."""
    argv = ["run", "--detach", "--name", name] if name is not None else ["run", "--rm"]
    argv += ["--network", "host", "--read-only", "--tmpfs", containers.PATHS.tmp]
    argv += ["--user", f"{CONTAINER_UID}:{CONTAINER_UID}", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    for key, value in (labels or {}).items():
        argv += ["--label", f"{key}={value}"]
    for mount in mounts:
        argv += ["--mount", mount]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, image, *container.command, *container.args]


def docker_down(out: Path) -> list[str]:
    """Remove the containers a crashed `chainlab up --runtime docker` left behind; returns their names."""
    state = out / CONTAINERS_FILE
    if not state.exists():
        return []
    names = [str(n) for n in json.loads(state.read_text())]
    if names:
        subprocess.run([docker_client(), "rm", "--force", "--volumes", *names], capture_output=True, timeout=120)
    state.unlink()
    return names
