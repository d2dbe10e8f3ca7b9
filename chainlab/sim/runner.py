"""Running experiments to disk: one results.json per point, sweep summaries, tables and plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainlab.scenarios.experiment import Experiment
from chainlab.sim import report
from chainlab.sim.experiment import run

Progress = Callable[[str, int, int], None]  # (label, round, tip height)

SUMMARY_FIELDS = (
    "ensemble_accuracy",
    "base_accuracy.mean",
    "public_accuracy",
    "best_possible_accuracy",
    "miniblock_wastage",
    "forks",
    "key_block_interval_rounds",
    "wall_seconds",
    "ml_seconds",
)


def points(exp: Experiment) -> list[tuple[str, Experiment]]:
    """The runs an experiment asks for: itself, or the grid of its `sweep` x `compare` values."""
    sweep = exp.get("sweep")
    if not sweep:
        return [("", exp)]
    compare = exp.get("compare") or {"path": None, "values": [None]}
    labels = compare.get("labels") or [str(v) for v in compare["values"]]
    out = []
    for value in sweep["values"]:
        for label, other in zip(labels, compare["values"], strict=True):
            point = exp.with_value(sweep["path"], value)
            if compare["path"] is not None:
                point = point.with_value(compare["path"], other)
            name = f"{sweep['path'].rsplit('.', 1)[-1]}={value}" + (f",{label}" if compare["path"] else "")
            out.append((name, point))
    return out


def write_run(results: dict[str, Any], out: Path) -> None:
    """results.json and results.png for one run."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    report.plot_results(results, out / "results.png")


def run_to_disk(exp: Experiment, out: Path, progress: Progress | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Run every point of exp, writing each to its own folder (or out itself for a single run)."""
    name = str(exp.get("name", out.name))
    done: list[tuple[str, dict[str, Any]]] = []
    for label, point in points(exp):

        def step(at: int, height: int, label: str = label) -> None:
            if progress is not None:
                progress(label or name, at, height)

        results = run(point, step)
        write_run(results, out / folder_name(label) if label else out)
        done.append((label, results))
    if len(done) > 1:
        write_summary(exp, done, out)
    return done


def summary_rows(done: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per sweep point with the headline figures."""
    rows = []
    for label, results in done:
        row: dict[str, Any] = {"point": label}
        figures = report.figures(results)
        for field in SUMMARY_FIELDS:
            value: Any = figures
            for part in field.split("."):
                value = value[part]
            row[field] = value
        rows.append(row)
    return rows


def write_summary(exp: Experiment, done: list[tuple[str, dict[str, Any]]], out: Path) -> None:
    """summary.json, summary.md and summary.png for a sweep."""
    rows = summary_rows(done)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "summary.md").write_text(report.markdown_table(rows, ["point", *SUMMARY_FIELDS]) + "\n")
    sweep_path = str(exp.get("sweep")["path"])
    compare = exp.get("compare")
    if compare:
        labels = compare.get("labels") or [str(v) for v in compare["values"]]
        series = {
            label: [(p.split("=", 1)[1].split(",")[0], r) for p, r in done if p.endswith(f",{label}")]
            for label in labels
        }
        report.plot_compare(series, sweep_path, out / "summary.png")
    else:
        report.plot_sweep([(p.split("=", 1)[1], r) for p, r in done], sweep_path, out / "summary.png")


def folder_name(label: str) -> str:
    """A point's folder: its label with anything but letters, digits, '=', ',', '.', '-' made '_'."""
    return "".join(c if c.isalnum() or c in "=,.-" else "_" for c in label)
