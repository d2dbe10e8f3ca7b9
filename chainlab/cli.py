"""The `chainlab` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from chainlab.live.plan import NetworkPlan
from chainlab.scenarios import registry
from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.sim import report
from chainlab.sim.runner import milestone, run_to_disk

console = Console(log_path=False)  # progress lines, not source locations


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="chainlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("sim", help="run a simulation (or sweep) from a YAML config")
    sim.add_argument("--config", type=Path, required=True)
    sim.add_argument("--out", type=Path, required=True)
    sim.add_argument("--jobs", type=int, default=1, help="sweep points run in this many processes at once (default 1)")
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
    up.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    up.add_argument("--ipfs-api", help="use a Kubo daemon's HTTP RPC (multiaddr) instead of the embedded IPFS node")
    up.add_argument("--kill", metavar="NODE", help="chaos: SIGKILL this node (e.g. miner-2) mid-run")
    up.add_argument("--kill-after", type=float, default=5.0, help="seconds after the network is up to kill --kill")
    parity = sub.add_parser(
        "check-network", help="check every hop netem charged in a `chainlab up` run against the simulator"
    )
    parity.add_argument("--out", type=Path, default=Path("runs/up"), help="the --out of the finished `chainlab up`")
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
            from chainlab.live.launcher import STATE_FILE
            from chainlab.live.processes import down as stop_leftovers

            stopped = stop_leftovers(args.out / STATE_FILE)
            console.print(f"stopped {len(stopped)} process(es){': ' + ', '.join(stopped) if stopped else ''}")
            return 0
        if args.command == "netem":
            return cmd_netem(args)
        if args.command == "check-network":
            return cmd_check_network(args.out)
        if args.command == "sim":
            return cmd_sim(args.config, args.out, args.jobs)
        if args.command == "paper":
            from chainlab.sim.paper import write_paper

            only = tuple(name for name in args.only.split(",") if name)
            write_paper(args.experiments, args.out, console, only, args.jobs, args.resume)
            return 0
        if args.command == "bench":
            from chainlab.sim.bench import run_bench

            run_bench(args.config, args.repeats, args.out, console)
            return 0
        raise AssertionError(f"unhandled command {args.command}")  # argparse allows only the commands above
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2


def cmd_sim(config: Path, out: Path, jobs: int = 1) -> int:
    """chainlab sim: progress while it runs, then a table; results.json and PNGs under out."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    exp = load_experiment(config)
    done = run_with_progress(exp, out, jobs)
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

    from chainlab.live.launcher import UpFailed, UpOptions, up
    from chainlab.live.results import results_table

    exp = load_experiment(args.config)
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
    )
    spec = registry.get(exp.protocol_name)
    columns = (TextColumn(spec.progress_unit), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f}"),
               TextColumn("round {task.fields[round]}"), TimeElapsedColumn())  # fmt: skip
    total = spec.progress_total(exp)
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("up", total=total, round=0)
            results = asyncio.run(up(options, bar.console, lambda h, r: bar.update(task, completed=h, round=r)))
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


def run_with_progress(exp: Experiment, out: Path, jobs: int = 1) -> list[tuple[str, dict[str, Any]]]:
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

        return run_to_disk(exp, out, progress, jobs)


if __name__ == "__main__":
    raise SystemExit(main())
