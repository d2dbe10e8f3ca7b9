"""What each service's container runs (image kind, command, arguments, environment): the one source for
`chainlab up --runtime docker` and the Helm chart, which reads the generated `helm/chainlab/files/containers.yaml`.

Containers learn everything per node from the network plan (addresses, ports, node ID, seed), so a node's
container differs from its peers' only in CHAINLAB_INDEX: the StatefulSet ordinal in Kubernetes, the slot's
index under docker. `python -m chainlab.live.containers --write` regenerates the chart's file; `--check` fails
when it is stale.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

CHART_FILE = Path(__file__).resolve().parents[2] / "helm" / "chainlab" / "files" / "containers.yaml"

# The downward-API field holding a StatefulSet pod's ordinal (a label since Kubernetes 1.28).
POD_INDEX_FIELD = "metadata.labels['apps.kubernetes.io/pod-index']"
# Node roles that run as one Deployment pod rather than a StatefulSet: their index is always 0.
SINGLE_POD_ROLES = ("requester",)
NODE_ROLES = ("miner", "validator", "requester")


@dataclass(frozen=True)
class Ports:
    """The fixed ports of a pod (Kubernetes); the plan repeats them for every node."""

    grpc: int = 7000
    netem: int = 7001
    metrics: int = 9000
    netem_metrics: int = 9001


@dataclass(frozen=True)
class Paths:
    """Where a container finds its inputs and may write."""

    plan_dir: str = "/etc/chainlab/plan"  # plan.json and topology.yaml (a ConfigMap; a bind mount under docker)
    config_dir: str = "/etc/chainlab/config"  # the experiment config (the loader Job's input)
    tmp: str = "/tmp"  # the only writable place of a node: the root filesystem is read-only
    ipfs: str = "/data/ipfs"  # the storage service's embedded Kubo repo (a volume)
    state: str = "/var/lib/chainlab"  # a node's own state, its block store (a volume: the StatefulSet's claim)

    @property
    def plan(self) -> str:
        """The plan file."""
        return f"{self.plan_dir}/plan.json"

    @property
    def topology(self) -> str:
        """The sidecars' topology file."""
        return f"{self.plan_dir}/topology.yaml"


PORTS = Ports()
PATHS = Paths()


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: a literal value or a downward-API field of the pod."""

    name: str
    value: str | None = None
    field_path: str | None = None

    def manifest(self) -> dict[str, object]:
        """The Kubernetes EnvVar object."""
        if self.field_path is not None:
            return {"name": self.name, "valueFrom": {"fieldRef": {"fieldPath": self.field_path}}}
        return {"name": self.name, "value": self.value}


@dataclass(frozen=True)
class Container:
    """A service's container: which image kind, the command and arguments, the environment in order."""

    image: str  # "node" (torch) or "slim" (storage, netem)
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[EnvVar, ...]

    def manifest(self) -> dict[str, object]:
        """The generated file's entry: image kind plus the Kubernetes container fields."""
        return {
            "image": self.image,
            "command": list(self.command),
            "args": list(self.args),
            "env": [e.manifest() for e in self.env],
        }

    def resolved_env(self, index: int) -> dict[str, str]:
        """The environment a process sees in the pod of this index (the one pod field used is the index)."""
        resolved: dict[str, str] = {}
        for var in self.env:
            if var.field_path is not None:
                if var.field_path != POD_INDEX_FIELD:
                    raise ValueError(f"{var.name}: no value for the pod field {var.field_path}")
                resolved[var.name] = str(index)
            else:
                resolved[var.name] = var.value or ""
        return resolved


def _node_identity(role: str) -> tuple[EnvVar, ...]:
    """Which node of the plan this pod is: its role and index."""
    index = (
        EnvVar("CHAINLAB_INDEX", "0")
        if role in SINGLE_POD_ROLES
        else EnvVar("CHAINLAB_INDEX", field_path=POD_INDEX_FIELD)
    )
    return (EnvVar("CHAINLAB_ROLE", role), index)


def _listening(host: str) -> tuple[EnvVar, ...]:
    """Listen on every interface of the pod (or host network) at the plan's ports, and write temp files in /tmp."""
    return (
        EnvVar("CHAINLAB_LISTEN_HOST", host),
        EnvVar("CHAINLAB_METRICS_HOST", host),
        EnvVar("TMPDIR", PATHS.tmp),
    )


def node_pod(role: str, listen_host: str = "0.0.0.0") -> dict[str, Container]:
    """A node's pod: the node service (image "node") and its netem sidecar (image "slim")."""
    identity = (*_node_identity(role), EnvVar("CHAINLAB_PLAN", PATHS.plan))
    state = EnvVar("CHAINLAB_STATE_DIR", PATHS.state)
    return {
        "node": Container("node", (f"chainlab-{role}",), (), (*identity, state, *_listening(listen_host))),
        "netem": Container(
            "slim",
            ("chainlab-netem",),
            (),
            (
                *identity,
                EnvVar("CHAINLAB_TOPOLOGY", PATHS.topology),
                EnvVar("CHAINLAB_HEALTH_TARGET", "sidecar"),  # the image's HEALTHCHECK asks the sidecar, not the node
                *_listening(listen_host),
            ),
        ),
    }


def storage_pod(grpc_port: int = PORTS.grpc, metrics_port: int = PORTS.metrics) -> dict[str, Container]:
    """The storage service (embedded Kubo; the chart adds CHAINLAB_IPFS_API when it runs Kubo beside it)."""
    env = (
        EnvVar("CHAINLAB_LISTEN", f"0.0.0.0:{grpc_port}"),
        EnvVar("CHAINLAB_METRICS_HOST", "0.0.0.0"),
        EnvVar("CHAINLAB_METRICS_PORT", str(metrics_port)),
        EnvVar("CHAINLAB_STORAGE_REPO", PATHS.ipfs),
        EnvVar("TMPDIR", PATHS.tmp),
    )
    return {"storage": Container("slim", ("chainlab-storage",), (), env)}


CHECK_TIMEOUT_SECONDS = 900


def tool_pods() -> dict[str, dict[str, Container]]:
    """The one-off pods that read a running network through its plan: the deployment test (`helm test`) and
    the results Job of `chainlab k8s results`."""
    env = (EnvVar("TMPDIR", PATHS.tmp),)
    check = (
        "check",
        "--plan",
        PATHS.plan,
        "--min-height",
        "1",
        "--agree",
        "--timeout-seconds",
        str(CHECK_TIMEOUT_SECONDS),
    )
    return {
        "check": {"check": Container("node", ("chainlab",), check, env)},
        "results": {"results": Container("node", ("chainlab",), ("results", "--plan", PATHS.plan), env)},
    }


def pods() -> dict[str, dict[str, Container]]:
    """Every pod kind of a network, by component, with its containers by name (as in Kubernetes)."""
    return {**{role: node_pod(role) for role in NODE_ROLES}, "storage": storage_pod(), **tool_pods()}


def chart_document() -> dict[str, object]:
    """The content of helm/chainlab/files/containers.yaml."""
    return {
        "ports": {
            "grpc": PORTS.grpc,
            "netem": PORTS.netem,
            "metrics": PORTS.metrics,
            "netem_metrics": PORTS.netem_metrics,
        },
        "paths": {
            "plan_dir": PATHS.plan_dir,
            "config_dir": PATHS.config_dir,
            "tmp": PATHS.tmp,
            "ipfs": PATHS.ipfs,
            "state": PATHS.state,
        },
        "pods": {
            component: {name: c.manifest() for name, c in containers.items()}
            for component, containers in pods().items()
        },
    }


class _PlainDumper(yaml.SafeDumper):
    """No anchors or aliases: a reader (and Helm's fromYaml) sees every value in place."""

    def ignore_aliases(self, data: object) -> bool:
        """Never alias."""
        return True


HEADER = "# Generated by `python -m chainlab.live.containers --write` from chainlab/live/containers.py: do not edit.\n"


def chart_text() -> str:
    """The generated file's text."""
    return HEADER + yaml.dump(chart_document(), Dumper=_PlainDumper, sort_keys=False, width=200)


def main(argv: list[str] | None = None) -> int:
    """Write or check the chart's containers.yaml."""
    parser = argparse.ArgumentParser(prog="python -m chainlab.live.containers", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {CHART_FILE}")
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from the code")
    args = parser.parse_args(argv)
    if args.write:
        CHART_FILE.write_text(chart_text())
        return 0
    if args.check:
        if not CHART_FILE.exists() or CHART_FILE.read_text() != chart_text():
            print(f"{CHART_FILE} is stale: run python -m chainlab.live.containers --write", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(chart_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
