"""`make paper`: run every experiment that reproduces a result of seed 000 and write a markdown report."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from chainlab.scenarios import registry, tables
from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.sim import report
from chainlab.sim.runner import (
    by_seed_medians,
    folder_name,
    milestone,
    points,
    run_to_disk,
    summary_rows,
    write_summary,
)

# The experiments `make paper` runs, in report order; each YAML's `paper:` says what its paper reports.
ORDER = (
    "table1_mnist_dt", "noniid_mnist_dt", "miners_sweep_mnist_dt", "delay_cfs_mnist_dt", "delay_cfs_q16_mnist_dt",
    "dfl_fig9_iid", "dfl_fig9_beta1", "dfl_fig9_beta01", "dfl_testnet",
    "bflc_table1", "bflc_fig3", "bflc_fig4", "bflc_fig5",
)  # fmt: skip


def write_paper(
    experiments: Path,
    out: Path,
    console: Console,
    only: tuple[str, ...] = (),
    jobs: int = 1,
    resume: bool = False,
) -> Path:
    """Run the experiments in ORDER (or those named in only) and write out/report.md; returns its path.

    jobs is how many sweep points run at once (see run_to_disk). With resume, an experiment whose every point
    already has a results.json under out, from the same config (its prose keys aside), is read back instead of
    run again.
    """
    unknown = sorted(set(only) - set(ORDER))
    if unknown:
        raise ValueError(f"not a paper experiment: {', '.join(unknown)}; known: {', '.join(ORDER)}")
    sections = ["# chainlab: the seed papers' results reproduced in simulation", ""]
    loaded = {name: load_experiment(experiments / f"{name}.yaml") for name in ORDER if not only or name in only}
    for name, exp in loaded.items():
        deviations(exp.raw)  # a malformed list fails now, not after hours of runs
        if not isinstance(exp.get("paper"), str):
            raise ValueError(f"{name}: `paper:` must say what the paper reports")
    for name, exp in loaded.items():
        done = finished_runs(exp, out / name) if resume else None
        if done is None:
            console.log(f"running {name}")
            done = run_to_disk(exp, out / name, _log_progress(console, exp), jobs)
        else:
            console.log(f"{name}: read back from {out / name}")
        sections += _section(name, dict(exp.raw), done)
        console.log(f"{name} done")
    path = out / "report.md"
    path.write_text("\n".join(sections) + "\n")
    console.log(f"report written to {path}")
    return path


def finished_runs(exp: Experiment, out: Path) -> list[tuple[str, dict[str, Any]]] | None:
    """Every point's results of exp under out when all exist and were run from exp's own config; else None."""
    done = []
    for label, point in [("", exp)] if exp.get("analysis") else points(exp):
        path = (out / folder_name(label) if label else out) / "results.json"
        if not path.exists():
            return None
        results = json.loads(path.read_text())
        if _run_keys(results.get("config", {})) != _run_keys(json.loads(json.dumps(dict(point.raw)))):
            return None
        done.append((label, results))
    if len(done) > 1:
        write_summary(exp, done, out)
    return done


def _run_keys(config: dict[str, Any]) -> dict[str, Any]:
    """A config without the keys that only describe it: editing those does not call for a new run."""
    return {k: v for k, v in config.items() if k not in ("description", "deviations", "paper")}


def _log_progress(console: Console, exp: Experiment) -> Callable[[str, int, int], None]:
    """A progress callback that logs each milestone of each run (see runner.milestone)."""
    spec = registry.get(exp.protocol_name)
    total = spec.progress_total(exp)
    seen: dict[str, int] = {}

    def progress(label: str, at: int, value: int) -> None:
        if milestone(value, total) > milestone(seen.get(label, 0), total):
            console.log(f"{label}: {spec.progress_unit} {value}/{total} at round {at}")
        seen[label] = max(seen.get(label, 0), value)

    return progress


def deviations(config: Mapping[str, Any]) -> list[str]:
    """The config's `deviations`: where and why the experiment departs from the paper's setting.

    ValueError unless it is a list of non-empty strings; an absent key is an empty list."""
    value = config.get("deviations", [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError("deviations must be a list of non-empty strings")
    return [" ".join(item.split()) for item in value]


def _section(name: str, config: dict[str, Any], done: list[tuple[str, dict[str, Any]]]) -> list[str]:
    lines = [f"## {name}", "", f"Paper: {' '.join(str(config['paper']).split())}.", ""]
    departures = deviations(config)
    if departures:
        lines += ["Deviations from the paper's setting:", "", *(f"- {item}" for item in departures), ""]
    else:
        lines += ["Deviations from the paper's setting: none stated.", ""]
    if config.get("description"):
        lines += [str(config["description"]), ""]
    if len(done) == 1 and "analysis" in done[0][1]:
        results = done[0][1]
        summary = results["summary"]
        lines += [report.markdown_table([summary], list(summary)), ""]
        lines += [report.markdown_table(results["rows"], list(results["rows"][0])), ""]
        lines += [f"![{name}]({name}/results.png)", ""]
    elif len(done) == 1:
        results = done[0][1]
        headline = _headline(results)
        lines += [report.markdown_table([headline], list(headline)), ""]
        layout = tables.layout_of(results)
        rows = tables.value(results, f"protocol_results.{layout.rows}") if layout.rows else None
        if isinstance(rows, list) and rows:
            columns = [c.path for c in layout.row_columns if c.format not in ("id", "range")]
            lines += [report.markdown_table(rows, columns), ""]
        lines += [f"![{name}]({name}/results.png)", ""]
    else:
        rows = summary_rows(by_seed_medians(done))
        lines += [report.markdown_table(rows, list(rows[0])), ""]
        lines += [f"![{name}]({name}/summary.png)"]
        folders = ", ".join(f"`{name}/{folder_name(label)}/`" for label, _ in done)
        lines += ["", f"Per-point results.json and results.png: {folders}.", ""]
    shown = {k: v for k, v in config.items() if k not in ("description", "deviations", "paper")}
    lines += ["Config:", "", "```json", json.dumps(shown), "```", ""]
    return lines


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    """The run's headline and run figures by label, as the protocol's report layout names them."""
    flat = tables.figures(results)
    shown = (*tables.headline(results, tables.layout_of(results)), *tables.RUN_FIGURES)
    return {figure.label: tables.value(flat, figure.path) for figure in shown}
