"""LearningChain's headline results (protocols.md 3.5) from the runs' results.json: tables, verdicts and Fig. 5-7 plots.

python -m chainlab.scenarios.learningchain.figures [--runs runs/learningchain] [--out runs/learningchain]

Every results.json under --runs is one run (one seed of one point); runs that differ only in their seed form a
cell, reported as mean and sample sd. Writes results.json (cells and verdicts), results.md (a table per criterion)
and fig5.png, fig6.png, fig7.png (test error against iterations, one panel per dataset and eps, as the paper's);
a notes.md beside the runs (the analysis written by hand) is appended to results.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DATASETS = ("synthetic_ball", "breast_cancer", "mnist")
TITLES = {"synthetic_ball": "synthetic", "breast_cancer": "breast cancer", "mnist": "MNIST"}
BASELINE_LIMIT = {"synthetic_ball": 0.05, "breast_cancer": 0.08, "mnist": 0.10}  # protocols.md 3.5, L1 baseline
BASELINE_AT = {"synthetic_ball": 200}  # "synthetic error < 5 % by iteration 200"; elsewhere the last iteration
BYZANTINE_MARGIN = 0.15  # each attacked error <= baseline + 15 pp at T
FAILED = 0.40  # 20 of 30: final error >= 40 %
L3_MARGIN_KRUM = 0.02
L3_MARGIN_CLEAN = 0.03
L3_FAILED = 0.50
PAPER_SIZE = 30  # the synthetic network, whose attacker counts the breast-cancer and MNIST ones scale


@dataclass(frozen=True)
class Key:
    """What a cell is: the experiment and every setting that varies between its points (not the seed)."""

    experiment: str
    dataset: str
    nodes: int
    epsilon: float | None
    budget: str
    aggregator: str
    byzantine: int
    sigma: float
    rounds: int  # T


@dataclass
class Run:
    """One seed of one point: its error curve and its counts."""

    key: Key
    seed: int
    rounds: int  # T
    heights: list[int]  # 0 (w_0) and every evaluated height
    errors: list[float]
    selected: int  # messages aggregated over the main chain
    selected_attackers: int


@dataclass
class Cell:
    """Runs of one key: mean and sample sd over seeds."""

    key: Key
    runs: list[Run] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        """The seeds, ascending."""
        return sorted(r.seed for r in self.runs)

    @property
    def final(self) -> tuple[float, float]:
        """(mean, sd) of the final test error."""
        return mean_sd([r.errors[-1] for r in self.runs])

    def error_at(self, height: int) -> tuple[float, float]:
        """(mean, sd) of the test error at the last evaluated height <= height."""
        return mean_sd([_at(r, height) for r in self.runs])

    @property
    def attacker_share(self) -> float | None:
        """Share of the aggregated messages that came from Byzantine holders (all seeds)."""
        total = sum(r.selected for r in self.runs)
        return sum(r.selected_attackers for r in self.runs) / total if total else None

    def curve(self) -> tuple[list[int], list[float], list[float]]:
        """Heights evaluated in every run, the mean error there and its sd."""
        common = sorted(set.intersection(*(set(r.heights) for r in self.runs))) if self.runs else []
        means, sds = [], []
        for h in common:
            m, s = mean_sd([r.errors[r.heights.index(h)] for r in self.runs])
            means.append(m)
            sds.append(s)
        return common, means, sds


@dataclass(frozen=True)
class Verdict:
    """One acceptance criterion: what it asks, what was measured, and whether it holds (None: not measured)."""

    result: str  # L1 baseline, L1 privacy, L1 Byzantine, L2, L3
    case: str
    measured: str
    criterion: str
    met: bool | None


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _at(run: Run, height: int) -> float:
    below = [i for i, h in enumerate(run.heights) if h <= height]
    return run.errors[below[-1]] if below else run.errors[0]


def read_run(data: Mapping[str, object]) -> Run | None:
    """A Run from one LearningChain results.json; None for any other protocol or an analysis."""
    config = data.get("config")
    results = data.get("protocol_results")
    if data.get("protocol") != "learningchain" or not isinstance(config, Mapping) or not isinstance(results, Mapping):
        return None
    protocol = config.get("protocol")
    if not isinstance(protocol, Mapping):
        return None
    epsilon = protocol.get("epsilon")
    key = Key(
        experiment=str(config.get("name", "")),
        dataset=str(config.get("dataset", "mnist")),
        nodes=int(protocol.get("nodes", 10)),
        epsilon=float(epsilon) if isinstance(epsilon, int | float) else None,
        budget=str(protocol.get("budget", "fixed")),
        aggregator=str(protocol.get("aggregator", "l_nearest")),
        byzantine=int(protocol.get("byzantine_holders", 0)),
        sigma=float(protocol.get("sigma", 200.0)),
        rounds=int(protocol.get("rounds", 30)),
    )
    heights, errors = [0], [1.0 - float(str(results["initial_accuracy"]))]
    rows = results.get("heights")
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, Mapping) and isinstance(row.get("accuracy"), float):
            heights.append(int(row["height"]))
            errors.append(1.0 - float(row["accuracy"]))
    seed = data.get("seed")
    return Run(
        key,
        int(seed) if isinstance(seed, int) else 0,
        key.rounds,
        heights,
        errors,
        int(str(results.get("selected_messages", 0))),
        int(str(results.get("selected_attackers", 0))),
    )


def load_runs(root: Path) -> list[Run]:
    """Every LearningChain run under root (results.json files, any depth)."""
    runs = []
    for path in sorted(root.rglob("results.json")):
        if path.parent == root:
            continue  # this module's own output
        run = read_run(json.loads(path.read_text()))
        if run is not None:
            runs.append(run)
    return runs


def cells_of(runs: Iterable[Run]) -> dict[Key, Cell]:
    """Runs grouped by key."""
    cells: dict[Key, Cell] = {}
    for run in runs:
        cells.setdefault(run.key, Cell(run.key)).runs.append(run)
    return cells


def _find(cells: Mapping[Key, Cell], **want: object) -> list[Cell]:
    """Cells whose key fields equal every given value (the order of `cells`)."""
    return [c for c in cells.values() if all(getattr(c.key, k) == v for k, v in want.items())]


def _pct(pair: tuple[float, float]) -> str:
    return f"{pair[0] * 100:.2f} ± {pair[1] * 100:.2f} %"


def _eps(epsilon: float | None) -> str:
    return "no DP" if epsilon is None else f"eps = {epsilon:g}"


def _baseline(cells: Mapping[Key, Cell], dataset: str) -> Cell | None:
    found = _find(cells, dataset=dataset, nodes=1, epsilon=None, byzantine=0)
    return found[0] if found else None


def _chain_cells(cells: Mapping[Key, Cell], dataset: str) -> list[Cell]:
    """The Fig. 5 cells of a dataset: LearningChain proper (K > 1, eps every iteration, l-nearest, sigma 200)."""
    return [
        c
        for c in _find(cells, dataset=dataset, budget="fixed", aggregator="l_nearest", sigma=200.0)
        if c.key.nodes > 1 and "fig5" in c.key.experiment
    ]


def verdicts(cells: Mapping[Key, Cell]) -> list[Verdict]:
    """protocols.md 3.5's acceptance table, row by row, on whatever cells were run."""
    out: list[Verdict] = []
    for dataset in DATASETS:
        out += _baseline_verdicts(cells, dataset) + _privacy_verdicts(cells, dataset)
        out += _byzantine_verdicts(cells, dataset)
    return out + _l2_verdicts(cells) + _l3_verdicts(cells)


def _baseline_verdicts(cells: Mapping[Key, Cell], dataset: str) -> list[Verdict]:
    base = _baseline(cells, dataset)
    limit = BASELINE_LIMIT[dataset]
    at = BASELINE_AT.get(dataset)
    criterion = f"error < {limit * 100:g} %" + (f" by iteration {at}" if at else " at T")
    if base is None:
        return [Verdict("L1 baseline", TITLES[dataset], "not run", criterion, None)]
    pair = base.error_at(at) if at else base.final
    height = at if at else max(r.rounds for r in base.runs)
    return [Verdict("L1 baseline", TITLES[dataset], f"{_pct(pair)} at {height}", criterion, pair[0] < limit)]


def _privacy_verdicts(cells: Mapping[Key, Cell], dataset: str) -> list[Verdict]:
    chain = _chain_cells(cells, dataset)
    by_eps = {c.key.epsilon: c for c in chain if c.key.byzantine == 0}
    base = _baseline(cells, dataset)
    criterion = "0 attackers: error(eps 0.1) >= error(eps 0.3) >= baseline"
    if 0.1 not in by_eps or 0.3 not in by_eps or base is None:
        return [Verdict("L1 privacy", TITLES[dataset], "not run", criterion, None)]
    e1, e3, eb = by_eps[0.1].final, by_eps[0.3].final, base.final
    measured = f"{_pct(e1)} >= {_pct(e3)} >= {_pct(eb)}"
    if None in by_eps:
        measured += f" (LearningChain without DP: {_pct(by_eps[None].final)})"
    return [Verdict("L1 privacy", TITLES[dataset], measured, criterion, e1[0] >= e3[0] >= eb[0])]


def _byzantine_verdicts(cells: Mapping[Key, Cell], dataset: str) -> list[Verdict]:
    """Per eps series: errors ordered in the attacker count below half, each within 15 pp of the baseline, and the
    majority count failing (>= 40 %); the failure rule is the synthetic one, applied to every dataset's majority."""
    chain = _chain_cells(cells, dataset)
    base = _baseline(cells, dataset)
    out = []
    for epsilon in (0.1, 0.3, None):
        series = sorted((c for c in chain if c.key.epsilon == epsilon), key=lambda c: c.key.byzantine)
        if len(series) < 2:
            continue
        nodes = series[0].key.nodes
        minority = [c for c in series if 2 * c.key.byzantine < nodes]
        majority = [c for c in series if 2 * c.key.byzantine >= nodes]
        finals = [c.final[0] for c in minority]
        ordered = all(a <= b for a, b in itertools.pairwise(finals))
        close = base is not None and all(f <= base.final[0] + BYZANTINE_MARGIN for f in finals)
        failed = all(c.final[0] >= FAILED for c in majority) if majority else None
        measured = ", ".join(
            f"{c.key.byzantine}/{nodes}: {_pct(c.final)} (attackers {_share(c)} of aggregated)" for c in series
        )
        criterion = "error(0) <= ... below half, each <= baseline + 15 pp" + (
            f"; {majority[-1].key.byzantine}/{nodes}: error >= 40 %" if majority else ""
        )
        out.append(
            Verdict(
                "L1 Byzantine",
                f"{TITLES[dataset]}, {_eps(epsilon)}",
                measured,
                criterion,
                None if base is None else ordered and close and failed is not False,
            )
        )
    return out


def _share(cell: Cell) -> str:
    share = cell.attacker_share
    return "—" if share is None else f"{share * 100:.1f} %"


def _l2_verdicts(cells: Mapping[Key, Cell]) -> list[Verdict]:
    out = []
    for fixed in _find(cells, budget="fixed", byzantine=0, aggregator="l_nearest"):
        if fixed.key.epsilon is None or fixed.key.nodes == 1:
            continue
        for budget in ("uniform", "harmonic"):
            ex = [c for c in _find(cells, budget=budget, epsilon=fixed.key.epsilon, dataset=fixed.key.dataset)]
            ex = [c for c in ex if c.key.experiment == fixed.key.experiment]
            if not ex:
                continue
            name = "eps / T" if budget == "uniform" else "eps / (t(t+1))"
            gap = ex[0].final[0] - fixed.final[0]
            out.append(
                Verdict(
                    "L2",
                    f"{TITLES[fixed.key.dataset]}, {_eps(fixed.key.epsilon)}, Ex {name}",
                    f"Ex {_pct(ex[0].final)} vs LearningChain {_pct(fixed.final)} (gap {gap * 100:+.2f} pp)",
                    "Ex error >= LearningChain error, runs complete",
                    gap >= 0 and len(ex[0].runs) == len(fixed.runs),
                )
            )
    return out


def _fig7_cells(cells: Mapping[Key, Cell]) -> dict[str, list[Cell]]:
    """The Fig. 7 cells (attacked, no DP) by experiment: one network size each."""
    out: dict[str, list[Cell]] = {}
    for c in cells.values():
        if "fig7" in c.key.experiment and c.key.byzantine > 0:
            out.setdefault(c.key.experiment, []).append(c)
    return dict(sorted(out.items()))


def _l3_verdicts(cells: Mapping[Key, Cell]) -> list[Verdict]:
    experiments = _fig7_cells(cells)
    if not experiments:
        return [Verdict("L3", "MNIST", "not run", "l-nearest vs multi-Krum at 10 / 40 / 70 %", None)]
    out = []
    for fig7 in experiments.values():
        nodes, rounds = fig7[0].key.nodes, fig7[0].key.rounds
        clean = [
            c
            for c in _find(cells, dataset="mnist", nodes=nodes, rounds=rounds, epsilon=None, byzantine=0)
            if c.key.budget == "fixed" and c.key.aggregator == "l_nearest"
        ]
        for byzantine in sorted({c.key.byzantine for c in fig7}):
            pair = {c.key.aggregator: c for c in fig7 if c.key.byzantine == byzantine}
            near, krum = pair.get("l_nearest"), pair.get("multi_krum")
            if near is None or krum is None:
                continue
            case = f"K = {nodes}, T = {rounds}: {byzantine} Byzantine ({byzantine * 100 // nodes} %)"
            measured = f"l-nearest {_pct(near.final)}, multi-Krum {_pct(krum.final)}"
            measured += f"; attackers in l-nearest's selection {_share(near)}, in multi-Krum's {_share(krum)}"
            if 2 * byzantine < nodes:
                measured += f"; clean {_pct(clean[0].final)}" if clean else "; clean not run"
                close = near.final[0] <= krum.final[0] + L3_MARGIN_KRUM
                met = (close and near.final[0] <= clean[0].final[0] + L3_MARGIN_CLEAN) if clean else None
                out.append(Verdict("L3", case, measured, "l-nearest <= multi-Krum + 2 pp and <= clean + 3 pp", met))
            else:
                failed = near.final[0] >= L3_FAILED
                out.append(Verdict("L3", case, measured, "l-nearest >= 50 % (fails); multi-Krum reported", failed))
    return out


def cell_json(cell: Cell) -> dict[str, object]:
    """A cell as results.json holds it."""
    heights, means, sds = cell.curve()
    final_mean, final_sd = cell.final
    return {
        "experiment": cell.key.experiment,
        "dataset": cell.key.dataset,
        "nodes": cell.key.nodes,
        "epsilon": cell.key.epsilon,
        "budget": cell.key.budget,
        "aggregator": cell.key.aggregator,
        "byzantine_holders": cell.key.byzantine,
        "sigma": cell.key.sigma,
        "seeds": cell.seeds,
        "rounds": max(r.rounds for r in cell.runs),
        "final_error": {"mean": final_mean, "sd": final_sd, "values": [r.errors[-1] for r in cell.runs]},
        "attacker_share_of_selected": cell.attacker_share,
        "curve": {"heights": heights, "error_mean": means, "error_sd": sds},
    }


def markdown(cells: Mapping[Key, Cell], found: Sequence[Verdict], aggregation: Mapping[str, object] | None) -> str:
    """results.md: the verdicts per criterion, then every cell."""
    lines = [
        "# LearningChain: headline results (protocols.md 3.5)",
        "",
        "Generated by `python -m chainlab.scenarios.learningchain.figures` from the runs' results.json; errors are",
        "test errors, mean ± sample sd over the seeds listed per cell. Plots: fig5.png, fig6.png, fig7.png.",
        "",
    ]
    for result in ("L1 baseline", "L1 privacy", "L1 Byzantine", "L2", "L3"):
        rows = [v for v in found if v.result == result]
        if not rows:
            continue
        lines += [f"## {result}", "", "| case | measured | criterion | met |", "| --- | --- | --- | --- |"]
        for v in rows:
            met = "not run" if v.met is None else ("yes" if v.met else "**no**")
            lines.append(f"| {v.case} | {v.measured} | {v.criterion} | {met} |")
        lines.append("")
    if aggregation:
        lines += ["## Aggregation time (Fig. 7's cost claim)", "", "| rule | median seconds |", "| --- | --- |"]
        for rule in ("l_nearest", "multi_krum"):
            entry = aggregation.get(rule)
            if isinstance(entry, Mapping):
                lines.append(f"| {rule} | {float(str(entry['median_seconds'])):.4f} |")
        lines += [
            "",
            f"K = {aggregation.get('holders')}, d = {aggregation.get('dimension')}, "
            f"{aggregation.get('byzantine')} Byzantine (python -m chainlab.scenarios.learningchain.bench).",
            "",
        ]
    lines += [
        "## Every cell",
        "",
        "| experiment | dataset | K | eps | budget | rule | Byzantine | sigma | seeds | T | final error "
        "| attackers aggregated |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in sorted(cells.values(), key=_order):
        k = c.key
        lines.append(
            f"| {k.experiment} | {TITLES.get(k.dataset, k.dataset)} | {k.nodes} | {_eps(k.epsilon)} | {k.budget} | "
            f"{k.aggregator} | {k.byzantine} | {k.sigma:g} | {','.join(map(str, c.seeds))} | "
            f"{max(r.rounds for r in c.runs)} | {_pct(c.final)} | {_share(c)} |"
        )
    return "\n".join(lines) + "\n"


def _order(cell: Cell) -> tuple[str, str, int, float, str, str, int]:
    k = cell.key
    return (
        k.experiment,
        k.dataset,
        k.nodes,
        -1.0 if k.epsilon is None else k.epsilon,
        k.budget,
        k.aggregator,
        k.byzantine,
    )


# -- plots ------------------------------------------------------------------------------------------------------


def _new_figure(columns: int, rows: int) -> Figure:
    # As chainlab.sim.report: a bare Figure on an Agg canvas, so plotting touches no pyplot state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _line(axes: Axes, cell: Cell, label: str, style: str = "-") -> None:
    heights, means, sds = cell.curve()
    if not heights:
        return
    pct = [m * 100 for m in means]
    (line,) = axes.plot(heights, pct, style, label=label, marker="." if len(heights) < 40 else "")
    axes.fill_between(
        heights,
        [(m - s) * 100 for m, s in zip(means, sds, strict=True)],
        [(m + s) * 100 for m, s in zip(means, sds, strict=True)],
        color=line.get_color(),
        alpha=0.15,
    )


def _panel(axes: Axes, title: str) -> None:
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("iteration (height)")
    axes.set_ylabel("test error (%)")
    axes.grid(alpha=0.3)
    axes.set_ylim(bottom=0)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)


def plot_fig5(cells: Mapping[Key, Cell], path: Path) -> bool:
    """Fig. 5: one panel per dataset (columns) and eps (rows: 0.1, 0.3, no DP); a line per attacker count plus the
    centralised baseline. False (nothing written) without Fig. 5 cells."""
    datasets = [d for d in DATASETS if _chain_cells(cells, d)]
    if not datasets:
        return False
    rows = (0.1, 0.3, None)
    figure = _new_figure(len(datasets), len(rows))
    grid = figure.subplots(len(rows), len(datasets), squeeze=False)
    for col, dataset in enumerate(datasets):
        chain = _chain_cells(cells, dataset)
        base = _baseline(cells, dataset)
        for row, epsilon in enumerate(rows):
            axes = grid[row][col]
            for cell in sorted((c for c in chain if c.key.epsilon == epsilon), key=lambda c: c.key.byzantine):
                _line(axes, cell, f"{cell.key.byzantine}/{cell.key.nodes} Byzantine")
            if base is not None:
                _line(axes, base, "baseline (centralised)", "k--")
            _panel(axes, f"{TITLES[dataset]}, {_eps(epsilon)}")
    figure.suptitle("LearningChain, Fig. 5: test error against iterations (mean ± sd over seeds)")
    _save(figure, path)
    return True


def plot_fig6(cells: Mapping[Key, Cell], path: Path) -> bool:
    """Fig. 6: one panel per eps; LearningChain against LearningChainEx (eps / T, eps / (t(t+1)))."""
    fig6 = [c for c in cells.values() if c.key.experiment.endswith("fig6")]
    epsilons = sorted({c.key.epsilon for c in fig6 if c.key.epsilon is not None})
    if not epsilons:
        return False
    names = {"fixed": "LearningChain (eps per iteration)", "uniform": "Ex, eps / T", "harmonic": "Ex, eps / (t(t+1))"}
    figure = _new_figure(len(epsilons), 1)
    grid = figure.subplots(1, len(epsilons), squeeze=False)
    for col, epsilon in enumerate(epsilons):
        axes = grid[0][col]
        for budget in ("fixed", "uniform", "harmonic"):
            for cell in (c for c in fig6 if c.key.epsilon == epsilon and c.key.budget == budget):
                _line(axes, cell, names[budget])
        _panel(axes, f"{TITLES.get(fig6[0].key.dataset, '')}, {_eps(epsilon)}")
    figure.suptitle("LearningChain vs LearningChainEx, Fig. 6")
    _save(figure, path)
    return True


def plot_fig7(cells: Mapping[Key, Cell], path: Path) -> bool:
    """Fig. 7: a row per network size, a panel per Byzantine share; l-nearest against multi-Krum."""
    experiments = _fig7_cells(cells)
    if not experiments:
        return False
    columns = max(len({c.key.byzantine for c in fig7}) for fig7 in experiments.values())
    figure = _new_figure(columns, len(experiments))
    grid = figure.subplots(len(experiments), columns, squeeze=False)
    for row, fig7 in enumerate(experiments.values()):
        for col, byzantine in enumerate(sorted({c.key.byzantine for c in fig7})):
            axes = grid[row][col]
            for rule, label in (("l_nearest", "l-nearest"), ("multi_krum", "multi-Krum")):
                for cell in (c for c in fig7 if c.key.byzantine == byzantine and c.key.aggregator == rule):
                    _line(axes, cell, label)
            _panel(axes, f"MNIST, {byzantine}/{fig7[0].key.nodes} Byzantine")
    figure.suptitle("Byzantine-tolerant aggregation without DP, Fig. 7")
    _save(figure, path)
    return True


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=110)


PLOTS: tuple[tuple[str, Callable[[Mapping[Key, Cell], Path], bool]], ...] = (
    ("fig5.png", plot_fig5),
    ("fig6.png", plot_fig6),
    ("fig7.png", plot_fig7),
)


def write(runs_dir: Path, out: Path) -> list[Verdict]:
    """Read every run under runs_dir; write results.json, results.md and the plots under out."""
    cells = cells_of(load_runs(runs_dir))
    found = verdicts(cells)
    bench = runs_dir / "aggregation.json"
    aggregation = json.loads(bench.read_text()) if bench.is_file() else None
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "verdicts": [v.__dict__ for v in found],
        "aggregation": aggregation,
        "cells": [cell_json(c) for c in sorted(cells.values(), key=_order)],
    }
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    text = markdown(cells, found, aggregation)
    notes = runs_dir / "notes.md"  # the hand-written analysis (why a result does or does not reproduce), kept as is
    if notes.is_file():
        text += "\n" + notes.read_text()
    (out / "results.md").write_text(text)
    for name, plot in PLOTS:
        plot(cells, out / name)
    return found


def main(argv: list[str] | None = None) -> int:
    """Regenerate the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs/learningchain"))
    parser.add_argument("--out", type=Path, default=None, help="default: --runs")
    args = parser.parse_args(argv)
    found = write(args.runs, args.out or args.runs)
    for v in found:
        print(f"{v.result:13} {v.case:40} {'not run' if v.met is None else ('met' if v.met else 'NOT met')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
