"""`make bench`: the simulator's own overhead, as wall time over time spent fitting and predicting."""

from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from chainlab.scenarios import tables
from chainlab.scenarios.experiment import load_experiment
from chainlab.sim.experiment import run


def run_bench(config: Path, repeats: int, out: Path, console: Console) -> dict[str, object]:
    """Run config `repeats` times; write bench.json and bench.md with per-run figures and medians."""
    exp = load_experiment(config)
    runs = []
    for i in range(repeats):
        results = run(exp)
        runs.append(
            {
                "run": i + 1,
                "wall_seconds": results["wall_seconds"],
                "ml_seconds": results["ml_seconds"],
                "ratio": results["wall_seconds"] / results["ml_seconds"],
                "protocol_results": {
                    f.path: tables.value(tables.figures(results), f.path)
                    for f in tables.headline(results, tables.layout_of(results))
                },
            }
        )
        console.log(f"run {i + 1}/{repeats}: wall {runs[-1]['wall_seconds']:.1f} s, ML {runs[-1]['ml_seconds']:.1f} s")
    summary: dict[str, object] = {
        "config": str(config),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "runs": runs,
        "median_wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
        "median_ml_seconds": statistics.median(r["ml_seconds"] for r in runs),
        "median_ratio": statistics.median(r["ratio"] for r in runs),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = Table(title=f"bench: {config.name} ({repeats} runs)")
    for column in ("run", "wall s", "ML s", "wall / ML"):
        table.add_column(column, justify="right")
    for r in runs:
        table.add_row(str(r["run"]), f"{r['wall_seconds']:.2f}", f"{r['ml_seconds']:.2f}", f"{r['ratio']:.3f}")
    table.add_row("median", f"{summary['median_wall_seconds']:.2f}", f"{summary['median_ml_seconds']:.2f}",
                  f"{summary['median_ratio']:.3f}")  # fmt: skip
    console.print(table)
    lines = [
        f"# bench: {config}",
        "",
        "| run | wall s | ML s | wall / ML |",
        "| --- | --- | --- | --- |",
        *(f"| {r['run']} | {r['wall_seconds']:.2f} | {r['ml_seconds']:.2f} | {r['ratio']:.3f} |" for r in runs),
        f"| median | {summary['median_wall_seconds']:.2f} | {summary['median_ml_seconds']:.2f} | "
        f"{summary['median_ratio']:.3f} |",
    ]
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    return summary
