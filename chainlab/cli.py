"""The `chainlab` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from chainlab.sim import report
from chainlab.sim.experiment import Experiment, load_experiment
from chainlab.sim.runner import run_to_disk

console = Console()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="chainlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("sim", help="run a simulation (or sweep) from a YAML config")
    sim.add_argument("--config", type=Path, required=True)
    sim.add_argument("--out", type=Path, required=True)
    paper = sub.add_parser("paper", help="run every experiment in experiments/ and write a report")
    paper.add_argument("--out", type=Path, required=True)
    paper.add_argument("--experiments", type=Path, default=Path("experiments"))
    bench = sub.add_parser("bench", help="time a configuration: wall time against ML time")
    bench.add_argument("--config", type=Path, required=True)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "sim":
            return cmd_sim(args.config, args.out)
        if args.command == "paper":
            from chainlab.sim.paper import write_paper

            write_paper(args.experiments, args.out, console)
            return 0
        from chainlab.sim.bench import run_bench

        run_bench(args.config, args.repeats, args.out, console)
        return 0
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2


def cmd_sim(config: Path, out: Path) -> int:
    """chainlab sim: progress while it runs, then a table; results.json and PNGs under out."""
    exp = load_experiment(config)
    done = run_with_progress(exp, out)
    for label, results in done:
        console.print(report.results_table(results, f"{exp.get('name', config.stem)} {label}".strip()))
    if len(done) > 1:
        console.print(report.sweep_table(done, f"{exp.get('name', config.stem)}: sweep"))
    console.print(f"results written under {out}/")
    return 0


def run_with_progress(exp: Experiment, out: Path) -> list[tuple[str, dict[str, Any]]]:
    """Run an experiment with a live bar of heights completed per point, and a line per new height."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("height {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("round {task.fields[round]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        bars: dict[str, TaskID] = {}
        heights: dict[str, int] = {}

        def progress(label: str, at: int, height: int) -> None:
            if label not in bars:
                bars[label] = bar.add_task(label, total=exp.tasks, round=0)
                heights[label] = 0
            if height > heights[label]:
                heights[label] = height
                bar.console.log(f"{label}: height {height}/{exp.tasks} at round {at}")
            bar.update(bars[label], completed=height, round=at)

        return run_to_disk(exp, out, progress)


if __name__ == "__main__":
    raise SystemExit(main())
