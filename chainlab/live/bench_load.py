"""`chainlab bench-load`: the requester's Predict against a no-op server, and the network's pace with and without load.

(1) A finished network is kept up (`up(..., after=...)`) while locust's RequesterUser runs against the real requester
and then against chainlab.live.noop_requester (same plumbing, no work), alternately, `repeats` times each with the
same users, spawn rate and duration: medians of Predict's RPS, p50 and p99, and the ratio real / no-op.
(2) Key Blocks per wall second and per round, and ensemble accuracy, of that unloaded run and of a `chainlab load`
run of the same network. Writes <out>/bench_load.json and <out>/bench_load.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.table import Table

from chainlab.live.load import WAIT_ENV, LoadOptions, LocustRun, run_load, run_locust
from chainlab.scenarios.experiment import Experiment

if TYPE_CHECKING:
    from chainlab.live.launcher import LiveNetwork

CLOSED_LOOP = "0,0"  # locust users' wait between calls, min,max seconds: none
RATIO_GOAL = 0.7  # real Predict RPS / no-op Predict RPS, same offered load
P99_GOAL_MS = 50.0
BENCH_FILE = "bench_load.json"
TABLE_FILE = "bench_load.md"
PREDICT = "Predict"
WARM_ROWS = 10


@dataclass(frozen=True)
class BenchLoadOptions:
    """The network (as `chainlab up`), the Predict comparison's locust runs, and the loaded run's locust."""

    experiment: Experiment
    out: Path
    round_seconds: float
    # Closed loop (users never wait): the servers' capacity, so the ratio compares what each can serve. At the
    # locustfile's paced default both serve every call offered and the ratio says nothing (`make load` shows it).
    predict: LocustRun = field(
        default_factory=lambda: LocustRun(users=10, spawn_rate=10.0, run_time="15s", wait=CLOSED_LOOP)
    )
    repeats: int = 3
    load: LocustRun = field(default_factory=lambda: LocustRun(users=10, spawn_rate=5.0, run_time="60s"))
    timeout_seconds: float = 600.0
    network_repeats: int = 3  # runs without and with load, alternated: live runs' pace varies by ~15 %


async def run_bench(options: BenchLoadOptions, console: Console) -> dict[str, object]:
    """Both parts of the benchmark, written to <out>/bench_load.json and <out>/bench_load.md."""
    from chainlab.live.launcher import UpOptions, up

    if options.repeats < 1 or options.network_repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {options.repeats} and {options.network_repeats}")
    predict: dict[str, object] = {}

    async def compare(network: LiveNetwork) -> None:
        predict.update(await compare_predict(network, options, console))

    # No SubmitTask: both kinds of run do the same tasks, so their pace compares.
    load = replace(options.load, submit_seconds=0.0)
    quiet_runs: list[dict[str, object]] = []
    loaded_runs: list[dict[str, object]] = []
    last_load: Mapping[str, object] = {}
    for k in range(options.network_repeats):
        first = k == 0
        what = ", then Predict against it and against a no-op requester" if first else ""
        console.log(f"bench-load run {k + 1}/{options.network_repeats}: the network without load{what}")
        # Monitored like the loaded run (`chainlab load` always is), so that Prometheus' share of the CPU is the same.
        up_options = UpOptions(
            options.experiment,
            options.out / f"quiet-{k}",
            options.round_seconds,
            timeout_seconds=options.timeout_seconds,
            monitor=True,
        )
        quiet = await up(up_options, console, lambda done, round_: None, after=compare if first else None)
        quiet_runs.append(network_figures(quiet))
        console.log(f"bench-load run {k + 1}/{options.network_repeats}: the same network under locust load")
        load_options = LoadOptions(
            options.experiment, options.out / f"loaded-{k}", options.round_seconds, load, options.timeout_seconds
        )
        loaded = await run_load(load_options, console)
        loaded_runs.append(network_figures(loaded))
        section = loaded.get("load")
        last_load = section if isinstance(section, dict) else {}
    bench: dict[str, object] = {
        "experiment": options.experiment.get("name", ""),
        "predict": predict,
        "network": {
            "without_load": median_figures(quiet_runs),
            "with_load": median_figures(loaded_runs),
            "runs": {"without_load": quiet_runs, "with_load": loaded_runs},
        },
        "load": last_load,
    }
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / BENCH_FILE).write_text(json.dumps(bench, indent=2, sort_keys=True))
    (options.out / TABLE_FILE).write_text(markdown(bench))
    for table in tables(bench):
        console.print(table)
    return bench


async def compare_predict(network: LiveNetwork, options: BenchLoadOptions, console: Console) -> dict[str, object]:
    """Predict on the real requester and on a no-op one, alternately; medians and the ratio of RPS."""
    from chainlab.live.launcher import wait_healthy
    from chainlab.live.processes import free_ports

    out = options.out / "predict"
    out.mkdir(parents=True, exist_ok=True)
    await warm_up(network)
    (port,) = free_ports(1)
    noop_address = f"127.0.0.1:{port}"
    noop_plan = out / "noop_plan.json"
    noop_plan.write_text(json.dumps(with_requester(json.loads(network.plan_path.read_text()), noop_address)))
    with (out / "noop_requester.log").open("wb") as log:
        noop = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chainlab.live.noop_requester", "--listen", noop_address, stdout=log, stderr=log
        )
    try:
        await wait_healthy(noop_address, timeout=30.0, alive=lambda: noop.returncode is None)
        # Only the requester's users, and no SubmitTask: both servers see the same calls.
        run = replace(options.predict, user_classes=("RequesterUser",), submit_seconds=0.0)
        runs: dict[str, list[dict[str, float | int | None]]] = {"requester": [], "noop": []}
        for k in range(options.repeats):
            for target, plan in (("requester", network.plan_path), ("noop", noop_plan)):
                figures = await run_locust(run, plan, out / f"{target}-{k}" / "locust")
                runs[target].append(predict_figures(figures))
                console.log(f"Predict on {target} #{k + 1}: {runs[target][-1]}")
    finally:
        if noop.returncode is None:
            noop.terminate()
        await noop.wait()
    return summarise_predict(runs, run)


async def warm_up(network: LiveNetwork) -> None:
    """One Predict per finished task, as its first user would, so that fetching its ensemble is not timed."""
    import grpc

    from chainlab.learning.datasets import decode_dataset
    from chainlab.live.server import insecure_channel
    from chainlab.live.storage_client import StorageClient
    from chainlab.proto.v1 import queries_pb2, queries_pb2_grpc

    assert network.plan is not None
    plan = network.plan
    async with StorageClient(plan.storage) as storage:
        test = await asyncio.to_thread(decode_dataset, await storage.get(plan.data["test"]))
    rows = np.ascontiguousarray(test.X[:WARM_ROWS], dtype="<f4")
    requester = next(e for e in plan.nodes if e.role == "requester")
    async with insecure_channel(requester.listen) as channel:
        stub = queries_pb2_grpc.RequesterStub(channel)
        reply = await stub.TaskStatus(queries_pb2.TaskStatusRequest(), timeout=10.0)
        for state in reply.tasks:
            if state.state != "done":
                continue
            request = queries_pb2.PredictRequest(
                task_id=state.task_id, rows=len(rows), features=rows.shape[1], samples=rows.tobytes()
            )
            try:
                await stub.Predict(request, timeout=60.0)
            except grpc.aio.AioRpcError as exc:
                network.console.log(f"warm-up Predict failed: {exc.code().name}: {exc.details()}")


def with_requester(plan: Mapping[str, object], address: str) -> dict[str, object]:
    """A copy of a plan (as JSON) whose requester listens at address: locust then calls that server instead."""
    nodes = plan.get("nodes")
    assert isinstance(nodes, list)
    moved = [{**node, "listen": address} if node.get("role") == "requester" else dict(node) for node in nodes]
    return {**plan, "nodes": moved}


def predict_figures(load: Mapping[str, object]) -> dict[str, float | int | None]:
    """Predict's row of one locust run: requests, failures, RPS, p50 and p99 (ms)."""
    by_name = load.get("by_name", {})
    assert isinstance(by_name, dict)
    row = by_name.get(PREDICT, {})
    return {key: row.get(key) for key in ("requests", "failures", "rps", "p50_ms", "p99_ms")}


def summarise_predict(
    runs: Mapping[str, Sequence[Mapping[str, float | int | None]]], run: LocustRun
) -> dict[str, object]:
    """Medians per server, the RPS ratio real / no-op, and the goals (ratio >= 0.7, real p99 < 50 ms)."""
    medians = {
        target: {key: _median([r[key] for r in rs]) for key in ("rps", "p50_ms", "p99_ms")}
        for target, rs in runs.items()
    }
    real, noop = medians["requester"], medians["noop"]
    ratio = real["rps"] / noop["rps"] if real["rps"] is not None and noop["rps"] else None
    failures = sum(int(r["failures"] or 0) for rs in runs.values() for r in rs)
    return {
        "users": run.users,
        "spawn_rate": run.spawn_rate,
        "run_time": run.run_time,
        "wait": run.wait or os.environ.get(WAIT_ENV, "0.05,0.15"),  # seconds between a user's calls
        "repeats": {target: list(rs) for target, rs in runs.items()},
        "median": medians,
        "rps_ratio": ratio,
        "failures": failures,
        "goals": {
            "rps_ratio_min": RATIO_GOAL,
            "rps_ratio_met": ratio is not None and ratio >= RATIO_GOAL,
            "p99_ms_max": P99_GOAL_MS,
            "p99_met": real["p99_ms"] is not None and real["p99_ms"] < P99_GOAL_MS,
        },
    }


def _median(values: Sequence[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def network_figures(results: Mapping[str, object]) -> dict[str, object]:
    """Key Blocks per wall second and per round (to the last Key Block), and ensemble accuracy, of one run.

    Live rounds are wall-clock rounds since the plan's epoch, so wall seconds to the last Key Block are its round
    times round_seconds.
    """
    protocol = results.get("protocol_results", {})
    assert isinstance(protocol, dict)
    heights = protocol.get("heights", [])
    round_seconds = results.get("round_seconds")
    last_round = max((int(h["round"]) for h in heights), default=0)
    key_blocks = len(heights)
    seconds = last_round * float(round_seconds) if isinstance(round_seconds, int | float) else None
    return {
        "key_blocks": key_blocks,
        "last_key_block_round": last_round,
        "key_blocks_per_round": key_blocks / last_round if last_round else None,
        "key_blocks_per_wall_second": key_blocks / seconds if seconds else None,
        "ensemble_accuracy": protocol.get("ensemble_accuracy"),
        "ensemble_accuracy_by_height": [h.get("ensemble_accuracy") for h in heights],
        "tips_agree": results.get("tips_agree"),
        "truncated": results.get("truncated"),
        "wall_seconds": results.get("wall_seconds"),
    }


def median_figures(runs: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """Medians of the numeric figures of several runs; tips agree only if they did in every run."""
    out: dict[str, object] = {"runs": len(runs)}
    for key in (
        "key_blocks",
        "key_blocks_per_round",
        "key_blocks_per_wall_second",
        "ensemble_accuracy",
        "wall_seconds",
    ):
        values = [v for r in runs if isinstance(v := r.get(key), int | float) and not isinstance(v, bool)]
        out[key] = _median(values)
    out["tips_agree"] = all(r.get("tips_agree") is True for r in runs)
    out["truncated"] = any(r.get("truncated") is True for r in runs)
    return out


def _fmt(value: object, digits: int = 2) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return str(value)


def _predict_rows(bench: Mapping[str, object]) -> list[list[str]]:
    predict = bench.get("predict", {})
    assert isinstance(predict, dict)
    median = predict.get("median", {})
    rows = []
    for target in ("requester", "noop"):
        m = median.get(target, {})
        rows.append([target, _fmt(m.get("rps"), 1), _fmt(m.get("p50_ms"), 0), _fmt(m.get("p99_ms"), 0)])
    goals = predict.get("goals", {})
    rows.append(
        [
            "ratio real / no-op",
            _fmt(predict.get("rps_ratio")),
            f"goal >= {RATIO_GOAL}",
            f"p99 goal < {P99_GOAL_MS:g} ms: {goals.get('p99_met')}",
        ]
    )
    return rows


def _network_rows(bench: Mapping[str, object]) -> list[list[str]]:
    network = bench.get("network", {})
    assert isinstance(network, dict)
    rows = []
    for label, key in (("without load", "without_load"), ("with load", "with_load")):
        f = network.get(key, {})
        rows.append(
            [
                label,
                _fmt(f.get("key_blocks"), 0),
                _fmt(f.get("key_blocks_per_wall_second"), 4),
                _fmt(f.get("key_blocks_per_round"), 5),
                _fmt(f.get("ensemble_accuracy"), 3),
                _fmt(f.get("tips_agree")),
            ]
        )
    return rows


PREDICT_COLUMNS = ("Predict on", "RPS (median)", "p50 ms", "p99 ms")
NETWORK_COLUMNS = ("network", "Key Blocks", "KB / wall s", "KB / round", "ensemble accuracy", "tips agree")


def markdown(bench: Mapping[str, object]) -> str:
    """The two tables as Markdown."""
    predict = bench.get("predict", {})
    assert isinstance(predict, dict)
    repeats = len(predict.get("repeats", {}).get("noop", []))
    head = (
        f"locust RequesterUser x{predict.get('users')}, waits {predict.get('wait')} s, {predict.get('run_time')}"
        f" per run, medians of {repeats} runs"
    )
    lines = [f"# bench-load: {bench.get('experiment')}", "", f"## Predict ({head})", ""]
    lines += _markdown_table(PREDICT_COLUMNS, _predict_rows(bench))
    network = bench.get("network", {})
    runs = network.get("without_load", {}).get("runs", 1) if isinstance(network, dict) else 1
    lines += ["", f"## Key Block throughput and accuracy (medians of {runs} runs each, alternated)", ""]
    lines += _markdown_table(NETWORK_COLUMNS, _network_rows(bench))
    return "\n".join(lines) + "\n"


def _markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def tables(bench: Mapping[str, object]) -> list[Table]:
    """The two tables for the console."""
    out = []
    for title, columns, rows in (
        ("bench-load: Predict, real requester vs no-op", PREDICT_COLUMNS, _predict_rows(bench)),
        ("bench-load: the network without and with load", NETWORK_COLUMNS, _network_rows(bench)),
    ):
        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        out.append(table)
    return out
