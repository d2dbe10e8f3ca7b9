"""The commands a deployed network's pods run besides its services: `chainlab plan` (the loader Job lays out
the network and loads its data), `chainlab check` (the deployment test) and `chainlab results` (results.json
of a running network). Each needs only a plan and the network's gRPC services."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from chainlab.live.launcher import wait_healthy
from chainlab.live.plan import NetworkPlan
from chainlab.live.planning import dns_entries, network_plan, upload_datasets, write_plan
from chainlab.live.readout import network_problems, node_statuses, read_results, seconds_since_epoch
from chainlab.live.storage_client import StorageClient
from chainlab.scenarios import registry
from chainlab.scenarios.experiment import load_experiment

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
CHECK_EVERY_SECONDS = 5.0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The plan, check and results subcommands."""
    plan = sub.add_parser("plan", help="lay out a network for pods and load its data into storage (the loader Job)")
    plan.add_argument("--config", type=Path, required=True, help="the experiment config")
    plan.add_argument("--storage", required=True, help="the storage service's host:port")
    plan.add_argument(
        "--host-template", required=True, help="each node's DNS name, naming {role} and {index}, e.g. a pod's"
    )
    plan.add_argument("--round-seconds", type=float, help="seconds per round (default: the config's live section)")
    plan.add_argument("--out", type=Path, help="write plan.json and topology.yaml into this directory")
    plan.add_argument("--configmap", help="write them into this ConfigMap (in-cluster)")
    plan.add_argument("--owner-configmap", help="the release's ConfigMap that owns the plan (garbage collection)")
    plan.add_argument("--namespace", help="the ConfigMap's namespace (default: this pod's)")
    plan.add_argument("--replace", action="store_true", help="replace an existing plan (restarts the network's clock)")
    plan.add_argument("--wait-seconds", type=float, default=300.0, help="how long storage may take to come up")
    check = sub.add_parser("check", help="exit 0 once every node of a running network answers and agrees")
    check.add_argument("--plan", type=Path, required=True)
    check.add_argument("--min-height", type=int, default=1, help="every node at this chain height or above")
    check.add_argument("--agree", action="store_true", help="and every voting node on the same tip")
    check.add_argument("--timeout-seconds", type=float, default=900.0)
    results = sub.add_parser("results", help="results.json of a running network, on stdout")
    results.add_argument("--plan", type=Path, required=True)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run one of the subcommands."""
    if args.command == "plan":
        return asyncio.run(cmd_plan(args, console))
    if args.command == "check":
        return asyncio.run(cmd_check(NetworkPlan.load(args.plan), args, console))
    if args.command == "results":
        return asyncio.run(cmd_results(NetworkPlan.load(args.plan)))
    raise AssertionError(f"not a pod command: {args.command}")


async def cmd_plan(args: argparse.Namespace, console: Console) -> int:
    """Build the deployment from the config and seed, as `chainlab up` does; data into storage; plan out."""
    if (args.out is None) == (args.configmap is None):
        raise ValueError("give exactly one of --out and --configmap")
    api, namespace = None, ""
    if args.configmap is not None:
        from kubernetes import client

        from chainlab.k8s.api import connect
        from chainlab.k8s.plan_configmap import plan_exists, publish_plan

        api = client.CoreV1Api(connect())  # in a pod: its service account
        namespace = args.namespace or SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if plan_exists(api, namespace, args.configmap) and not args.replace:
            console.log(f"plan {namespace}/{args.configmap} exists: the network keeps it")
            return 0
    exp = load_experiment(args.config)
    spec = registry.get(exp.protocol_name)
    deployment = await asyncio.to_thread(spec.build, exp)
    entries = dns_entries(deployment.slots, args.host_template)
    console.log(f"{exp.name}: {len(entries)} nodes; waiting for storage at {args.storage}")
    await wait_healthy(args.storage, timeout=args.wait_seconds)
    storage = StorageClient(args.storage)
    try:
        data = await upload_datasets(deployment.data, storage)
    finally:
        await storage.close()
    console.log(f"loaded {len(data)} datasets: {', '.join(f'{k}={v}' for k, v in sorted(data.items()))}")
    round_seconds = args.round_seconds or exp.live.round_seconds
    plan, layout = network_plan(exp, deployment, entries, args.storage, data, round_seconds)
    if args.out is not None:
        write_plan(plan, layout, args.out)
        console.log(f"plan written to {args.out}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        files = write_plan(plan, layout, Path(scratch))
    assert api is not None
    outcome = publish_plan(api, namespace, args.configmap, files, args.owner_configmap, args.replace)
    console.log(f"plan {namespace}/{args.configmap} {outcome}")
    return 0


async def cmd_check(plan: NetworkPlan, args: argparse.Namespace, console: Console) -> int:
    """Poll every node until none has a problem (exit 0) or the time is up (exit 1, naming the problems)."""
    deadline = time.monotonic() + args.timeout_seconds
    while True:
        problems = network_problems(await node_statuses(plan), args.min_height, args.agree)
        if not problems:
            agreeing = " and agree on the tip" if args.agree else ""
            console.log(f"all {len(plan.nodes)} nodes at height >= {args.min_height}{agreeing}")
            return 0
        if time.monotonic() >= deadline:
            console.log(f"[red]not there after {args.timeout_seconds:.0f} s:[/red] {'; '.join(problems)}")
            return 1
        console.log(f"waiting: {'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}")
        await asyncio.sleep(CHECK_EVERY_SECONDS)


async def cmd_results(plan: NetworkPlan) -> int:
    """results.json of the running network on stdout (the one results pipeline, read while it runs)."""
    results = await read_results(
        plan, truncated=None, wall_seconds=seconds_since_epoch(plan), round_seconds=plan.round_seconds
    )
    json.dump(results, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0
