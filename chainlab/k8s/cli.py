"""The `chainlab k8s` subcommands; the kubernetes client is imported only when one runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from chainlab.k8s.api import Kube

DEFAULT_RELEASE = "chainlab"
DEFAULT_NAMESPACE = "chainlab"  # where `make kind-up` / `make minikube-up` install it


def add_k8s_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `k8s status` and `k8s results` to the `chainlab` command's subparsers."""
    k8s = subparsers.add_parser("k8s", help="a Helm release of chainlab on Kubernetes: pods, heights, results")
    release = argparse.ArgumentParser(add_help=False)
    release.add_argument("--release", default=DEFAULT_RELEASE, help=f"the Helm release (default {DEFAULT_RELEASE})")
    release.add_argument("-n", "--namespace", default=DEFAULT_NAMESPACE, help="its namespace (default chainlab)")
    release.add_argument("--context", help="kubeconfig context (default: the current one; in a pod: its account)")
    release.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    action = k8s.add_subparsers(dest="k8s_action", required=True)
    status = action.add_parser(
        "status", parents=[release], help="the release's pods, readiness, restarts, each node's height and round"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--timeout-seconds", type=float, default=5.0, help="per metrics read through the API server")
    results = action.add_parser(
        "results", parents=[release], help="results.json of the running release, from a Job in the cluster"
    )
    results.add_argument("--out", type=Path, default=Path("results.json"), help="where to write results.json")
    results.add_argument("--timeout-seconds", type=int, default=600, help="give up on the Job after this long")
    chaos = action.add_parser("chaos", help="Chaos Mesh objects on the cluster")
    chaos_action = chaos.add_subparsers(dest="chaos_action", required=True)
    apply = chaos_action.add_parser(
        "apply",
        parents=[release],
        help="create `chainlab chaos render` output; without Chaos Mesh, pod kills by deletion",
    )
    apply.add_argument("file", type=Path, help="the YAML `chainlab chaos render` wrote")


def run_k8s(args: argparse.Namespace, console: Console) -> int:
    """Run the chosen `chainlab k8s` action: 0 on success, 1 when the release is unhealthy, 2 on errors."""
    from kubernetes.client import ApiException
    from urllib3.exceptions import HTTPError

    from chainlab.k8s.api import K8sError, Kube, connect

    try:
        api_client = connect(args.context, args.kubeconfig)
        with api_client:
            kube = Kube.of(api_client)
            if args.k8s_action == "status":
                return _status(kube, args, console)
            if args.k8s_action == "results":
                return _results(kube, args, console)
            if args.k8s_action == "chaos":
                return _chaos_apply(kube, args, console)
            raise AssertionError(f"unhandled k8s action {args.k8s_action}")  # argparse allows only those above
    except K8sError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    except ApiException as exc:
        console.print(f"[red]error:[/red] the API server answered {exc.status} {exc.reason}: {_message(exc)}")
        return 2
    except HTTPError as exc:  # connection refused, TLS, timeouts: the cluster is not reachable from here
        console.print(f"[red]error:[/red] cannot reach the Kubernetes API server: {exc}", highlight=False)
        return 2


def _message(exc: Exception) -> str:
    """A Status object's message from an ApiException's body, else the body."""
    body = getattr(exc, "body", None) or ""
    try:
        found = json.loads(body)
    except (TypeError, ValueError):
        return str(body)[:300]
    return str(found.get("message", body)) if isinstance(found, dict) else str(body)[:300]


def _status(kube: Kube, args: argparse.Namespace, console: Console) -> int:
    from chainlab.k8s.status import collect, status_table, tips, to_json

    rows = collect(kube, args.release, args.namespace, args.timeout_seconds)
    if args.json:
        print(json.dumps({"release": args.release, "namespace": args.namespace, "pods": to_json(rows)}, indent=2))
    elif not rows:
        console.print(f"no pods of release {args.release!r} in namespace {args.namespace!r}")
    else:
        console.print(status_table(rows, f"chainlab release {args.release} in namespace {args.namespace}"))
        ready = sum(1 for row in rows if row.ok)
        held = tips(rows)
        console.print(f"{ready}/{len(rows)} pods ready; {len(held)} distinct tip(s) among the nodes that answered")
    return 0 if rows and all(row.ok for row in rows) else 1


def _results(kube: Kube, args: argparse.Namespace, console: Console) -> int:
    from chainlab.k8s.results import run_results
    from chainlab.live.results import results_table

    with console.status(f"running the results Job of release {args.release} (up to {args.timeout_seconds} s)"):
        job, results = run_results(kube, args.release, args.namespace, args.timeout_seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    try:
        console.print(results_table(results, f"chainlab k8s results: {args.release}"))
    except (KeyError, TypeError, ValueError) as exc:  # a results.json of another shape still gets written
        console.print(f"(no table for these results: {exc})")
    if "tips_agree" in results:
        console.print(f"tips agree: {results['tips_agree']}")
    console.print(f"results written to {args.out} (from Job {job}, now deleted)")
    return 0


def _chaos_apply(kube: Kube, args: argparse.Namespace, console: Console) -> int:
    import yaml

    from chainlab.k8s.chaos import apply

    objects = [o for o in yaml.safe_load_all(args.file.read_text()) if o]
    try:
        done = apply(kube, objects, args.namespace, lambda line: console.print(line, highlight=False))
    except ValueError as exc:
        console.print(f"[red]error:[/red] {args.file}: {exc}", highlight=False)
        return 2
    console.print(f"{done} object(s) created or pod(s) deleted in namespace {args.namespace}")
    return 0
