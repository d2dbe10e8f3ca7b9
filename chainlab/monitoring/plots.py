"""PNG plots of one live run, drawn from Prometheus range queries (nothing is plotted that it did not record)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from chainlab.monitoring.prometheus import PrometheusClient, Series

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Enough points to show a run's shape without asking Prometheus for more than it scraped.
MAX_POINTS = 300
MIN_STEP_SECONDS = 0.25
# Below this many points a line gets markers, so a run of a few scrapes still shows its values.
MARKER_BELOW_POINTS = 30
HASH_HEX_DIGITS = 64


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel; `$sel` stands for the run's extra label matchers, `$w` the rate window."""

    expr: str
    legend: tuple[str, ...]  # label names whose values name each line
    name: str = ""  # prefix of each line's name (the whole name when legend is empty)


@dataclass(frozen=True)
class Panel:
    """One axes of a figure."""

    title: str
    ylabel: str
    queries: tuple[Query, ...]


@dataclass(frozen=True)
class Plot:
    """One PNG file; optional plots are skipped when none of their panels has data."""

    filename: str
    title: str
    panels: tuple[Panel, ...]
    optional: bool = False


PLOTS = (
    Plot(
        "throughput.png",
        "Throughput",
        (
            Panel(
                "Blocks accepted per second (network: mean over nodes)",
                "blocks/s",
                (Query("avg by (kind) (rate(chainlab_blocks_accepted_total{$sel}[$w]))", ("kind",)),),
            ),
            Panel(
                "Gossip bytes per second (all nodes)",
                "bytes/s",
                (Query("sum by (direction) (rate(chainlab_gossip_bytes_total{$sel}[$w]))", ("direction",)),),
            ),
            Panel(
                "Predictions per second",
                "per second",
                (
                    Query(
                        'sum(rate(chainlab_grpc_request_seconds_count{method="Predict",$sel}[$w]))', (), "Predict calls"
                    ),
                    Query("sum(rate(chainlab_predicted_samples_total{$sel}[$w]))", (), "samples predicted"),
                ),
            ),
        ),
    ),
    Plot(
        "accuracy.png",
        "Accuracy",
        (
            Panel(
                "Ensemble accuracy per task (Key Block Metric_best, full nodes)",
                "accuracy",
                (Query("max by (task) (chainlab_bagchain_ensemble_accuracy{$sel})", ("task",), "task"),),
            ),
            Panel(
                "Requester's scores of finished tasks on D_E, mean over tasks, by measure",
                "accuracy",
                (Query("avg by (measure) (chainlab_bagchain_task_accuracy{$sel})", ("measure",)),),
            ),
        ),
    ),
    Plot(
        "chain.png",
        "Chain",
        (
            Panel(
                "Best-chain height per node",
                "height",
                (Query("max by (node) (chainlab_chain_height{$sel})", ("node",)),),
            ),
            Panel(
                "Distinct tips among voting nodes",
                "tips",
                (Query("count(count by (tip) (chainlab_chain_tip{$sel} == 1))", (), "distinct tips"),),
            ),
        ),
    ),
    Plot(
        "load.png",
        "Load (locust)",
        (
            Panel(
                "Requests per second by name",
                "requests/s",
                (Query("sum by (name) (rate(chainlab_load_requests_total{$sel}[$w]))", ("name",)),),
            ),
            Panel(
                "p99 latency by name",
                "seconds",
                (
                    Query(
                        "histogram_quantile(0.99,"
                        " sum by (name, le) (rate(chainlab_load_request_seconds_bucket{$sel}[$w])))",
                        ("name",),
                    ),
                ),
            ),
        ),
        optional=True,
    ),
)


def _selector(labels: dict[str, str] | None) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))


def _line_name(query: Query, series: Series) -> str:
    # Task IDs are 64 hex digits: their first 8 name a line well enough.
    values = [_short(series.labels.get(label, "")) for label in query.legend]
    parts = [query.name, *values] if query.name else values
    return " ".join(p for p in parts if p) or query.expr


def _short(value: str) -> str:
    return value[:8] if len(value) == HASH_HEX_DIGITS else value


def _finite(series: Series) -> bool:
    return any(math.isfinite(v) for _t, v in series.points)


def _new_figure(rows: int) -> Figure:
    # A bare Figure on an Agg canvas renders PNGs without pyplot: no process-wide backend switch, no leaked figures.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _draw_panel(axes: Axes, panel: Panel, lines: Sequence[tuple[str, Series]], start: float) -> None:
    axes.set_title(panel.title)
    axes.set_xlabel("seconds since start")
    axes.set_ylabel(panel.ylabel)
    if not lines:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center", color="grey")
        return
    for name, series in lines:
        marker = "o" if len(series.points) < MARKER_BELOW_POINTS else None
        axes.plot([t - start for t, _v in series.points], [v for _t, v in series.points], label=name, marker=marker)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def write_run_plots(
    client: PrometheusClient,
    start: float,
    end: float,
    out_dir: Path,
    *,
    labels: dict[str, str] | None = None,
    rate_window: str = "30s",
) -> list[Path]:
    """Draw throughput, accuracy, chain and (when locust ran) load PNGs of [start, end]; returns the files written.

    labels restrict every query (e.g. {"run": "demo"}); rate_window is the PromQL window of every rate().
    """
    step = max(MIN_STEP_SECONDS, (end - start) / MAX_POINTS)
    substitutions = {"sel": _selector(labels), "w": rate_window}
    written: list[Path] = []
    for plot in PLOTS:
        panels: list[tuple[Panel, list[tuple[str, Series]]]] = []
        for panel in plot.panels:
            lines: list[tuple[str, Series]] = []
            for query in panel.queries:
                expr = Template(query.expr).substitute(substitutions)
                found = [s for s in client.query_range(expr, start, end, step) if _finite(s)]
                lines += [(_line_name(query, s), s) for s in sorted(found, key=lambda s: sorted(s.labels.items()))]
            panels.append((panel, lines))
        if plot.optional and not any(lines for _panel, lines in panels):
            continue
        figure = _new_figure(len(panels))
        figure.suptitle(plot.title)
        for index, (panel, lines) in enumerate(panels):
            _draw_panel(figure.add_subplot(len(panels), 1, index + 1), panel, lines, start)
        path = Path(out_dir) / plot.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=100)
        written.append(path)
    return written
