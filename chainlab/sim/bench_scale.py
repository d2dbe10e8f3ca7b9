"""`make bench-scale`: the simulator's cost against the number of miners, each point in a fresh `chainlab sim`.

Run as `python -m chainlab.sim.bench_scale`; MINERS, NETWORKS, WORKERS, TIMEOUT and OUT come from the
environment (or the matching flags). Each point is its own process so that its peak memory is its own, and a
point that fails or runs past TIMEOUT is written with its error rather than dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from rich.console import Console
from rich.table import Table

from chainlab.ledger.pow import parse_target

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_CONFIG = Path("experiments/bench_scale.yaml")
DEFAULT_OUT = Path("runs/bench-scale")
DEFAULT_MINERS = (10, 100, 250, 1000)
BENCH_NETWORKS = ("full", "erdos_renyi")  # "topology" needs a listed edge per vertex, so it cannot scale by N
# Twice the 10-minute target: a 1,000-miner point took 545-840 s on this machine depending on the day, and a point
# cut off at the target would record no figure to compare against it.
DEFAULT_TIMEOUT_SECONDS = 1800.0
DIFFICULTIES = ("scaled", "fixed")
POLL_SECONDS = 0.2
LOG_TAIL_CHARS = 800
Row = dict[str, object]


@dataclass(frozen=True)
class Point:
    """One run of the bench: the experiment with `miners` miners on a `network` network."""

    miners: int
    network: str

    @property
    def name(self) -> str:
        """The point's folder under the bench's output."""
        return f"{self.network}-{self.miners}"


@dataclass(frozen=True)
class Outcome:
    """How a point's process ended: exit code (None when it was killed at the timeout), its own wall time,
    and the largest resident set of it or any process it waited for (its ML workers), from wait4."""

    returncode: int | None
    process_seconds: float
    max_process_rss_mb: float | None
    log_tail: str


def parse_miners(text: str | None) -> tuple[int, ...]:
    """MINERS ("10 100 250 1000", spaces or commas) as miner counts; empty means the default points."""
    words = (text or "").replace(",", " ").split()
    if not words:
        return DEFAULT_MINERS
    try:
        counts = tuple(int(word) for word in words)
    except ValueError as exc:
        raise ValueError(f"MINERS must be whole numbers of miners, got {text!r}") from exc
    if any(n < 1 for n in counts):
        raise ValueError(f"MINERS must each be >= 1, got {text!r}")
    return counts


def parse_networks(text: str | None) -> tuple[str, ...]:
    """NETWORKS ("full erdos_renyi") as network kinds; empty means both."""
    kinds = tuple((text or "").replace(",", " ").split()) or BENCH_NETWORKS
    unknown = [k for k in kinds if k not in BENCH_NETWORKS]
    if unknown:
        raise ValueError(f"NETWORKS must be among {', '.join(BENCH_NETWORKS)}, got {', '.join(unknown)}")
    return kinds


def available_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_workers(text: str | None) -> int:
    """WORKERS as a worker count; empty means the cores available."""
    if not (text or "").strip():
        return available_cores()
    try:
        workers = int(str(text))
    except ValueError as exc:
        raise ValueError(f"WORKERS must be a whole number, got {text!r}") from exc
    if workers < 1:
        raise ValueError(f"WORKERS must be >= 1, got {workers}")
    return workers


def parse_timeout(text: str | None) -> float:
    """TIMEOUT as seconds per point; empty means DEFAULT_TIMEOUT_SECONDS."""
    if not (text or "").strip():
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(str(text))
    except ValueError as exc:
        raise ValueError(f"TIMEOUT must be seconds, got {text!r}") from exc
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"TIMEOUT must be > 0 seconds, got {text!r}")
    return seconds


def parse_difficulty(text: str | None) -> str:
    """DIFFICULTY ("scaled" or "fixed"); empty means scaled."""
    chosen = (text or "").strip() or DIFFICULTIES[0]
    if chosen not in DIFFICULTIES:
        raise ValueError(f"DIFFICULTY must be one of {', '.join(DIFFICULTIES)}, got {text!r}")
    return chosen


def points_of(miners: Sequence[int], networks: Sequence[str]) -> list[Point]:
    """Every miners x network point, smallest miner count first so that cheap points finish early."""
    return [Point(n, kind) for n in miners for kind in networks]


def cli_has_workers() -> bool:
    """Whether `chainlab sim` takes --workers (the pool of ML worker processes)."""
    shown = subprocess.run(
        [sys.executable, "-m", "chainlab.cli", "sim", "--help"], capture_output=True, text=True, check=False
    )
    return "--workers" in shown.stdout


def scaled_target(config: Path, miners: int) -> int:
    """The config's proof-of-work target times its miners / miners: the same expected rounds to a nonce at every
    size, as a chain's difficulty adjustment keeps them. At the config's own target, 1,000 miners find a nonce
    100 times sooner than 10 do, well inside one block's delay, and most heights fork."""
    data = yaml.safe_load(config.read_text())
    target = data["protocol"]["target"]
    base = parse_target(target) if isinstance(target, str) else int(target)
    return max(1, base * int(data["miners"]) // miners)


def sim_command(config: Path, out: Path, point: Point, workers: int | None, target: int | None = None) -> list[str]:
    """The `chainlab sim` command line of one point (--workers only where the CLI has it: workers not None; a
    target overrides the config's)."""
    command = [sys.executable, "-m", "chainlab.cli", "sim", "--config", str(config), "--out", str(out)]
    command += ["--set", f"miners={point.miners}", "--set", f"network.kind={point.network}"]
    if target is not None:
        command += ["--set", f"protocol.target={target}"]
    if workers is not None:
        command += ["--workers", str(workers)]
    return command


def run_point(command: Sequence[str], log: Path, timeout_seconds: float) -> Outcome:
    """Run one point's process to its end or its timeout (then its whole process group is killed)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as sink:
        env = {**os.environ, "COLUMNS": "120"}  # the child's rich output to a file: readable line width
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = started + timeout_seconds
        timed_out = False
        while True:
            # wait4, not Popen.wait: it also gives the process's peak resident set.
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() >= deadline:
                timed_out = True
                os.killpg(process.pid, signal.SIGKILL)  # the point's own session: it and its ML workers
                _, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(POLL_SECONDS)
        code = os.waitstatus_to_exitcode(status)
        process.returncode = code  # reaped above; Popen must not wait for it again
    elapsed = time.perf_counter() - started
    tail = log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    rss = usage.ru_maxrss / 1024 if usage.ru_maxrss > 0 else None  # Linux reports KiB
    return Outcome(None if timed_out else code, elapsed, rss, tail)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def row_of(
    point: Point,
    workers: int,
    results_path: Path,
    outcome: Outcome,
    timeout_seconds: float,
    difficulty: str = DIFFICULTIES[0],
) -> Row:
    """The bench.json object of one point: figures from its results.json, or the error that kept it from one.

    non_ml_seconds is the run's own: the simulator process's CPU time on anything but ML (engine, protocol,
    summary), which ML in worker processes does not hide; non_ml_over_ml divides it by ml_seconds, the ML work summed
    over every process (with one worker both are parts of the one process's time, as wall - ML / ML was before).
    """
    row: Row = {
        "miners": point.miners,
        "network": point.network,
        "workers": workers,
        "difficulty": difficulty,
        "status": "ok",
        "error": None,
        "wall_seconds": None,
        "ml_seconds": None,
        "non_ml_seconds": None,
        "non_ml_over_ml": None,
        "peak_rss_mb": None,
        "max_process_rss_mb": outcome.max_process_rss_mb,
        "ensemble_accuracy": None,
        "truncated": None,
        "process_seconds": outcome.process_seconds,
        "results": str(results_path),
    }
    if outcome.returncode is None:
        row.update(status="timeout", error=f"timed out after {timeout_seconds:g} s; log tail: {outcome.log_tail}")
        return row
    if outcome.returncode != 0:
        row.update(status="failed", error=f"exit code {outcome.returncode}; log tail: {outcome.log_tail}")
        return row
    try:
        results = json.loads(results_path.read_text())
    except (OSError, ValueError) as exc:
        row.update(status="failed", error=f"exit code 0 but no readable results.json: {exc}")
        return row
    if not isinstance(results, dict):
        row.update(status="failed", error="results.json is not an object")
        return row
    used = results.get("workers")
    if isinstance(used, int) and not isinstance(used, bool) and used >= 1:
        row["workers"] = used  # what the run says it used beats what it was asked for
    wall, ml = _number(results.get("wall_seconds")), _number(results.get("ml_seconds"))
    non_ml = _number(results.get("non_ml_seconds"))
    protocol_results = results.get("protocol_results")
    own = protocol_results if isinstance(protocol_results, dict) else {}
    row.update(
        wall_seconds=wall,
        ml_seconds=ml,
        peak_rss_mb=_number(results.get("peak_rss_mb")),
        ensemble_accuracy=_number(own.get("ensemble_accuracy")),
        truncated=results.get("truncated"),
    )
    if non_ml is not None:
        row["non_ml_seconds"] = non_ml
        row["non_ml_over_ml"] = non_ml / ml if ml else None
    return row


def _cell(value: object, digits: int = 2) -> str:
    number = _number(value)
    if number is None:
        return "" if value is None else str(value)
    return str(int(number)) if isinstance(value, int) else f"{number:.{digits}f}"


COLUMNS = (
    ("miners", "miners", 0),
    ("network", "network", 0),
    ("workers", "workers", 0),
    ("difficulty", "difficulty", 0),
    ("wall s", "wall_seconds", 1),
    ("ML s", "ml_seconds", 1),
    ("non-ML s", "non_ml_seconds", 1),
    ("non-ML / ML", "non_ml_over_ml", 2),
    ("peak RSS MB", "peak_rss_mb", 0),
    ("process RSS MB", "max_process_rss_mb", 0),
    ("accuracy", "ensemble_accuracy", 4),
    ("status", "status", 0),
)


def markdown(rows: Sequence[Row], title: str) -> str:
    """bench.md: one table row per point, errors listed below it."""
    lines = [f"# {title}", "", "| " + " | ".join(h for h, _, _ in COLUMNS) + " |"]
    lines.append("| " + " | ".join("---" for _ in COLUMNS) + " |")
    lines += ["| " + " | ".join(_cell(row.get(key), d) for _, key, d in COLUMNS) + " |" for row in rows]
    failed = [row for row in rows if row.get("error")]
    if failed:
        lines += ["", "## Errors", ""]
        lines += [
            f"- {row['network']}, {row['miners']} miners: {' '.join(str(row['error']).split())}" for row in failed
        ]
    lines += [
        "",
        "ML s is the ML work summed over every process; non-ML s is the simulator process's CPU time on anything "
        "else (engine, protocol, summary), and non-ML / ML their ratio. peak RSS MB is the simulator process's "
        "(results.json); process RSS MB the largest single process of the point (wait4). difficulty scaled: the "
        "proof-of-work target scaled by the config's miners / miners, so that the expected time to a Key Block is "
        "the same at every size; fixed: the config's target.",
    ]
    return "\n".join(lines) + "\n"


def table(rows: Sequence[Row], title: str) -> Table:
    """The same rows as a rich table for the terminal."""
    shown = Table(title=title)
    for header, _, _ in COLUMNS:
        shown.add_column(header, justify="left" if header in ("network", "difficulty", "status") else "right")
    for row in rows:
        shown.add_row(*(_cell(row.get(key), d) for _, key, d in COLUMNS))
    return shown


def plot(rows: Sequence[Row], path: Path) -> None:
    """bench.png, log-log: wall, ML and non-ML seconds against miners; a colour per quantity, a style per network."""
    figure = _new_figure()
    axes = figure.add_subplot()
    quantities = (("wall_seconds", "wall", "tab:blue"), ("ml_seconds", "ML", "tab:red"),
                  ("non_ml_seconds", "non-ML", "tab:green"))  # fmt: skip
    styles = {"full": ("-", "o"), "erdos_renyi": ("--", "s")}
    for network in dict.fromkeys(str(row["network"]) for row in rows):
        mine = sorted((row for row in rows if row["network"] == network), key=lambda r: int(str(r["miners"])))
        for key, label, colour in quantities:
            # A log axis cannot show zero, a negative share or a failed point: those are gaps.
            xy = [(int(str(r["miners"])), v) for r in mine if (v := _number(r.get(key))) is not None and v > 0]
            if xy:
                xs, ys = zip(*xy, strict=True)
                line, marker = styles.get(network, (":", "^"))
                axes.plot(xs, ys, line, marker=marker, color=colour, label=f"{label}, {network}")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("Miners")
    axes.set_ylabel("Seconds")
    axes.set_title("Simulator cost vs. miners (3 heights, MNIST-5k, decision trees)")
    axes.grid(alpha=0.3, which="both")
    if axes.get_lines():
        figure.legend(loc="outside lower center", ncols=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)


def _new_figure() -> Figure:
    # As chainlab.sim.report: an Agg canvas on a bare Figure, so no pyplot global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def write_outputs(rows: Sequence[Row], out: Path) -> None:
    """bench.json, bench.md and bench.png under out (rewritten after every point, so a stopped bench keeps its rows)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(list(rows), indent=2) + "\n")
    (out / "bench.md").write_text(markdown(rows, "bench-scale: cost against miners"))
    plot(rows, out / "bench.png")


def run_bench_scale(
    config: Path,
    out: Path,
    points: Sequence[Point],
    workers: int,
    timeout_seconds: float,
    console: Console,
    difficulty: str = DIFFICULTIES[0],
) -> list[Row]:
    """Run every point in its own process, writing the bench files after each; the rows in point order. With
    difficulty "scaled" each point's target is scaled_target's, with "fixed" the config's."""
    passed: int | None = workers if cli_has_workers() else None
    if passed is None:
        console.log(f"chainlab sim has no --workers yet: every point runs its ML in one process (asked: {workers})")
    rows: list[Row] = []
    for i, point in enumerate(points, 1):
        folder = out / point.name
        console.log(f"[{i}/{len(points)}] {point.name}: started ({point.miners} miners, {point.network})")
        target = scaled_target(config, point.miners) if difficulty == "scaled" else None
        outcome = run_point(sim_command(config, folder, point, passed, target), folder / "sim.log", timeout_seconds)
        row = row_of(point, passed or 1, folder / "results.json", outcome, timeout_seconds, difficulty)
        rows.append(row)
        write_outputs(rows, out)
        if row["status"] == "ok":
            console.log(
                f"[{i}/{len(points)}] {point.name}: finished in {outcome.process_seconds:.1f} s "
                f"(wall {_cell(row['wall_seconds'], 1)} s, ML {_cell(row['ml_seconds'], 1)} s, "
                f"accuracy {_cell(row['ensemble_accuracy'], 4)})"
            )
        else:
            console.log(f"[{i}/{len(points)}] {point.name}: [red]{row['status']}[/red] ({folder / 'sim.log'})")
    return rows


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point: flags, defaulting to MINERS, NETWORKS, WORKERS, TIMEOUT and OUT from the environment."""
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(prog="python -m chainlab.sim.bench_scale", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--out", type=Path, default=Path(env.get("OUT") or DEFAULT_OUT))
    parser.add_argument("--miners", default=env.get("MINERS", ""), help='e.g. "10 100 250 1000" (env MINERS)')
    parser.add_argument("--networks", default=env.get("NETWORKS", ""), help='e.g. "full erdos_renyi" (env NETWORKS)')
    parser.add_argument("--workers", default=env.get("WORKERS", ""), help="ML workers per point (env WORKERS)")
    parser.add_argument("--timeout", default=env.get("TIMEOUT", ""), help="seconds per point (env TIMEOUT)")
    parser.add_argument(
        "--difficulty",
        default=env.get("DIFFICULTY", ""),
        help="scaled (default): the target keeps the time to a Key Block; fixed: the config's (env DIFFICULTY)",
    )
    args = parser.parse_args(argv)
    console = Console(log_path=False)
    try:
        points = points_of(parse_miners(args.miners), parse_networks(args.networks))
        workers, timeout_seconds = parse_workers(args.workers), parse_timeout(args.timeout)
        difficulty = parse_difficulty(args.difficulty)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    if not args.config.is_file():
        console.print(f"[red]error:[/red] no config at {args.config}")
        return 2
    rows = run_bench_scale(args.config, args.out, points, workers, timeout_seconds, console, difficulty)
    console.print(table(rows, f"bench-scale ({args.config})"))
    console.print(f"written: {args.out / 'bench.json'}, {args.out / 'bench.md'}, {args.out / 'bench.png'}")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
