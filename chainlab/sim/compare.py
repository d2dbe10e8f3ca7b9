"""`make compare`: five protocols, one world (protocols.md section 6), each point a fresh `chainlab sim`.

Run as `chainlab compare --config experiments/compare/compare.yaml --out runs/compare` (or
`python -m chainlab.sim.compare`).
Every point of the compare config (chainlab.scenarios.compare) is written as its own experiment YAML and run in
its own process with a timeout; a point that fails or times out is recorded with its error and the rest go on.
The harness reads each results.json's `protocol_results.comparison` block and the generic figures around it, and
writes <out>/summary.json, <out>/report.md and four plots.

One clock: a comparison history is on virtual rounds unless its block says `"clock": "height"` (BFLC's FL rounds:
the chain height each model was written at); the simulator's `round_trace` maps heights onto the virtual round at
which the observer reached them, and virtual rounds onto wall-clock seconds since the run began.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chainlab.scenarios.compare import CLEAN, IID, CompareConfig, Expansion, Point, expand, load_compare
from chainlab.sim.bench_scale import available_cores, run_point

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TARGET_ACCURACY = 0.85  # protocols.md 6, metric 2: time to 85 % accuracy
BREAKDOWN_DROP = 0.10  # metric 5: the smallest f with accuracy below the clean value minus 10 pp
Row = dict[str, object]
PLOTS = ("accuracy_vs_f.png", "accuracy_over_rounds.png", "accuracy_over_seconds.png", "bytes_vs_accuracy.png")
ROUND, HEIGHT = "round", "height"  # a comparison history's clocks (the block's `clock`, ROUND when absent)


def sim_command(config: Path, out: Path, workers: int) -> list[str]:
    """The `chainlab sim` command line of one point."""
    command = [sys.executable, "-m", "chainlab.cli", "sim", "--config", str(config), "--out", str(out)]
    return [*command, "--workers", str(workers)]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def time_to(history: object, target: float = TARGET_ACCURACY, axis: str = "rounds") -> float | None:
    """The first value on axis ("rounds" or "seconds") of a comparison history at which accuracy reaches target;
    None if it never does."""
    if not isinstance(history, Mapping):
        return None
    rounds, accuracy = history.get(axis), history.get("accuracy")
    if not isinstance(rounds, list) or not isinstance(accuracy, list):
        return None
    for r, a in zip(rounds, accuracy, strict=False):
        if (x := _number(a)) is not None and x >= target and _number(r) is not None:
            return float(r)
    return None


def _series(trace: Mapping[str, object], key: str) -> list[float] | None:
    values = trace.get(key)
    if not isinstance(values, list):
        return None
    numbers = [_number(v) for v in values]
    return None if any(v is None for v in numbers) else [float(v) for v in numbers if v is not None]


def on_one_clock(history: object, clock: object, trace: object) -> dict[str, list[float]]:
    """A comparison history as {"rounds", "seconds", "accuracy"}: rounds virtual (a HEIGHT history's heights
    become the first traced round at which the observer reached them; points it never reached are dropped),
    seconds the wall-clock time since the run began at that round (interpolated in the trace; empty without
    one)."""
    out: dict[str, list[float]] = {"rounds": [], "seconds": [], "accuracy": []}
    if not isinstance(history, Mapping):
        return out
    xs, ys = history.get("rounds"), history.get("accuracy")
    if not isinstance(xs, list) or not isinstance(ys, list):
        return out
    pairs = [
        (x, y) for a, b in zip(xs, ys, strict=False) if (x := _number(a)) is not None and (y := _number(b)) is not None
    ]
    traced = trace if isinstance(trace, Mapping) else {}
    t_rounds, t_seconds, t_heights = (_series(traced, k) for k in ("rounds", "seconds", "heights"))
    usable = t_rounds is not None and t_seconds is not None and len(t_rounds) == len(t_seconds) > 0
    for x, y in pairs:
        if clock == HEIGHT:
            if t_heights is None or t_rounds is None or len(t_heights) != len(t_rounds):
                continue  # heights with no trace to place them on: not on the common clock
            at = next((r for r, h in zip(t_rounds, t_heights, strict=True) if h >= x), None)
            if at is None:
                continue
            x = at
        out["rounds"].append(x)
        out["accuracy"].append(y)
        if usable:
            assert t_rounds is not None and t_seconds is not None
            out["seconds"].append(_interpolate(x, t_rounds, t_seconds))
    if not usable:
        out["seconds"] = []
    return out


def _interpolate(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """ys at x, linear between the trace's points, clamped to its ends."""
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def row_of(point: Point, folder: Path, returncode: int | None, seconds: float, log_tail: str, timeout: float) -> Row:
    """One point's summary.json row: figures from its results.json, or the error that kept it from one."""
    row: Row = {
        "protocol": point.protocol,
        "fraction": point.fraction,
        "attack": point.attack,
        "seed": point.seed,
        "name": point.name,
        "status": "ok",
        "error": None,
        "process_seconds": seconds,
        "results": str(folder / "results.json"),
    }
    if returncode is None:
        row.update(status="timeout", error=f"timed out after {timeout:g} s; log tail: {log_tail}")
        return row
    if returncode != 0:
        row.update(status="failed", error=f"exit code {returncode}; log tail: {log_tail}")
        return row
    try:
        results = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError) as exc:
        row.update(status="failed", error=f"exit code 0 but no readable results.json: {exc}")
        return row
    row.update(read_results(results))
    return row


def read_results(results: object) -> Row:
    """The figures the report needs from one results.json (schema 2): generic keys and the comparison block."""
    if not isinstance(results, Mapping):
        return {"status": "failed", "error": "results.json is not an object"}
    own = results.get("protocol_results")
    comparison = own.get("comparison") if isinstance(own, Mapping) else None
    if not isinstance(comparison, Mapping):
        return {"status": "failed", "error": "results.json has no protocol_results.comparison block"}
    wire = results.get("wire_bytes")
    wire = wire if isinstance(wire, Mapping) else {}
    clock = comparison.get("clock", ROUND)
    history = on_one_clock(comparison.get("history"), clock, results.get("round_trace"))
    forks = [f for f in (_number(comparison.get("forks")), _number(results.get("forks"))) if f is not None]
    return {
        "accuracy": _number(comparison.get("accuracy")),
        "history": history,
        "history_clock": clock if clock in (ROUND, HEIGHT) else str(clock),
        "time_to_target": time_to(history),
        "seconds_to_target": time_to(history, axis="seconds"),
        "chain_bytes": _number(comparison.get("chain_bytes")),
        "blocks": _number(comparison.get("blocks")),
        "forks": max(forks) if forks else None,
        "honest_reward_share": _number(comparison.get("honest_reward_share")),
        "payload_bytes": _number(wire.get("payload")),
        "served_bytes": _number(wire.get("served")),
        "control_bytes": _number(wire.get("control")),
        "total_bytes": _number(wire.get("total")),
        "per_node_bytes": _number(wire.get("per_node_mean")),
        "per_node_max_bytes": _number(wire.get("per_node_max")),
        "wall_seconds": _number(results.get("wall_seconds")),
        "ml_seconds": _number(results.get("ml_seconds")),
        "protocol_cpu_share": _number(results.get("protocol_cpu_share")),
        "codec_cpu_share": _number(results.get("codec_cpu_share")),
        "rounds": _number(results.get("rounds")),
        "truncated": bool(results.get("truncated")),
    }


# --- aggregation ----------------------------------------------------------------------------------------

CELL_KEYS = (
    "accuracy",
    "time_to_target",
    "seconds_to_target",
    "payload_bytes",
    "served_bytes",
    "control_bytes",
    "per_node_bytes",
    "per_node_max_bytes",
    "chain_bytes",
    "protocol_cpu_share",
    "blocks",
    "forks",
    "honest_reward_share",
    "wall_seconds",
)


def _stats(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def aggregate(rows: Sequence[Row], attacks: Sequence[str]) -> list[Row]:
    """One cell per (protocol, attack, f), mean and sd over seeds of each figure; the clean f = 0 points count
    for every attack."""
    cells: list[Row] = []
    protocols = list(dict.fromkeys(str(r["protocol"]) for r in rows))
    for protocol in protocols:
        mine = [r for r in rows if r["protocol"] == protocol and r["status"] == "ok"]
        fractions = sorted({_float(r["fraction"]) for r in rows if r["protocol"] == protocol})
        for attack in attacks:
            for f in fractions:
                label = CLEAN if f == 0 else attack
                here = [r for r in mine if _float(r["fraction"]) == f and r["attack"] == label]
                if f > 0 and not any(r["protocol"] == protocol and r["attack"] == attack for r in rows):
                    continue
                cell: Row = {"protocol": protocol, "attack": attack, "fraction": f, "seeds": len(here)}
                for key in CELL_KEYS:
                    cell[key] = _stats([v for r in here if (v := _number(r.get(key))) is not None])
                cells.append(cell)
    return cells


def breakdown(cells: Sequence[Row]) -> dict[str, dict[str, float | None]]:
    """Per protocol and attack: the smallest f whose mean accuracy falls below the clean mean minus 10 pp (None:
    no breakdown within the grid, or no clean value)."""
    out: dict[str, dict[str, float | None]] = {}
    for cell in cells:
        protocol, attack = str(cell["protocol"]), str(cell["attack"])
        out.setdefault(protocol, {}).setdefault(attack, None)
    for protocol, per_attack in out.items():
        for attack in per_attack:
            mine = sorted(
                (c for c in cells if c["protocol"] == protocol and c["attack"] == attack),
                key=lambda c: _float(c["fraction"]),
            )
            clean = next((_mean(c) for c in mine if _float(c["fraction"]) == 0), None)
            if clean is None:
                continue
            for c in mine:
                accuracy = _mean(c)
                if _float(c["fraction"]) > 0 and accuracy is not None and accuracy < clean - BREAKDOWN_DROP:
                    per_attack[attack] = _float(c["fraction"])
                    break
    return out


def _mean(cell: Mapping[str, object], key: str = "accuracy") -> float | None:
    stats = cell.get(key)
    return _number(stats.get("mean")) if isinstance(stats, Mapping) else None


def _float(value: object) -> float:
    number = _number(value)
    return 0.0 if number is None else number


# --- report ---------------------------------------------------------------------------------------------


def _fmt(cell: Mapping[str, object], key: str, kind: str) -> str:
    stats = cell.get(key)
    if not isinstance(stats, Mapping) or _number(stats.get("mean")) is None:
        return "—"
    mean, sd, n = _float(stats.get("mean")), _float(stats.get("sd")), int(_float(stats.get("n")))
    if kind == "pct":
        return f"{100 * mean:.2f} ± {100 * sd:.2f}" if n > 1 else f"{100 * mean:.2f}"
    if kind == "bytes":
        return _bytes(mean)
    if kind == "share":
        return f"{100 * mean:.1f} %"
    return f"{mean:.0f}" if kind == "count" else f"{mean:.1f}"


def _bytes(value: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


TABLE = (
    ("accuracy % (mean ± sd)", "accuracy", "pct"),
    ("rounds to 85 %", "time_to_target", "count"),
    ("s to 85 %", "seconds_to_target", "seconds"),
    ("payload bytes", "payload_bytes", "bytes"),
    ("served bytes", "served_bytes", "bytes"),
    ("control bytes", "control_bytes", "bytes"),
    ("sent/node (mean)", "per_node_bytes", "bytes"),
    ("sent/node (max)", "per_node_max_bytes", "bytes"),
    ("chain bytes/node", "chain_bytes", "bytes"),
    ("chain CPU share", "protocol_cpu_share", "share"),
    ("blocks", "blocks", "count"),
    ("forks", "forks", "count"),
    ("honest reward share", "honest_reward_share", "share"),
    ("wall s", "wall_seconds", "seconds"),
)


def markdown(summary: Mapping[str, object]) -> str:
    """report.md: the main table (protocol x attack x f), breakdown fractions, and what did not run."""
    config = summary["config"]
    assert isinstance(config, Mapping)
    cells = summary["cells"]
    assert isinstance(cells, list)
    lines = [
        f"# {config.get('name')}: five protocols, one world",
        "",
        str(config.get("description") or ""),
        "",
        f"{summary['points_ok']}/{summary['points_total']} points ran in {_float(summary['wall_seconds']):.0f} s "
        f"(seeds {config.get('seeds')}, f in {config.get('fractions')}, attacks {config.get('attacks')}).",
        "",
        "## Main table",
        "",
        "| protocol | attack | f | seeds | " + " | ".join(title for title, _, _ in TABLE) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in TABLE) + " |",
    ]
    for cell in cells:
        figures = " | ".join(_fmt(cell, key, kind) for _, key, kind in TABLE)
        lines.append(f"| {cell['protocol']} | {cell['attack']} | {cell['fraction']:g} | {cell['seeds']} | {figures} |")
    lines += [
        "",
        "## Breakdown fraction",
        "",
        "The smallest f with mean accuracy below the clean value minus 10 pp.",
        "",
    ]
    lines += ["| protocol | " + " | ".join(map(str, config.get("attacks", []))) + " |"]
    lines += ["| --- | " + " | ".join("---" for _ in config.get("attacks", [])) + " |"]
    found = summary["breakdown"]
    assert isinstance(found, Mapping)
    for protocol, per_attack in found.items():
        values = [per_attack.get(a) for a in config.get("attacks", [])]
        lines.append(f"| {protocol} | " + " | ".join("none in grid" if v is None else f"{v:g}" for v in values) + " |")
    lines += iid_table(summary)
    lines += ["", "## Notes", ""]
    notes = summary["not_run"]
    assert isinstance(notes, list)
    if not notes:
        lines.append("- Every protocol of the config ran.")
    for note in notes:
        assert isinstance(note, Mapping)
        what = note["protocol"] if note.get("point") is None else note["point"]
        lines.append(f"- {what}: not run: {note['reason']}")
    rows = summary["points"]
    assert isinstance(rows, list)
    for row in rows:
        assert isinstance(row, Mapping)
        if row["status"] != "ok":
            error = str(row["error"]).replace("\n", " ")[-300:]
            lines.append(f"- {row['name']}: {row['status']}: {error}")
        elif row.get("truncated"):
            lines.append(f"- {row['name']}: truncated at max_rounds (figures are as far as it got)")
        if (share := _number(row.get("protocol_cpu_share"))) is not None and share > 1:
            lines.append(
                f"- {row['name']}: chain CPU share {100 * share:.0f} % > 100 %: the handlers' time is wall-clock "
                "and the total is CPU time, so a machine under load inflates it"
            )
    lines += [
        "- Final accuracy is on the report set D_R no protocol sees. Histories are on one clock: virtual rounds "
        "(BFLC's FL rounds placed at the virtual round its observer's chain reached that height) and wall-clock "
        "seconds since the run began (the simulator's `round_trace`, build and pre-training included). Each is the "
        "protocol's output model on D_R; DFL's is the mean over its honest, unflipped nodes of each one's model, "
        "snapshotted at each history point and measured on D_R afterwards.",
        "- Bytes on the wire (simulation's `wire_bytes`, one copy per receiver): payload is model or gradient data "
        "in broadcast/sent messages; served is point-to-point answers and storage transfers (BagChain's base "
        "models, the marketplace's blobs, catch-up blocks); control is the rest of the messages; sent/node is "
        "bytes sent or served per node (mean over nodes, and the largest).",
        "- Chain CPU share is results.json's `protocol_cpu_share`: the time spent inside the nodes' protocol "
        "handlers (validation, hashing, signing and verifying, block building, answering requests) over all CPU "
        "the run used (the simulator's process plus the ML workers). The simulated PoW nonce search, the wire "
        "codec and the network model run outside the handlers and are not in it.",
        "",
        "## Deviations",
        "",
        *[f"- {d}" for d in config.get("deviations", [])],
        "",
        "## Plots",
        "",
        *[f"![{name}]({name})" for name in PLOTS],
        "",
    ]
    return "\n".join(lines)


def iid_table(summary: Mapping[str, object]) -> list[str]:
    """The IID control (protocols.md 6): each protocol's clean accuracy on the Dirichlet split and on an iid one,
    mean over seeds; nothing when the config ran no IID points."""
    rows = [r for r in summary["points"] if isinstance(r, Mapping)] if isinstance(summary["points"], list) else []
    controls = [r for r in rows if r.get("attack") == IID]
    if not controls:
        return []
    lines = [
        "",
        "## IID control",
        "",
        "Clean (f = 0) accuracy on D_R with the world's partition and with an iid one, mean over seeds.",
        "",
        "| protocol | partition | iid | gap (pp) |",
        "| --- | --- | --- | --- |",
    ]
    for protocol in dict.fromkeys(str(r["protocol"]) for r in controls):
        values = {}
        for label in (CLEAN, IID):
            mine = [_number(r.get("accuracy")) for r in rows if r["protocol"] == protocol and r["attack"] == label]
            ok = [v for v in mine if v is not None]
            values[label] = statistics.fmean(ok) if ok else None
        clean, iid = values[CLEAN], values[IID]
        gap = "—" if clean is None or iid is None else f"{100 * (iid - clean):+.2f}"
        shown = ["—" if v is None else f"{100 * v:.2f}" for v in (clean, iid)]
        lines.append(f"| {protocol} | {shown[0]} | {shown[1]} | {gap} |")
    return lines


def plots(summary: Mapping[str, object], out: Path) -> None:
    """accuracy vs f per protocol (a panel per attack), accuracy over rounds at f = 0, bytes on the wire vs
    accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    cells = [c for c in summary["cells"] if isinstance(c, dict)] if isinstance(summary["cells"], list) else []
    rows = [r for r in summary["points"] if isinstance(r, dict)] if isinstance(summary["points"], list) else []
    config = summary["config"]
    attacks = [str(a) for a in config.get("attacks", [])] if isinstance(config, Mapping) else []
    protocols = list(dict.fromkeys(str(c["protocol"]) for c in cells))

    figure = Figure(figsize=(5 * max(1, len(attacks)), 4), layout="constrained")
    panels = figure.subplots(1, max(1, len(attacks)), squeeze=False)[0]
    for axes, attack in zip(panels, attacks, strict=False):
        for protocol in protocols:
            mine = sorted((c for c in cells if c["protocol"] == protocol and c["attack"] == attack), key=_fraction)
            points = [(_fraction(c), _mean(c)) for c in mine]
            xs = [100 * f for f, a in points if a is not None]
            ys = [100 * a for _, a in points if a is not None]
            if xs:
                axes.plot(xs, ys, marker="o", label=protocol)
        axes.set_xlabel("malicious participants (%)")
        axes.set_ylabel("accuracy on D_R (%)")
        axes.set_title(f"attack: {attack}")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    _save(figure, out / PLOTS[0])

    for axis, label, name in (
        ("rounds", "virtual round", PLOTS[1]),
        ("seconds", "wall-clock seconds since the run began", PLOTS[2]),
    ):
        figure = Figure(figsize=(6, 4), layout="constrained")
        axes = figure.subplots()
        for protocol in protocols:
            clean = [r for r in rows if r["protocol"] == protocol and r["attack"] == CLEAN and r["status"] == "ok"]
            if not clean:
                continue
            history = clean[0].get("history")
            if isinstance(history, Mapping) and history.get(axis) and len(history[axis]) == len(history["accuracy"]):
                xs, accuracy = list(history[axis]), list(history["accuracy"])
                axes.plot(
                    xs, [100 * _float(a) for a in accuracy], marker=".", label=f"{protocol} (seed {clean[0]['seed']})"
                )
        axes.axhline(100 * TARGET_ACCURACY, color="grey", linestyle=":", linewidth=1)
        axes.set_xlabel(label)
        axes.set_ylabel("accuracy (%)")
        axes.set_title(f"accuracy over {axis} at f = 0")
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
        _save(figure, out / name)

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    for protocol in protocols:
        mine = [r for r in rows if r["protocol"] == protocol and r["status"] == "ok"]
        pairs = [
            (_wire_total(r), _float(r.get("accuracy")))
            for r in mine
            if _number(r.get("payload_bytes")) is not None and _number(r.get("accuracy")) is not None
        ]
        if pairs:
            axes.scatter([b / 1e6 for b, _ in pairs], [100 * a for _, a in pairs], label=protocol)
    axes.set_xscale("symlog")
    axes.set_xlabel("bytes on the wire, payload + served + control (MB)")
    axes.set_ylabel("accuracy on D_R (%)")
    axes.set_title("bytes on the wire vs accuracy (every point)")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    _save(figure, out / PLOTS[3])


def _wire_total(row: Mapping[str, object]) -> float:
    total = _number(row.get("total_bytes"))
    if total is not None:
        return total
    return sum(_float(row.get(key)) for key in ("payload_bytes", "served_bytes", "control_bytes"))


def _fraction(cell: Mapping[str, object]) -> float:
    return _float(cell["fraction"])


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def write_outputs(config: CompareConfig, expansion: Expansion, rows: Sequence[Row], out: Path, wall: float) -> Row:
    """summary.json, report.md and the plots from the rows so far; returns the summary."""
    cells = aggregate(rows, config.attacks)
    ran = {str(r["protocol"]) for r in rows}
    summary: Row = {
        "config": {
            "name": config.name,
            "description": config.description,
            "deviations": list(config.deviations),
            "participants": config.participants,
            "seeds": list(config.seeds),
            "fractions": list(config.fractions),
            "attacks": list(config.attacks),
            "iid_control": config.iid_control,
            "world": dict(config.world),
        },
        "protocols": sorted(ran),
        "points_total": len(expansion.points),
        "points_ok": sum(1 for r in rows if r["status"] == "ok"),
        "wall_seconds": wall,
        "not_run": [{"protocol": s.protocol, "point": s.point, "reason": s.reason} for s in expansion.skipped],
        "cells": cells,
        "breakdown": breakdown(cells),
        "points": list(rows),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "report.md").write_text(markdown(summary))
    plots(summary, out)
    return summary


def run_compare(config: CompareConfig, out: Path, jobs: int, console: Console) -> Row:
    """Run every point (jobs at a time, each a fresh process with the config's timeout) and write the outputs."""
    expansion = expand(config)
    for skipped in expansion.skipped:
        console.log(f"[yellow]{skipped.point or skipped.protocol}: not run: {skipped.reason}[/yellow]")
    workers = max(1, available_cores() // max(1, jobs))
    started = time.perf_counter()
    rows: dict[str, Row] = {}

    def one(point: Point) -> Row:
        folder = out / point.name
        folder.mkdir(parents=True, exist_ok=True)
        config_path = folder / "experiment.yaml"
        config_path.write_text(yaml.safe_dump(dict(point.experiment.raw), sort_keys=False))
        outcome = run_point(sim_command(config_path, folder, workers), folder / "sim.log", config.timeout_seconds)
        row = row_of(
            point, folder, outcome.returncode, outcome.process_seconds, outcome.log_tail, config.timeout_seconds
        )
        return row

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("compare", total=len(expansion.points))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for point, row in zip(expansion.points, pool.map(one, expansion.points), strict=True):
                rows[point.name] = row
                status = "ok" if row["status"] == "ok" else f"[red]{row['status']}[/red]"
                accuracy = _number(row.get("accuracy"))
                shown = "" if accuracy is None else f", accuracy {100 * accuracy:.2f} %"
                progress.console.log(f"{point.name}: {status} in {_float(row['process_seconds']):.0f} s{shown}")
                progress.advance(task)
                ordered = [rows[p.name] for p in expansion.points if p.name in rows]
                write_outputs(config, expansion, ordered, out, time.perf_counter() - started)
    ordered = [rows[p.name] for p in expansion.points]
    return write_outputs(config, expansion, ordered, out, time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: --config, --out, --jobs (default 1). Exit 1 if a point failed, 2 on a bad config."""
    parser = argparse.ArgumentParser(prog="python -m chainlab.sim.compare", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return cmd_compare(args.config, args.out, args.jobs, Console(log_path=False))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The compare command's flags (shared by `chainlab compare` and `python -m chainlab.sim.compare`)."""
    parser.add_argument("--config", type=Path, default=Path("experiments/compare/compare.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument("--jobs", type=int, default=1, help="points run at once (default 1)")


def cmd_compare(config_path: Path, out: Path, jobs: int, console: Console) -> int:
    """Load, run and report; 0 when every point ran, 1 when one failed or timed out, 2 on a bad config."""
    if jobs < 1:
        console.print(f"[red]error:[/red] --jobs must be >= 1, got {jobs}")
        return 2
    try:
        config = load_compare(config_path)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    summary = run_compare(config, out, jobs, console)
    console.print(f"written: {out / 'summary.json'}, {out / 'report.md'}, plots in {out}")
    return 0 if summary["points_ok"] == summary["points_total"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
