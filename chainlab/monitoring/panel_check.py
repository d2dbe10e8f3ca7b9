"""Does every Grafana panel show data? Run each panel's queries against Prometheus and report the empty ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chainlab.monitoring.dashboard_queries import PanelQuery, load, panel_queries
from chainlab.monitoring.prometheus import PrometheusError, Series


class QueryClient(Protocol):
    """What the check needs of a Prometheus client (PrometheusClient): a range query."""

    def query_range(self, expr: str, start: float, end: float, step: float, /) -> Sequence[Series]:
        """The series of expr evaluated every `step` seconds from start to end."""
        ...


@dataclass(frozen=True)
class Window:
    """The time range a dashboard shows, as Grafana asks for it: every `step` seconds from start to end."""

    start: float
    end: float
    step: float = 5.0


@dataclass(frozen=True)
class FailedQuery:
    """A panel query that returned no sample, or failed (error set)."""

    ref_id: str
    expr: str
    error: str | None = None


@dataclass(frozen=True)
class PanelResult:
    """One panel: has it data, how many series its queries returned, and which queries returned none."""

    dashboard: str
    panel: str
    has_data: bool
    series: int
    failing: tuple[FailedQuery, ...]


@dataclass(frozen=True)
class PanelReport:
    """Every panel of every dashboard checked."""

    panels: tuple[PanelResult, ...]

    @property
    def ok(self) -> bool:
        """True only when every panel has data (and there is at least one panel)."""
        return bool(self.panels) and all(panel.has_data for panel in self.panels)

    @property
    def empty(self) -> tuple[PanelResult, ...]:
        """The panels without data."""
        return tuple(panel for panel in self.panels if not panel.has_data)

    def summary(self) -> str:
        """The line "N/M panels have data"."""
        with_data = sum(panel.has_data for panel in self.panels)
        return f"{with_data}/{len(self.panels)} panels have data"


def _check_panel(client: QueryClient, queries: Sequence[PanelQuery], window: Window) -> PanelResult:
    series = 0
    failing = []
    for query in queries:
        try:
            found = client.query_range(query.expr, window.start, window.end, window.step)
        except PrometheusError as error:  # unreachable, PromQL error, bad answer: that panel's finding
            failing.append(FailedQuery(query.ref_id, query.expr, f"{type(error).__name__}: {error}"))
            continue
        with_points = [s for s in found if s.points]
        if with_points:
            series += len(with_points)
        else:
            failing.append(FailedQuery(query.ref_id, query.expr))
    first = queries[0]
    # A panel shows data when any of its queries does; the others are still listed, for the reader.
    return PanelResult(first.dashboard, first.panel_title, series > 0, series, tuple(failing))


def check_panels(client: QueryClient, dashboards_dir: Path, window: Window) -> PanelReport:
    """Run every target query of every panel of the dashboards in dashboards_dir over the window, as Grafana
    draws a panel: a panel has data when a query returns a point anywhere in the run, not only at its end (a
    load generator that stopped before the check has series that are stale by then)."""
    results: list[PanelResult] = []
    for path in sorted(dashboards_dir.glob("*.json")):
        by_panel: dict[str, list[PanelQuery]] = {}
        for query in panel_queries(load(path)):
            by_panel.setdefault(query.panel_title, []).append(query)
        results.extend(_check_panel(client, queries, window) for queries in by_panel.values())
    return PanelReport(tuple(results))


def print_report(report: PanelReport, console: Console | None = None) -> None:
    """Print the report as a table (failing expressions under each empty panel) and its summary line."""
    console = console or Console()
    table = Table(title="Grafana panels")
    table.add_column("dashboard")
    table.add_column("panel")
    table.add_column("data")
    table.add_column("series", justify="right")
    table.add_column("queries without data")
    for panel in report.panels:
        failing = "\n".join(
            f"{query.ref_id}: {query.expr}" + (f" ({query.error})" if query.error else "") for query in panel.failing
        )
        mark = "[green]yes[/green]" if panel.has_data else "[red]no[/red]"
        table.add_row(escape(panel.dashboard), escape(panel.panel), mark, str(panel.series), escape(failing))
    console.print(table)
    console.print(report.summary(), style="green" if report.ok else "red")
