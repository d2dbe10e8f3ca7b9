"""chainlab-netem: the network-emulator sidecar of one node (gRPC NetemNode, NetemPeer, NetemControl)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from chainlab.ledger.hashing import short
from chainlab.live import metrics
from chainlab.live.logs import configure_logging
from chainlab.live.netem.kernel import (
    KernelShaper,
    KernelShapingError,
    detect_device,
    peer_endpoints,
    subprocess_runner,
)
from chainlab.live.netem.links import DEFAULT_DEDUP_CAPACITY
from chainlab.live.netem.sidecar import DEFAULT_CALL_TIMEOUT, Sidecar
from chainlab.live.netem.topology import Topology, load_topology, parse_node_id
from chainlab.live.plan import NetworkPlan, bind_address
from chainlab.live.rounds import ROUND_SECONDS_ENV, resolve_round_seconds
from chainlab.live.server import add_service_arguments, running_server, stop_event_on_signals

SERVICE = "netem"
KERNEL_ENV = "CHAINLAB_NETEM_KERNEL"
log = logging.getLogger("chainlab.netem")


def parser() -> argparse.ArgumentParser:
    """The command line; every flag also defaults from a CHAINLAB_* environment variable."""
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="chainlab-netem",
        description="The netem sidecar: each node's only path to its peers.",
        epilog=(
            f"Seconds per round: --round-seconds, else ${ROUND_SECONDS_ENV} (the setting every service shares), "
            "else the topology file's round_seconds, else 1."
        ),
    )
    add_service_arguments(p, default_listen=None)
    p.add_argument(
        "--plan",
        type=Path,
        default=env("CHAINLAB_PLAN"),
        help="the network plan: with --name, gives the node ID, node address, ports and seed not given as flags",
    )
    p.add_argument("--name", default=env("CHAINLAB_NAME"), help="the node this sidecar serves, by its name in the plan")
    p.add_argument("--role", default=env("CHAINLAB_ROLE"), help="without --name: the node's role ...")
    p.add_argument("--index", default=env("CHAINLAB_INDEX"), help="... and its index in the role (a pod's ordinal)")
    p.add_argument(
        "--listen-host", default=env("CHAINLAB_LISTEN_HOST"), help="with --plan: listen on this host at the plan's port"
    )
    p.add_argument("--node-id", default=env("CHAINLAB_NODE_ID"), help="this node's ID (64 hex characters)")
    p.add_argument("--node", default=env("CHAINLAB_NODE"), help="host:port of this node's Peer server")
    p.add_argument("--topology", default=env("CHAINLAB_TOPOLOGY"), help="topology file (.yaml or .json)")
    p.add_argument(
        "--round-seconds", type=float, default=None, help=f"seconds per round (default: ${ROUND_SECONDS_ENV})"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=int(env("CHAINLAB_SEED", "-1")),
        help="network seed of the bandwidth and loss draws: the experiment's seed, as the simulator uses "
        "(default: the plan's, else 0)",
    )
    p.add_argument("--call-timeout", type=float, default=DEFAULT_CALL_TIMEOUT, help="bound on every outgoing call (s)")
    p.add_argument("--dedup-capacity", type=int, default=DEFAULT_DEDUP_CAPACITY, help="message IDs remembered")
    p.add_argument(
        "--kernel-shaping",
        action="store_true",
        default=env(KERNEL_ENV, "") in ("1", "true", "yes"),
        help=f"also enforce the links in the kernel (htb rates, iptables loss and cuts) on this network namespace's "
        f"interface; needs root with NET_ADMIN, iproute2 and iptables (default: ${KERNEL_ENV}=1)",
    )
    p.add_argument(
        "--kernel-device",
        default=env("CHAINLAB_NETEM_KERNEL_DEVICE"),
        help="with --kernel-shaping: the interface to shape (default: the one the routes to the peers leave by)",
    )
    p.add_argument(
        "--kernel-resolve-seconds",
        type=float,
        default=float(env("CHAINLAB_NETEM_KERNEL_RESOLVE_SECONDS", "60")),
        help="with --kernel-shaping: how long to wait for the peers' addresses to resolve (pods start together)",
    )
    return p


def from_plan(args: argparse.Namespace) -> None:
    """Fill what the flags left out from the plan's entry for --name (a container knows only its name)."""
    if args.plan is None:
        args.listen = args.listen or "127.0.0.1:0"
        args.seed = max(args.seed, 0)
        return
    plan = NetworkPlan.load(args.plan)
    entry = plan.find(args.name, args.role, args.index)
    args.node_id = args.node_id or entry.node_id
    args.node = args.node or entry.listen
    args.listen = args.listen or bind_address(entry.sidecar, args.listen_host)
    args.metrics_port = args.metrics_port or entry.sidecar_metrics_port
    if args.seed < 0:
        args.seed = int(plan.experiment.get("seed", 0))


def configure(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, bytes, Topology, float]:
    """Parse and check the command line: the namespace, node ID, topology and seconds per round."""
    p = parser()
    args = p.parse_args(argv)
    try:
        from_plan(args)
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    for flag in ("node_id", "node", "topology"):
        if not getattr(args, flag):
            p.error(f"--{flag.replace('_', '-')} is required")
    try:
        me = parse_node_id(args.node_id)
        topology = load_topology(args.topology)
        round_seconds, source = resolve_round_seconds(args.round_seconds, topology.round_seconds)
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    if me not in topology.nodes:
        p.error(f"--node-id {args.node_id} is not a node of {args.topology}")
    args.round_seconds_source = source
    return args, me, topology, round_seconds


def kernel_shaper(args: argparse.Namespace, me: bytes, topology: Topology) -> KernelShaper | None:
    """With --kernel-shaping, a started KernelShaper for this node's links; KernelShapingError names what is wrong."""
    if not args.kernel_shaping:
        return None
    deadline = time.monotonic() + max(0.0, args.kernel_resolve_seconds)
    while True:
        try:
            endpoints = peer_endpoints(topology, me)
            break
        except KernelShapingError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)
    runner = subprocess_runner()
    device = args.kernel_device or detect_device(endpoints, runner)
    shaper = KernelShaper(device, endpoints, runner, tag=short(me))
    shaper.start()
    return shaper


async def serve(
    args: argparse.Namespace, me: bytes, topology: Topology, round_seconds: float, kernel: KernelShaper | None = None
) -> None:
    """Run the sidecar until SIGTERM or SIGINT, then stop gracefully (removing any kernel rules)."""
    stop = stop_event_on_signals()
    try:
        sidecar = Sidecar(
            me,
            topology,
            args.node,
            round_seconds=round_seconds,
            seed=args.seed,
            call_timeout=args.call_timeout,
            dedup_capacity=args.dedup_capacity,
            kernel=kernel,
        )
    except KernelShapingError:
        if kernel is not None:
            kernel.stop()
        raise
    metrics_port = metrics.serve_metrics(args.metrics_port, args.metrics_host)
    try:
        async with running_server(SERVICE, args.listen, sidecar.register) as running:
            log.info(
                "netem ready",
                extra={
                    "node": me.hex(),
                    "port": running.port,
                    "metrics_port": metrics_port,
                    "neighbours": len(sidecar.table.links),
                    "round_seconds": round_seconds,
                    "round_seconds_from": args.round_seconds_source,
                    "kernel_shaping": kernel.device if kernel is not None else None,
                },
            )
            await stop.wait()
            log.info("stopping")
    finally:
        await sidecar.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point `chainlab-netem`."""
    args, me, topology, round_seconds = configure(argv)
    configure_logging(SERVICE, args.log_level)
    try:
        kernel = kernel_shaper(args, me, topology)
        asyncio.run(serve(args, me, topology, round_seconds, kernel))
    except KernelShapingError as exc:
        # A startup error, named: the sidecar must not run without the shaping it was asked for.
        log.error("kernel shaping failed", extra={"error": str(exc)})
        print(f"chainlab-netem: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
