"""Rendering of simulation results (results.json) as terminal tables, PNG plots and markdown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from chainlab.scenarios import tables
from chainlab.scenarios.tables import figures

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from chainlab.scenarios.base import Analysis, Curve

__all__ = ["figures", "markdown_table", "plot_compare", "plot_results", "plot_sweep", "results_table", "sweep_table"]

_MISSING = tables.MISSING


# --- value helpers ------------------------------------------------------------------------------------


def _pct(value: Any) -> str:
    number = tables.number(value)
    return _MISSING if number is None else f"{100 * number:.2f}%"


def _is_accuracy(metric: str) -> bool:
    return "accuracy" in metric


def _metric_label(metric: str) -> str:
    label = metric.replace("_", " ").replace(".", " ").capitalize()
    return f"{label} (%)" if _is_accuracy(metric) else label


def _plotted(results: Mapping[str, Any], metric: str) -> float:
    """The value drawn for a metric: accuracies in percent, NaN (a gap in the line) when missing."""
    value = tables.number(tables.value(figures(results), metric))
    if value is None:
        return math.nan
    return 100 * value if _is_accuracy(metric) else value


# --- tables -------------------------------------------------------------------------------------------


def results_table(results: Mapping[str, Any], title: str) -> Table:
    """One row per row of the run (BagChain: per height), with the run's headline as the caption."""
    return tables.results_table(results, title)


def analysis_table(results: Mapping[str, Any], title: str) -> Table:
    """An analysis's rows, numbers to four significant digits, and its summary as the caption."""
    rows = results["rows"]
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(str(column), justify="right")
    for row in rows:
        table.add_row(*(_markdown_cell(v) for v in row.values()))
    table.caption = " · ".join(f"{k} {_markdown_cell(v)}" for k, v in results["summary"].items())
    return table


def sweep_table(points: Sequence[tuple[str, Mapping[str, Any]]], title: str) -> Table:
    """One row per point of a parameter sweep, labelled by the swept value."""
    return tables.sweep_table(points, title)


def _markdown_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        text = f"{value:.4g}"
        # .4g switches to exponent notation from 10^4 up, which reads badly for seconds or rounds.
        if "e+" in text:
            text = f"{value:.0f}"
        return text
    # A pipe would end the cell early; a newline would end the row.
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub markdown table of columns; floats get 4 significant digits, missing cells stay empty."""
    if not columns:
        raise ValueError("a markdown table needs at least one column")
    lines = [
        "| " + " | ".join(_markdown_cell(c) for c in columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    lines.extend("| " + " | ".join(_markdown_cell(row.get(c)) for c in columns) + " |" for row in rows)
    return "\n".join(lines) + "\n"


# --- plots --------------------------------------------------------------------------------------------


def _new_figure() -> Figure:
    # An Agg canvas attached to a bare Figure renders PNGs without pyplot, so plotting neither
    # switches the process-wide backend nor leaks figures into pyplot's global registry.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)


def _series(results: Mapping[str, Any], path: str, percent: bool, rows: str = "") -> list[float]:
    """A list figure as floats (percent where asked), or one key of every row of a rows list; empty where absent."""
    if rows:
        table = tables.value(figures(results), rows)
        raw: Any = (
            [row.get(path) if isinstance(row, Mapping) else None for row in table] if isinstance(table, list) else None
        )
    else:
        raw = tables.value(figures(results), path)
    values = [tables.number(v) for v in raw] if isinstance(raw, list) else []
    return [math.nan if v is None else (100 * v if percent else v) for v in values]


def plot_curve(results: Mapping[str, Any], curve: Curve, path: Path) -> None:
    """PNG of a run's curve: each y figure against x."""
    figure = _new_figure()
    axes = figure.add_subplot()
    xs = _series(results, curve.x, False, curve.rows)
    for y in curve.ys:
        ys = _series(results, y.path, y.format == "pct", curve.rows)
        if xs and len(ys) == len(xs):
            _plot_present(axes, xs, ys, y.label)
    _finish_curve(figure, axes, curve)
    _save(figure, path)


def plot_curves(points: Sequence[tuple[str, Mapping[str, Any]]], curve: Curve, path: Path) -> None:
    """PNG of a sweep's curves: the first y figure of every point against x, one line per point."""
    figure = _new_figure()
    axes = figure.add_subplot()
    y = curve.ys[0]
    for label, results in points:
        xs = _series(results, curve.x, False, curve.rows)
        ys = _series(results, y.path, y.format == "pct", curve.rows)
        if xs and len(ys) == len(xs):
            _plot_present(axes, xs, ys, label)
    _finish_curve(figure, axes, curve, y.label)
    _save(figure, path)


def _plot_present(axes: Axes, xs: list[float], ys: list[float], label: str) -> None:
    """A line through the points where y was measured (rows measured every few rounds leave gaps)."""
    shown = [(x, y) for x, y in zip(xs, ys, strict=True) if not (math.isnan(x) or math.isnan(y))]
    axes.plot([x for x, _ in shown], [y for _, y in shown], marker="." if len(shown) < 40 else "", label=label)


def _finish_curve(figure: Figure, axes: Axes, curve: Curve, y_label: str = "") -> None:
    axes.set_xlabel(curve.x_label)
    percent = all(y.format == "pct" for y in curve.ys)
    axes.set_ylabel(y_label or ("Accuracy (%)" if percent else "Value"))
    if curve.title:
        axes.set_title(curve.title)
    axes.grid(alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 3))


def plot_analysis(analysis: Analysis, path: Path, title: str) -> None:
    """PNG of an analysis: each y against x, one line per series value (or one per y)."""
    figure = _new_figure()
    axes = figure.add_subplot()
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in analysis.rows:
        groups.setdefault(str(row.get(analysis.series, "")) if analysis.series else "", []).append(row)
    styles = ["-", "--", ":", "-."]
    for k, y in enumerate(analysis.ys):
        for group, rows in groups.items():
            points = [(tables.number(r.get(analysis.x)), tables.number(r.get(y))) for r in rows]
            shown = sorted((px, py) for px, py in points if px is not None and py is not None)
            label = f"{y}, {analysis.series} = {group}" if group else y
            axes.plot(
                [px for px, _ in shown], [py for _, py in shown], styles[k % len(styles)], marker="o", label=label
            )
    axes.set_xlabel(analysis.x)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 2))
    _save(figure, path)


def plot_results(results: Mapping[str, Any], path: Path) -> None:
    """PNG of the run: its protocol's curve where the layout names one; else BagChain's per-height ensemble
    accuracy against its base models, public-data and best-possible accuracy."""
    curve = tables.layout_of(results).curve
    if curve is not None:
        plot_curve(results, curve, path)
        return
    results = figures(results)
    rows = [row for row in results.get("heights", []) if tables.number(row.get("height")) is not None]
    rows.sort(key=lambda row: row["height"])
    heights = [row["height"] for row in rows]
    figure = _new_figure()
    axes = figure.add_subplot()

    base_lists = [
        [100 * b for b in (tables.number(x) for x in row.get("base_accuracies", [])) if b is not None] for row in rows
    ]
    band = [(h, min(b), max(b)) for h, b in zip(heights, base_lists, strict=True) if b]
    if band:
        axes.fill_between(
            [h for h, _, _ in band],
            [lo for _, lo, _ in band],
            [hi for _, _, hi in band],
            alpha=0.2,
            color="tab:blue",
            label="Base models (min-max)",
        )
        axes.scatter(
            [h for h, b in zip(heights, base_lists, strict=True) for _ in b],
            [x for b in base_lists for x in b],
            s=10,
            alpha=0.5,
            color="tab:blue",
            label="Base model",
        )
    if rows:
        axes.plot(
            heights,
            [_plotted(row, "ensemble_accuracy") for row in rows],
            marker="o",
            color="tab:red",
            label="Ensemble",
        )
        axes.plot(
            heights,
            [_plotted(row, "best_possible_accuracy") for row in rows],
            linestyle=":",
            color="tab:green",
            label="Best possible",
        )
    else:
        # Without per-height data the run-level best possible is the only value there is to show.
        best = _plotted(results, "best_possible_accuracy")
        if not math.isnan(best):
            axes.axhline(best, linestyle=":", color="tab:green", label="Best possible")
    public = _plotted(results, "public_accuracy")
    if not math.isnan(public):
        axes.axhline(public, linestyle="--", color="tab:gray", label="Public data only")

    axes.set_xlabel("Block height")
    axes.set_ylabel("Accuracy (%)")
    if heights:
        axes.set_xticks(sorted(set(heights)))
    axes.set_title(f"Ensemble accuracy per height (ensemble {_pct(results.get('ensemble_accuracy'))})")
    axes.grid(alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        # Below the axes, so the legend never hides the curves it explains.
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 3))
    _save(figure, path)


def _sweep_x(labels: Sequence[str]) -> tuple[list[float], list[str] | None]:
    """Numeric x positions when every label parses as a number, else categorical positions and tick labels."""
    try:
        return [float(label) for label in labels], None
    except ValueError:
        return [float(i) for i in range(len(labels))], list(labels)


def plot_sweep(
    points: Sequence[tuple[str, Mapping[str, Any]]],
    x_label: str,
    path: Path,
    *,
    metrics: Sequence[str],
) -> None:
    """PNG of metrics against a swept parameter; exactly two metrics get a y-axis each."""
    if not metrics:
        raise ValueError("plot_sweep needs at least one metric")
    xs, ticks = _sweep_x([label for label, _ in points])
    order = sorted(range(len(points)), key=lambda i: xs[i]) if ticks is None else list(range(len(points)))
    x = [xs[i] for i in order]
    figure = _new_figure()
    left = figure.add_subplot()
    # Two metrics usually have different units (accuracy vs. wasted MiniBlocks); more than two share
    # one axis because a third y-axis is unreadable.
    axes_for: list[Axes] = [left, left.twinx()] if len(metrics) == 2 else [left] * len(metrics)
    colors = ["tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown"]
    markers = ["o", "s", "^", "D", "v", "P"]
    handles = []
    for k, (metric, axes) in enumerate(zip(metrics, axes_for, strict=True)):
        (line,) = axes.plot(
            x,
            [_plotted(points[i][1], metric) for i in order],
            marker=markers[k % len(markers)],
            color=colors[k % len(colors)],
            label=_metric_label(metric),
        )
        handles.append(line)
    left.set_xlabel(x_label)
    if len(metrics) == 2:
        for axes, metric, line in zip(axes_for, metrics, handles, strict=True):
            axes.set_ylabel(_metric_label(metric), color=line.get_color())
    else:
        left.set_ylabel(_metric_label(metrics[0]) if len(metrics) == 1 else "Value")
    if ticks is not None:
        left.set_xticks(x, ticks)
    names = ", ".join(m.replace("_", " ") for m in metrics)
    left.set_title(f"{names} vs. {x_label}")
    left.grid(alpha=0.3)
    # A figure legend, because an axes legend would be drawn under the twin axis's lines.
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
    _save(figure, path)


def plot_compare(
    series: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
    x_label: str,
    path: Path,
    *,
    metrics: Sequence[str],
) -> None:
    """PNG with one panel per metric and one line per variant (e.g. w/o and w/ CFS), as in seed 000's Fig. 11."""
    if not series or not metrics:
        raise ValueError("plot_compare needs at least one series and one metric")
    figure = _new_figure()
    panels = figure.subplots(1, len(metrics), squeeze=False)[0]
    markers = ["o", "s", "^", "D", "v", "P"]
    for axes, metric in zip(panels, metrics, strict=True):
        for k, (variant, points) in enumerate(series.items()):
            xs, ticks = _sweep_x([label for label, _ in points])
            order = sorted(range(len(points)), key=lambda i: xs[i])
            axes.plot(
                [xs[i] for i in order],
                [_plotted(points[i][1], metric) for i in order],
                marker=markers[k % len(markers)],
                label=variant,
            )
            if ticks is not None:
                axes.set_xticks(xs, ticks)
        axes.set_xlabel(x_label)
        axes.set_ylabel(_metric_label(metric))
        axes.set_title(_metric_label(metric))
        axes.grid(alpha=0.3)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
    _save(figure, path)
