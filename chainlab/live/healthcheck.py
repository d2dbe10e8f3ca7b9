"""`chainlab-health`: one grpc.health.v1 Check against a service, for container HEALTHCHECKs (exit 0 = SERVING)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from chainlab.live.plan import NetworkPlan

# Exit codes as Docker reads them: 0 healthy, 1 unhealthy. 2 is argparse's usage error, kept apart so a
# misconfigured check is told from a sick service in `docker inspect`.
HEALTHY, UNHEALTHY, MISCONFIGURED = 0, 1, 2
ADDRESS_ENV = "CHAINLAB_HEALTH_ADDRESS"
TARGET_ENV = "CHAINLAB_HEALTH_TARGET"
# Hosts a server binds to that a client cannot dial: check the same port on loopback instead.
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


class NoAddress(Exception):
    """Nothing in the flags, environment or plan says which address to check."""


def dialable(address: str) -> str:
    """The address to dial for a server listening on `address` (a wildcard host becomes 127.0.0.1)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise NoAddress(f"not HOST:PORT: {address!r}")
    return f"127.0.0.1:{port}" if host in _WILDCARD_HOSTS else address


def _from_plan(plan_path: str, env: Mapping[str, str], target: str) -> str:
    # The plan module imports nothing heavy, so a probe that runs every few seconds stays light.
    try:
        entry = NetworkPlan.load(Path(plan_path)).find(
            env.get("CHAINLAB_NAME"), env.get("CHAINLAB_ROLE"), env.get("CHAINLAB_INDEX")
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NoAddress(f"no address for this node in the plan {plan_path}: {exc}") from exc
    return entry.sidecar if target == "sidecar" else entry.listen


def resolve_address(address: str | None, target: str, env: Mapping[str, str]) -> str:
    """Which HOST:PORT to check: --address, else $CHAINLAB_HEALTH_ADDRESS, else the service's own $CHAINLAB_LISTEN
    (when it names a fixed port), else this node's (or, target "sidecar", its sidecar's) address in the plan."""
    if address:
        return dialable(address)
    if env.get(ADDRESS_ENV):
        return dialable(env[ADDRESS_ENV])
    listen = env.get("CHAINLAB_LISTEN", "")
    if listen and not listen.endswith(":0"):
        return dialable(listen)
    plan = env.get("CHAINLAB_PLAN")
    if plan:
        return dialable(_from_plan(plan, env, target))
    raise NoAddress(f"give --address HOST:PORT or set {ADDRESS_ENV} (or CHAINLAB_LISTEN, or CHAINLAB_PLAN)")


def check(address: str, service: str = "", timeout: float = 3.0) -> tuple[bool, str]:
    """One Check call: (serving?, what the server said or why it could not be asked)."""
    # Imported here so `--help` and address errors answer without loading gRPC.
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, status


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="chainlab-health",
        description="Ask a chainlab service's grpc.health.v1 whether it is SERVING (exit 0) or not (exit 1).",
        epilog=(
            f"Address: --address, else ${ADDRESS_ENV}, else $CHAINLAB_LISTEN (a fixed port), else the address of "
            f"$CHAINLAB_NAME in $CHAINLAB_PLAN (its sidecar's with --target sidecar or ${TARGET_ENV}=sidecar). "
            "Kubernetes uses its native grpc probes instead of this command."
        ),
    )
    p.add_argument("--address", help="HOST:PORT of the service's gRPC server (a 0.0.0.0 host means loopback)")
    p.add_argument(
        "--target",
        choices=("node", "sidecar"),
        default=os.environ.get(TARGET_ENV, "node"),
        help="which of a plan entry's addresses to check when the address comes from the plan",
    )
    p.add_argument("--service", default="", help="health service name (default: the whole server)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point `chainlab-health`."""
    p = parser()
    args = p.parse_args(argv)
    if args.target not in ("node", "sidecar"):
        p.error(f"${TARGET_ENV} must be node or sidecar, not {args.target!r}")
    try:
        address = resolve_address(args.address, args.target, os.environ)
    except NoAddress as exc:
        print(f"chainlab-health: {exc}", file=sys.stderr)
        return MISCONFIGURED
    serving, said = check(address, args.service, args.timeout)
    print(f"{address} {said}", file=sys.stdout if serving else sys.stderr)
    return HEALTHY if serving else UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
