"""Running experiments to disk: one results.json per point, sweep summaries, tables and plots."""

from __future__ import annotations

import json
import multiprocessing
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from chainlab.scenarios import registry, tables
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.results import SCHEMA
from chainlab.sim import report
from chainlab.sim.experiment import run

Progress = Callable[[str, int, int], None]  # (label, round, tip height)


def milestone(value: int, total: int) -> int:
    """Which of at most 20 steps towards total a progress value has reached: logs show each, not every round."""
    return value * min(total, 20) // max(total, 1)


def points(exp: Experiment) -> list[tuple[str, Experiment]]:
    """The runs an experiment asks for: itself, or the grid of its `sweep` x `compare` values; each once per
    seed of `seeds` where given (labels then end in ",seed=<n>")."""
    grid = _grid(exp)
    seeds = exp.get("seeds") or []
    if not seeds:
        return grid
    return [
        (f"{label},seed={seed}" if label else f"seed={seed}", point.with_value("seed", seed))
        for label, point in grid
        for seed in seeds
    ]


def _grid(exp: Experiment) -> list[tuple[str, Experiment]]:
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


def run_to_disk(
    exp: Experiment, out: Path, progress: Progress | None = None, jobs: int = 1, workers: int = 1
) -> list[tuple[str, dict[str, Any]]]:
    """Run every point of exp, writing each to its own folder (or out itself for a single run).

    With jobs > 1 the points of a sweep run in that many worker processes; each point is deterministic in its
    config, so results do not depend on jobs. progress then hears of a point once, when it is done. workers is
    each point's pool of ML processes (see chainlab.work.pool); with jobs > 1 a point gets one, so that jobs x
    workers processes do not contend for the same cores.
    """
    name = str(exp.get("name", out.name))
    if exp.get("analysis"):
        return [("", analysis_to_disk(exp, out))]
    todo = points(exp)
    done: list[tuple[str, dict[str, Any]]] = []
    if jobs > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")  # torch's threads do not survive a fork
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_run_raw, dict(point.raw)): (label, point) for label, point in todo}
            finished = {}
            for future in as_completed(futures):
                (label, point), results = futures[future], future.result()
                write_run(results, out / folder_name(label) if label else out)
                finished[label] = results
                if progress is not None:
                    total = registry.get(point.protocol_name).progress_total(point)
                    progress(label or name, int(results["rounds"]), total)
        done = [(label, finished[label]) for label, _ in todo]
    else:
        for label, point in todo:

            def step(at: int, height: int, label: str = label) -> None:
                if progress is not None:
                    progress(label or name, at, height)

            results = run(point, step, workers=workers)
            write_run(results, out / folder_name(label) if label else out)
            done.append((label, results))
    if len(done) > 1:
        write_summary(exp, done, out)
    return done


def analysis_to_disk(exp: Experiment, out: Path) -> dict[str, Any]:
    """Compute exp's analysis: results.json (its rows and summary), results.md and results.png."""
    name = str(exp.get("analysis"))
    started = time.perf_counter()
    analysis = registry.get(exp.protocol_name).analyse(name, exp)
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "protocol": exp.protocol_name,
        "analysis": name,
        "config": dict(exp.raw),
        "seed": exp.seed,
        "summary": analysis.summary,
        "rows": analysis.rows,
        "wall_seconds": time.perf_counter() - started,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (out / "results.md").write_text(report.markdown_table(analysis.rows, list(analysis.rows[0])) + "\n")
    report.plot_analysis(analysis, out / "results.png", title=f"{exp.protocol_name}: {name}")
    return results


def _run_raw(raw: dict[str, Any]) -> dict[str, Any]:
    """One point in a worker process, from its config mapping (what crosses the process boundary)."""
    return run(Experiment.from_mapping(raw))


def summary_rows(done: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per sweep point with the headline figures."""
    fields = tables.summary_fields(done[0][1]) if done else []
    return [{"point": label, **{f: tables.value(tables.figures(r), f) for f in fields}} for label, r in done]


def by_seed_medians(done: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Runs repeated over seeds as one run per point: every headline, run and plotted figure the median over its
    seeds (the other keys are the first seed's; `seeds` lists them). Runs without seeds pass through."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for label, results in done:
        base, _, seed = label.rpartition(",seed=") if ",seed=" in label else ("", "", "")
        key = base if seed else ("" if label.startswith("seed=") else label)
        groups.setdefault(key, []).append(results)
    if all(len(runs) == 1 for runs in groups.values()):
        return done
    out = []
    for label, runs in groups.items():
        merged = json.loads(json.dumps(runs[0]))
        merged["seeds"] = [r["seed"] for r in runs]
        for path in {*tables.summary_fields(runs[0]), *_plotted([(label, runs[0])])}:
            values = [tables.number(tables.value(tables.figures(r), path)) for r in runs]
            present = [v for v in values if v is not None]
            if present:
                _put(merged, path, statistics.median(present))
        out.append((label, merged))
    return out


def _put(results: dict[str, Any], path: str, value: float) -> None:
    """Set a figure by its dotted path into figures(results): protocol_results first, as figures() reads it."""
    head, *rest = path.split(".")
    target: dict[str, Any] = results["protocol_results"] if head in results.get("protocol_results", {}) else results
    for part in [head, *rest][:-1]:
        target = target.setdefault(part, {})
    target[path.split(".")[-1]] = value


def write_summary(exp: Experiment, done: list[tuple[str, dict[str, Any]]], out: Path) -> None:
    """summary.json, summary.md and summary.png for a sweep; with `seeds`, per point the median over its seeds
    (every seed's row also goes to seeds.json)."""
    out.mkdir(parents=True, exist_ok=True)
    if exp.get("seeds"):
        (out / "seeds.json").write_text(json.dumps(summary_rows(done), indent=2) + "\n")
        done = by_seed_medians(done)
    rows = summary_rows(done)
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "summary.md").write_text(report.markdown_table(rows, list(rows[0])) + "\n")
    curve = tables.layout_of(done[0][1]).curve
    if curve is not None:
        report.plot_curves(done, curve, out / "curves.png")
    if not exp.get("sweep"):
        return
    sweep_path = str(exp.get("sweep")["path"])
    compare = exp.get("compare")
    if compare:
        labels = compare.get("labels") or [str(v) for v in compare["values"]]
        series = {
            label: [(p.split("=", 1)[1].split(",")[0], r) for p, r in done if p.endswith(f",{label}")]
            for label in labels
        }
        report.plot_compare(series, sweep_path, out / "summary.png", metrics=_plotted(done))
    else:
        points = [(p.split("=", 1)[1], r) for p, r in done]
        report.plot_sweep(points, sweep_path, out / "summary.png", metrics=_plotted(done))


def _plotted(done: list[tuple[str, dict[str, Any]]]) -> tuple[str, ...]:
    """What a sweep plots: the layout's choice, else its first two headline figures."""
    layout = tables.layout_of(done[0][1])
    return layout.plotted or tuple(f.path for f in tables.headline(done[0][1], layout)[:2])


def folder_name(label: str) -> str:
    """A point's folder: its label with anything but letters, digits, '=', ',', '.', '-' made '_'."""
    return "".join(c if c.isalnum() or c in "=,.-" else "_" for c in label)
