"""The `chainlab` command."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from chainlab.k8s import pod_commands
from chainlab.k8s.cli import add_k8s_parser, run_k8s
from chainlab.live.plan import NetworkPlan
from chainlab.scenarios import registry
from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.sim import report
from chainlab.sim.runner import milestone, run_to_disk
from chainlab.work.pool import default_workers

console = Console(log_path=False)  # progress lines, not source locations


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="chainlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("sim", help="run a simulation (or sweep) from a YAML config")
    sim.add_argument("--config", type=Path, required=True)
    sim.add_argument("--out", type=Path, required=True)
    sim.add_argument("--jobs", type=int, default=1, help="sweep points run in this many processes at once (default 1)")
    sim.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes for independent ML jobs (train, evaluate) within a run; results do not depend on it"
        f" (default: the cores available, {default_workers()})",
    )
    add_set_flag(sim)
    paper = sub.add_parser("paper", help="run every experiment in experiments/ and write a report")
    paper.add_argument("--out", type=Path, required=True)
    paper.add_argument("--experiments", type=Path, default=Path("experiments"))
    paper.add_argument("--only", default="", help="comma-separated experiment names (default: all of them)")
    paper.add_argument("--jobs", type=int, default=1, help="sweep points run at once (default 1)")
    paper.add_argument(
        "--resume", action="store_true", help="read back experiments whose results are already under --out"
    )
    bench = sub.add_parser("bench", help="time a configuration: wall time against ML time")
    bench.add_argument("--config", type=Path, required=True)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--out", type=Path, required=True)
    compare = sub.add_parser("compare", help="five protocols, one world: a compare config's grid and report")
    compare.add_argument("--config", type=Path, default=Path("experiments/compare/compare.yaml"))
    compare.add_argument("--out", type=Path, default=Path("runs/compare"))
    compare.add_argument("--jobs", type=int, default=1, help="points run at once, each its own process (default 1)")
    sub.add_parser("protocols", help="list the protocols that can run")
    up = sub.add_parser("up", help="run a protocol network as real services on 127.0.0.1 until it is done")
    up.add_argument("--config", type=Path, default=Path("experiments/demo.yaml"))
    up.add_argument("--miners", type=int, help="BagChain: N miners (default: the config's)")
    up.add_argument("--validators", type=int, help="BagChain: V validators (default: the config's)")
    up.add_argument("--tasks", type=int, help="BagChain: K tasks (default: the config's)")
    up.add_argument(
        "--topology", default="config", help="config (the experiment's network), full, erdos_renyi:<degree>, or a file"
    )
    up.add_argument("--round-seconds", type=float, help="seconds per round (default: the config's live.round_seconds)")
    up.add_argument("--out", type=Path, default=Path("runs/up"))
    add_set_flag(up)
    up.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    up.add_argument("--ipfs-api", help="use a Kubo daemon's HTTP RPC (multiaddr) instead of the embedded IPFS node")
    up.add_argument("--kill", metavar="NODE", help="chaos: SIGKILL this node (e.g. miner-2) mid-run")
    up.add_argument("--kill-after", type=float, default=5.0, help="seconds after the network is up to kill --kill")
    up.add_argument(
        "--monitor", action="store_true", help="run Prometheus on loopback over every service; plot the run"
    )
    up.add_argument("--keep-monitor", action="store_true", help="with --monitor: leave Prometheus running at the end")
    up.add_argument(
        "--check-dashboards",
        type=Path,
        metavar="DIR",
        help="with --monitor: at the end, run every panel query of the dashboards in DIR; exit 1 unless all have data",
    )
    up.add_argument(
        "--runtime",
        choices=("process", "docker"),
        default="process",
        help="process: services as processes; docker: each in its container from `make images` (as in the chart)",
    )
    up.add_argument("--image-tag", default="dev", help="with --runtime docker: the chainlab/node and slim image tag")
    pod_commands.add_parsers(sub)
    add_k8s_parser(sub)
    chaos = sub.add_parser("chaos", help="an experiment's chaos scenario as Chaos Mesh objects for the Helm chart")
    chaos_action = chaos.add_subparsers(dest="action", required=True)
    render = chaos_action.add_parser("render", help="one Chaos Mesh Workflow (PodChaos, NetworkChaos on a timeline)")
    render.add_argument("--config", type=Path, required=True, help="an experiment with a `chaos:` list")
    render.add_argument("--release", default="chainlab", help="the Helm release whose pods it picks")
    render.add_argument("-n", "--namespace", default="chainlab")
    render.add_argument("--out", type=Path, help="write the YAML here (default: stdout)")
    render.add_argument(
        "--rounds-per-height",
        type=int,
        help="place actions `at` a height: rounds one height takes (Chaos Mesh runs on time)",
    )
    parity = sub.add_parser(
        "check-network", help="check every hop netem charged in a `chainlab up` run against the simulator"
    )
    parity.add_argument("--out", type=Path, default=Path("runs/up"), help="the --out of the finished `chainlab up`")
    task = sub.add_parser("task", help="a running network's requester: submit a task, its status, predictions")
    running = argparse.ArgumentParser(add_help=False)
    running.add_argument("--out", type=Path, default=Path("runs/up"), help="the --out of the running `chainlab up`")
    task_action = task.add_subparsers(dest="action", required=True)
    submit = task_action.add_parser("submit", parents=[running], help="submit a task at run time; prints its ID")
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a dataset chainlab ships (mnist5k, digits, mnist, breast_cancer)")
    source.add_argument("--dataset-cid", help="an encoded dataset already in the network's storage")
    submit.add_argument("--family", default="", help="model family (default: the network's)")
    submit.add_argument("--params", default="", help="model hyper-parameters as JSON (default: the network's)")
    submit.add_argument("--aggregate", default="", help="majority or soft (default: the network's)")
    submit.add_argument("--metric", default="", help="accuracy or f1 (default: the network's)")
    submit.add_argument("--metric-min", type=float, default=0.5, help="Metric_min, in [0, 1)")
    submit.add_argument("--fee", type=int, default=100, help="paid from the requester's balance")
    status = task_action.add_parser("status", parents=[running], help="every task's state, or one's")
    status.add_argument("--task", default="", help="a task ID (hex)")
    guess = task_action.add_parser("predict", parents=[running], help="labels from a finished task's winning ensemble")
    guess.add_argument("--task", required=True, help="a task ID (hex)")
    guess.add_argument("--rows", type=int, default=100, help="how many held-out test samples to label")
    down = sub.add_parser("down", help="stop the services a crashed `chainlab up` left running")
    down.add_argument("--out", type=Path, default=Path("runs/up"))
    netem = sub.add_parser("netem", help="chaos on a running `chainlab up` network, by node name")
    netem.add_argument("--out", type=Path, default=Path("runs/up"), help="the --out of the running `chainlab up`")
    action = netem.add_subparsers(dest="action", required=True)
    action.add_parser("stats", help="per-link settings and counters of every sidecar")
    cut = action.add_parser("partition", help="cut the links between groups, e.g. miner-0,miner-1 miner-2,requester")
    cut.add_argument("groups", nargs="+", help="comma-separated node names; one argument per group")
    action.add_parser("heal", help="remove the partition")
    link = action.add_parser("set-link", help="change the link between two nodes, both directions")
    link.add_argument("a")
    link.add_argument("b")
    link.add_argument("--latency-rounds", type=int, default=1, help="whole rounds added to every hop")
    link.add_argument("--bandwidth", type=float, default=0.0, help="MB per round; 0 is unlimited")
    link.add_argument("--loss", type=float, default=0.0)
    link.add_argument("--down", action="store_true", help="switch the link off")
    for name, help_text, run_time in (
        ("load", "a `chainlab up` network under locust load (loadtest/locustfile.py); results with `load`", "40s"),
        ("bench-load", "Predict vs a no-op requester, and the network's pace without and with load", "15s"),
    ):
        load = sub.add_parser(name, help=help_text)
        load.add_argument("--config", type=Path, default=Path("experiments/demo.yaml"))
        load.add_argument("--out", type=Path, default=Path("runs") / name)
        load.add_argument("--users", type=int, default=10, help="locust users (a shape's peak users)")
        load.add_argument("--spawn-rate", type=float, default=5.0, help="users started per second")
        load.add_argument("--run-time", default=run_time, help="locust run time per run, e.g. 40s, 2m")
        load.add_argument("--shape", choices=("step", "spike"), help="a load shape over --run-time (default: flat)")
        load.add_argument("--round-seconds", type=float, help="seconds per round (default: the config's)")
        load.add_argument("--timeout", type=float, default=600.0, help="give up on the network after this long")
        if name == "load":
            load.add_argument(
                "--check-dashboards",
                type=Path,
                metavar="DIR",
                help="at the end, run every panel query in DIR over the run; exit 1 unless all have data",
            )
        if name == "bench-load":
            load.add_argument("--repeats", type=int, default=3, help="Predict runs per server")
            load.add_argument("--network-repeats", type=int, default=3, help="network runs without and with load")
            load.add_argument("--load-time", default="60s", help="locust run time of the loaded network run")
    args = parser.parse_args(argv)
    try:
        if args.command == "protocols":
            for name in registry.names():
                spec = registry.get(name)
                console.print(f"{name}: roles {', '.join(spec.roles)}")
            return 0
        if args.command == "up":
            return cmd_up(args)
        if args.command == "down":
            from chainlab.live.launcher import MONITOR_STATE_FILE, STATE_FILE
            from chainlab.live.processes import down as stop_leftovers
            from chainlab.live.runtimes import docker_down

            stopped = stop_leftovers(args.out / STATE_FILE) + stop_leftovers(args.out / MONITOR_STATE_FILE)
            console.print(f"stopped {len(stopped)} process(es){': ' + ', '.join(stopped) if stopped else ''}")
            removed = docker_down(args.out)
            if removed:
                console.print(f"removed {len(removed)} container(s): {', '.join(removed)}")
            return 0
        if args.command == "k8s":
            return run_k8s(args, console)
        if args.command in ("plan", "check", "results"):
            return pod_commands.run(args, console)
        if args.command == "netem":
            return cmd_netem(args)
        if args.command == "chaos":
            return cmd_chaos_render(args)
        if args.command == "task":
            return cmd_task(args)
        if args.command == "check-network":
            return cmd_check_network(args.out)
        if args.command == "sim":
            return cmd_sim(args.config, args.out, args.jobs, overrides=args.overrides, workers=args.workers)
        if args.command == "paper":
            from chainlab.sim.paper import write_paper

            only = tuple(name for name in args.only.split(",") if name)
            write_paper(args.experiments, args.out, console, only, args.jobs, args.resume)
            return 0
        if args.command == "compare":
            from chainlab.sim.compare import cmd_compare

            return cmd_compare(args.config, args.out, args.jobs, console)
        if args.command == "bench":
            from chainlab.sim.bench import run_bench

            run_bench(args.config, args.repeats, args.out, console)
            return 0
        if args.command in ("load", "bench-load"):
            return cmd_load(args)
        raise AssertionError(f"unhandled command {args.command}")  # argparse allows only the commands above
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2


def add_set_flag(parser: argparse.ArgumentParser) -> None:
    """The repeatable `--set key.path=value` of sim and up: the value is YAML, checked like the config file."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override one config value, e.g. --set miners=100 --set network.kind=erdos_renyi (repeatable)",
    )


def cmd_sim(config: Path, out: Path, jobs: int = 1, *, overrides: Sequence[str] = (), workers: int = 1) -> int:
    """chainlab sim: progress while it runs, then a table; results.json and PNGs under out."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    exp = load_experiment(config, overrides)
    done = run_with_progress(exp, out, jobs, workers)
    for label, results in done:
        title = f"{exp.get('name', config.stem)} {label}".strip()
        table = report.analysis_table if "analysis" in results else report.results_table
        console.print(table(results, title))
    if len(done) > 1:
        console.print(report.sweep_table(done, f"{exp.get('name', config.stem)}: sweep"))
    console.print(f"results written under {out}/")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """chainlab up: start the network, show progress, print a table per task, stop everything."""
    import asyncio

    from chainlab.live.launcher import UpFailed, UpOptions, dashboard_check, up
    from chainlab.live.results import results_table
    from chainlab.monitoring.panel_check import PanelReport

    exp = load_experiment(args.config, args.overrides)
    for key in ("miners", "validators", "tasks"):
        if getattr(args, key) is not None:
            exp = exp.with_value(key, getattr(args, key))
    round_seconds = args.round_seconds or exp.live.round_seconds
    options = UpOptions(
        exp,
        args.out,
        round_seconds,
        topology=args.topology,
        timeout_seconds=args.timeout,
        ipfs_api=args.ipfs_api,
        kill=args.kill,
        kill_after_seconds=args.kill_after,
        monitor=args.monitor or args.check_dashboards is not None,
        keep_monitor=args.keep_monitor,
        runtime=args.runtime,
        image_tag=args.image_tag,
    )
    reports: list[PanelReport] = []
    after = dashboard_check(args.check_dashboards, console, reports) if args.check_dashboards else None

    spec = registry.get(exp.protocol_name)
    columns = (TextColumn(spec.progress_unit), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f}"),
               TextColumn("round {task.fields[round]}"), TimeElapsedColumn())  # fmt: skip
    total = spec.progress_total(exp)
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("up", total=total, round=0)
            progress = lambda h, r: bar.update(task, completed=h, round=r)  # noqa: E731
            results = asyncio.run(up(options, bar.console, progress, after=after))
    except UpFailed as exc:
        console.print(f"[red]chainlab up failed:[/red] {exc}; partial results in {args.out / 'results.json'}")
        return 1
    console.print(results_table(results, f"chainlab up: {exp.get('name', args.config.stem)}"))
    exit_codes = results["exit_codes"]
    assert isinstance(exit_codes, dict)
    stuck = {name: code for name, code in exit_codes.items() if code not in (0, None)}
    console.print(f"tips agree: {results['tips_agree']}; rejections: {results['rejections'] or 'none'}")
    console.print(f"all services stopped{'; non-zero exits: ' + str(stuck) if stuck else ' cleanly'}")
    console.print(f"results written to {args.out / 'results.json'}")
    return 0 if all(r.ok for r in reports) else 1


def cmd_load(args: argparse.Namespace) -> int:
    """chainlab load / bench-load: a network under locust load, or the load benchmark; tables, files under --out."""
    import asyncio

    from chainlab.live.launcher import UpFailed, dashboard_check
    from chainlab.live.load import LoadOptions, LocustRun, load_table, parse_timespan, run_load
    from chainlab.live.results import results_table
    from chainlab.monitoring.panel_check import PanelReport

    exp = load_experiment(args.config)
    round_seconds = args.round_seconds or exp.live.round_seconds
    for span in (args.run_time, getattr(args, "load_time", "0")):
        parse_timespan(span)  # a typo is named now, not after the network has started
    run = LocustRun(users=args.users, spawn_rate=args.spawn_rate, run_time=args.run_time, shape=args.shape)
    try:
        if args.command == "bench-load":
            from chainlab.live.bench_load import CLOSED_LOOP, BenchLoadOptions, run_bench

            loaded = LocustRun(args.users, args.spawn_rate, args.load_time, args.shape)
            capacity = dataclasses.replace(run, wait=CLOSED_LOOP)  # Predict vs the no-op: what each can serve
            bench = BenchLoadOptions(
                exp, args.out, round_seconds, capacity, args.repeats, loaded, args.timeout, args.network_repeats
            )
            asyncio.run(run_bench(bench, console))
            console.print(f"written: {args.out / 'bench_load.json'}, {args.out / 'bench_load.md'}")
            return 0
        options = LoadOptions(exp, args.out, round_seconds, run, args.timeout)
        reports: list[PanelReport] = []
        after = dashboard_check(args.check_dashboards, console, reports) if args.check_dashboards else None
        results = asyncio.run(run_load(options, console, after))
    except UpFailed as exc:
        console.print(f"[red]chainlab {args.command} failed:[/red] {exc}; partial results under {args.out}")
        return 1
    load = results["load"]
    assert isinstance(load, dict)
    console.print(results_table(results, f"chainlab load: the network ({exp.get('name', args.config.stem)})"))
    console.print(load_table(load, f"chainlab load: {exp.get('name', args.config.stem)}"))
    total = load["total"]
    assert isinstance(total, dict)
    clean = total["failures"] == 0 and load["exceptions"] == 0
    console.print(f"locust exceptions: {load['exceptions']}; tips agree: {results['tips_agree']}")
    console.print(f"results written to {args.out / 'results.json'}; locust report {args.out / 'locust.html'}")
    panels_ok = all(r.ok for r in reports)
    return 0 if clean and panels_ok and results["tips_agree"] and not results["truncated"] else 1


def cmd_task(args: argparse.Namespace) -> int:
    """chainlab task: submit a task to a running network's requester, show task states, or predict."""
    import asyncio

    import grpc

    plan = NetworkPlan.load(args.out / "plan.json")
    try:
        return asyncio.run(_task_action(args, plan))
    except grpc.aio.AioRpcError as exc:
        console.print(f"[red]refused:[/red] {exc.code().name}: {exc.details()}")
        return 1


async def _task_action(args: argparse.Namespace, plan: NetworkPlan) -> int:
    import numpy as np

    from chainlab.live import task_client

    if args.action == "submit":
        submission = task_client.Submission(
            args.dataset or "", args.dataset_cid or "", args.family, args.params, args.aggregate, args.metric,
            args.metric_min, args.fee,
        )  # fmt: skip
        reply = await task_client.submit_task(plan, submission)
        console.print(f"task {reply.task_id.hex()} (sequence {reply.sequence}) published; D_T at {reply.train_cid}")
    elif args.action == "status":
        table = Table(title="tasks")
        for column in ("task", "seq", "state", "height", "Metric_best", "winner"):
            table.add_column(column)
        for state in await task_client.task_status(plan, bytes.fromhex(args.task)):
            result = state.result if state.HasField("result") else None
            table.add_row(
                state.task_id.hex(),
                str(state.sequence),
                state.state,
                str(result.height) if result else "",
                f"{result.metric_best:.4f}" if result else "",
                result.winning_ensemble.hex()[:16] if result else "",
            )
        console.print(table)
    else:
        test = await task_client.test_samples(plan, args.rows)
        labels = await task_client.predict(plan, bytes.fromhex(args.task), test.X)
        accuracy = float(np.mean(np.asarray(labels) == test.y))
        console.print(f"{len(labels)} labels: {labels[:20]}{' ...' if len(labels) > 20 else ''}")
        console.print(f"accuracy on {len(labels)} held-out test samples: {accuracy:.4f}")
    return 0


def cmd_check_network(out: Path) -> int:
    """chainlab check-network: a table of hops per declared size, netem's rounds against the simulator's."""
    from chainlab.parity import check_hops

    checks = check_hops(out)
    table = Table(title=f"hop delays: netem vs the simulator's network model ({out})")
    for column in ("declared MB", "hops", "equal", "netem rounds min~max", "sim rounds min~max"):
        table.add_column(column, justify="right")
    for size, c in checks.items():
        table.add_row(
            f"{size:g}",
            str(c.hops),
            str(c.equal),
            f"{min(c.netem_rounds)}~{max(c.netem_rounds)}",
            f"{min(c.sim_rounds)}~{max(c.sim_rounds)}",
        )
    console.print(table)
    return 0 if all(c.equal == c.hops for c in checks.values()) else 1


def cmd_chaos_render(args: argparse.Namespace) -> int:
    """chainlab chaos render: the config's scenario as Chaos Mesh YAML, to stdout or --out."""
    import sys

    import yaml

    from chainlab.k8s import chaos
    from chainlab.scenarios.chaos import scenario

    exp = load_experiment(args.config)
    actions = scenario(exp)
    if not actions:
        raise ValueError(f"{args.config} has no chaos: list")
    spec = registry.get(exp.protocol_name)
    slots = spec.build(exp).slots
    objects = chaos.render(
        exp,
        spec,
        slots,
        actions,
        release=args.release,
        namespace=args.namespace,
        rounds_per_height=args.rounds_per_height,
    )
    text = yaml.safe_dump_all(objects, sort_keys=False)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        console.print(f"{len(objects)} Chaos Mesh object(s) written to {args.out}")
    return 0


def cmd_netem(args: argparse.Namespace) -> int:
    """chainlab netem: change links, cut and heal partitions, or show per-link statistics of a running network."""
    import grpc

    plan = NetworkPlan.load(args.out / "plan.json")
    try:
        return _netem_action(args, plan)
    except grpc.aio.AioRpcError as exc:
        console.print(f"[red]error:[/red] a sidecar refused or is unreachable: {exc.code().name}: {exc.details()}")
        return 1


def _netem_action(args: argparse.Namespace, plan: NetworkPlan) -> int:
    import asyncio

    from chainlab.live import chaos

    if args.action == "stats":
        console.print(asyncio.run(chaos.stats_table(plan)))
    elif args.action == "partition":
        groups = [[name for name in group.split(",") if name] for group in args.groups]
        console.print(f"links down: {asyncio.run(chaos.partition(plan, groups))}")
    elif args.action == "heal":
        console.print(f"links still down: {asyncio.run(chaos.heal(plan))}")
    else:
        settings = {"latency_rounds": args.latency_rounds, "bandwidth_mb_per_round": args.bandwidth}
        asyncio.run(chaos.set_link(plan, args.a, args.b, **settings, loss=args.loss, up=not args.down))
        console.print(f"{args.a} <-> {args.b}: {settings}, loss {args.loss}, {'down' if args.down else 'up'}")
    return 0


def run_with_progress(exp: Experiment, out: Path, jobs: int = 1, workers: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """Run an experiment with a live bar of progress per point, and a line per milestone (see milestone)."""
    spec = registry.get(exp.protocol_name)
    unit = spec.progress_unit
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn(unit + " {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("round {task.fields[round]}"),
        TimeElapsedColumn(),
    )
    total = spec.progress_total(exp)
    with Progress(*columns, console=console) as bar:
        bars: dict[str, TaskID] = {}
        reached: dict[str, int] = {}

        def progress(label: str, at: int, value: int) -> None:
            if label not in bars:
                bars[label] = bar.add_task(label, total=total, round=0)
                reached[label] = 0
            if milestone(value, total) > milestone(reached[label], total):
                bar.console.log(f"{label}: {unit} {value}/{total} at round {at}")
            reached[label] = max(reached[label], value)
            bar.update(bars[label], completed=value, round=at)

        return run_to_disk(exp, out, progress, jobs, workers)


if __name__ == "__main__":
    raise SystemExit(main())
