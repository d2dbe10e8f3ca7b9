"""`chainlab load`: a live network under locust load: locust headless beside `chainlab up`, figures in results.json.

Also what the locust process shares with it: the load shapes (pure functions of elapsed time) and the documented
expected refusals. Nothing here imports locust: locust monkey-patches the process that imports it.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from chainlab.scenarios.experiment import Experiment

if TYPE_CHECKING:
    from chainlab.live.launcher import Hook, LiveNetwork

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtest" / "locustfile.py"
PLAN_ENV = "CHAINLAB_PLAN"
SHAPE_ENV = "CHAINLAB_LOAD_SHAPE"
METRICS_PORT_ENV = "CHAINLAB_LOAD_METRICS_PORT"
METRICS_HOST_ENV = "CHAINLAB_LOAD_METRICS_HOST"  # 0.0.0.0 in a pod, for Prometheus; loopback by default
SUBMIT_SECONDS_ENV = "CHAINLAB_LOAD_SUBMIT_SECONDS"  # seconds between SubmitTasks per locust process; 0: never
WAIT_ENV = "CHAINLAB_LOAD_WAIT"  # "min,max" seconds a user waits between its calls
# SubmitTask answers that are the requester's documented "not now" (loadtest/README.md): FAILED_PRECONDITION, a
# not-ready refusal (BagChain's requester: insufficient_funds, the fee exceeds its balance), and UNIMPLEMENTED (a
# requester that takes no tasks at run time). locust reports them as successes under "SubmitTask.refused"; any
# other status (INVALID_ARGUMENT: bad terms or data, INTERNAL, UNAVAILABLE, ...) is a failure.
EXPECTED_SUBMIT_REFUSALS = frozenset({"FAILED_PRECONDITION", "UNIMPLEMENTED"})
LOCUST_GRACE_SECONDS = 30.0  # beyond --run-time, for locust to start, stop its users and write its reports

ShapeTick = Callable[[float, int, float], tuple[int, float] | None]


def step_tick(elapsed: float, users: int, seconds: float, steps: int = 4) -> tuple[int, float] | None:
    """Users rise in `steps` equal steps to `users` over `seconds`, each step spawned within a second; then stop."""
    if elapsed >= seconds:
        return None
    per_step = max(1, math.ceil(users / steps))
    step = min(int(elapsed // (seconds / steps)), steps - 1)
    return min(users, per_step * (step + 1)), float(per_step)


def spike_tick(elapsed: float, users: int, seconds: float) -> tuple[int, float] | None:
    """A baseline of a fifth of `users`, a spike to `users` for the middle fifth of `seconds`, back; then stop."""
    if elapsed >= seconds:
        return None
    baseline = max(1, users // 5)
    spiking = 0.4 * seconds <= elapsed < 0.6 * seconds
    return (users if spiking else baseline), float(users)


SHAPES: dict[str, ShapeTick] = {"step": step_tick, "spike": spike_tick}


def parse_timespan(text: str) -> float:
    """Seconds of a locust-style time span: 40, 40s, 2m, 1h30m, 1m30s."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?", text)
    if not text or parts is None:
        raise ValueError(f"not a time span: {text!r} (e.g. 40s, 2m, 1m30s)")
    hours, minutes, seconds = (int(p or 0) for p in parts.groups())
    return float(3600 * hours + 60 * minutes + seconds)


@dataclass(frozen=True)
class RequestFigures:
    """locust's figures for one request name (or the total): counts, requests per second, percentiles in ms."""

    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    average_ms: float | None


def parse_stats_csv(path: Path) -> dict[str, object]:
    """locust's <prefix>_stats.csv as {"by_name": {name: figures}, "total": figures} (JSON-ready)."""
    by_name: dict[str, dict[str, object]] = {}
    total: dict[str, object] = asdict(RequestFigures(0, 0, 0.0, None, None, None))
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            figures = asdict(
                RequestFigures(
                    requests=int(row["Request Count"]),
                    failures=int(row["Failure Count"]),
                    rps=_number(row["Requests/s"]) or 0.0,
                    p50_ms=_number(row["50%"]),
                    p99_ms=_number(row["99%"]),
                    average_ms=_number(row["Average Response Time"]),
                )
            )
            if row["Name"] == "Aggregated" and not row["Type"]:
                total = dict(figures)
            else:
                by_name[row["Name"]] = dict(figures)
    return {"by_name": by_name, "total": total}


def parse_failures_csv(path: Path, limit: int = 10) -> list[dict[str, object]]:
    """The first `limit` distinct failures locust recorded: method, name, error, occurrences."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {"method": r["Method"], "name": r["Name"], "error": r["Error"], "occurrences": int(r["Occurrences"])}
        for r in rows[:limit]
    ]


def parse_exceptions_csv(path: Path, limit: int = 5) -> tuple[int, list[dict[str, object]]]:
    """How many exceptions locust's users raised outside calls (e.g. in on_start), and the first few messages."""
    if not path.exists():
        return 0, []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    kinds = [{"count": int(r["Count"]), "message": r["Message"]} for r in rows]
    return sum(int(r["Count"]) for r in rows), kinds[:limit]


def _number(text: str) -> float | None:
    """A CSV cell as a float; None for locust's N/A (no requests)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class LocustRun:
    """One headless locust run: users, spawn rate, time, shape, and which user classes (empty: all)."""

    users: int = 10
    spawn_rate: float = 5.0
    run_time: str = "40s"
    shape: str | None = None
    user_classes: tuple[str, ...] = ()
    submit_seconds: float = 20.0  # SubmitTask at most this often per locust process (0: never)
    wait: str | None = None  # "min,max" seconds between a user's calls (None: the locustfile's default)
    locustfile: Path = LOCUSTFILE
    extra_env: Mapping[str, str] = field(default_factory=dict)


def locust_command(run: LocustRun, prefix: Path) -> list[str]:
    """The locust command line: headless, bounded, CSV and HTML reports at prefix (locust run by this Python)."""
    if run.shape is not None and run.shape not in SHAPES:
        raise ValueError(f"unknown load shape {run.shape!r}; known: {', '.join(sorted(SHAPES))}")
    return [
        sys.executable, "-m", "locust", "-f", str(run.locustfile), "--headless",
        "-u", str(run.users), "-r", str(run.spawn_rate), "-t", run.run_time,
        "--csv", str(prefix), "--html", f"{prefix}.html", "--logfile", f"{prefix}.log", "--loglevel", "WARNING",
        "--only-summary", "--exit-code-on-error", "0", *run.user_classes,
    ]  # fmt: skip


async def run_locust(
    run: LocustRun, plan_path: Path, prefix: Path, metrics_port: int | None = None
) -> dict[str, object]:
    """Run locust headless against the network of plan_path until its run time is over; its parsed figures.

    The shape (if any), the plan and the exporter's port reach the locustfile through the environment.
    """
    prefix.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, PLAN_ENV: str(plan_path), SUBMIT_SECONDS_ENV: str(run.submit_seconds), **run.extra_env}
    env.pop(SHAPE_ENV, None)
    if run.shape is not None:
        env[SHAPE_ENV] = run.shape
    if run.wait is not None:
        env[WAIT_ENV] = run.wait
    if metrics_port is not None:
        env[METRICS_PORT_ENV] = str(metrics_port)
    started = time.perf_counter()
    with open(f"{prefix}.out", "wb") as output:
        process = await asyncio.create_subprocess_exec(
            *locust_command(run, prefix), env=env, stdout=output, stderr=asyncio.subprocess.STDOUT
        )
        try:
            code = await asyncio.wait_for(process.wait(), parse_timespan(run.run_time) + LOCUST_GRACE_SECONDS)
        except (TimeoutError, asyncio.CancelledError):
            process.kill()
            await process.wait()
            raise
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        tail = Path(f"{prefix}.out").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"locust wrote no statistics (exit code {code}):\n{tail}")
    exceptions, exception_kinds = parse_exceptions_csv(Path(f"{prefix}_exceptions.csv"))
    return {
        **parse_stats_csv(stats),
        "failure_kinds": parse_failures_csv(Path(f"{prefix}_failures.csv")),
        "exceptions": exceptions,  # raised by users outside a call: not in locust's failures, still a fault
        "exception_kinds": exception_kinds,
        "exit_code": code,
        "wall_seconds": time.perf_counter() - started,
        "users": run.users,
        "spawn_rate": run.spawn_rate,
        "run_time": run.run_time,
        "shape": run.shape,
        "user_classes": list(run.user_classes),
    }


LOCUST_TARGET_LABELS = {"service": "locust", "role": "load", "node": "locust"}


async def load_network(network: LiveNetwork, run: LocustRun, prefix: Path) -> dict[str, object]:
    """locust against a running network, its exporter registered as the run's `locust` scrape target."""
    from chainlab.live.processes import free_ports

    (port,) = free_ports(1)
    network.add_scrape_target("locust", f"127.0.0.1:{port}", dict(LOCUST_TARGET_LABELS))
    network.console.log(f"locust: {run.users} users, {run.run_time}, shape {run.shape or 'flat'}; reports {prefix}*")
    return await run_locust(run, network.plan_path, prefix, metrics_port=port)


@dataclass(frozen=True)
class LoadOptions:
    """What `chainlab load` was asked for: the network (as `chainlab up`) and the load on it."""

    experiment: Experiment
    out: Path
    round_seconds: float
    locust: LocustRun = field(default_factory=LocustRun)
    timeout_seconds: float = 600.0
    monitor: bool = True


async def run_load(options: LoadOptions, console: Console, after: Hook | None = None) -> dict[str, object]:
    """Start the network with locust loading it from the moment every service is healthy; results with `load`.

    <out>/results.json is the network's results plus the `load` section (per name and total: requests, failures,
    RPS, p50, p99); locust's CSV, HTML and log sit beside it. The network must still finish its tasks.
    """
    from chainlab.live.launcher import UpFailed, UpOptions, up

    load: dict[str, object] = {}

    async def during(network: LiveNetwork) -> None:
        load.update(await load_network(network, options.locust, options.out / "locust"))

    up_options = UpOptions(
        options.experiment,
        options.out,
        options.round_seconds,
        timeout_seconds=options.timeout_seconds,
        monitor=options.monitor,
    )
    results_path = options.out / "results.json"
    try:
        progress = _progress_logger(console)
        results: dict[str, object] = dict(await up(up_options, console, progress, during=during, after=after))
    except UpFailed:
        _add_load(results_path, load)
        raise
    results["load"] = load
    results_path.write_text(json.dumps(results, indent=2, sort_keys=True))
    return results


def _add_load(path: Path, load: Mapping[str, object]) -> None:
    """Put whatever locust measured into a partial results.json."""
    if path.exists():
        results = json.loads(path.read_text())
        results["load"] = dict(load)
        path.write_text(json.dumps(results, indent=2, sort_keys=True))


def _progress_logger(console: Console) -> Callable[[int, int], None]:
    """A progress callback that logs each new unit of progress (tasks, for BagChain) once."""
    seen = [0]

    def progress(done: int, round_: int) -> None:
        if done > seen[0]:
            seen[0] = done
            console.log(f"progress {done} at round {round_}")

    return progress


def load_table(load: Mapping[str, object], title: str) -> Table:
    """locust's figures per request name, then the total."""
    table = Table(title=title)
    for column in ("name", "requests", "failures", "req/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "name" else "right")
    by_name = load.get("by_name", {})
    total = load.get("total", {})
    assert isinstance(by_name, dict) and isinstance(total, dict)
    for name, figures in sorted(by_name.items()):
        table.add_row(name, *_cells(figures))
    table.add_row("total", *_cells(total), style="bold")
    return table


def _cells(figures: Mapping[str, object]) -> Sequence[str]:
    def ms(value: object) -> str:
        return f"{value:.0f}" if isinstance(value, int | float) else "-"

    rps = figures.get("rps", 0.0)
    return (
        str(figures.get("requests", 0)),
        str(figures.get("failures", 0)),
        f"{rps:.1f}" if isinstance(rps, int | float) else "-",
        ms(figures.get("p50_ms")),
        ms(figures.get("p99_ms")),
    )
