"""Tables of results.json for terminals and reports, laid out by the protocol's ReportLayout (one place, so
`chainlab sim`, `chainlab up`, sweeps and `make paper` show the same figures the same way)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from chainlab.scenarios import registry
from chainlab.scenarios.base import Figure, ReportLayout

MISSING = "—"
SHORT_ID = 8
RUN_FIGURES = (
    Figure("forks", "forks", "count"),
    Figure("wall", "wall_seconds", "seconds"),
    Figure("ML", "ml_seconds", "seconds"),
)  # every protocol's, after its own headline
_UNITS = {"rounds": "rounds", "seconds": "s"}


def figures(results: Mapping[str, Any]) -> dict[str, Any]:
    """The generic figures of results.json and the protocol's own (protocol_results) in one flat mapping."""
    return {**results, **results.get("protocol_results", {})}


def layout_of(results: Mapping[str, Any]) -> ReportLayout:
    """The layout of the protocol that produced results (BagChain for results without a protocol key); the
    default layout for a protocol this process cannot load (a plug-in's results read elsewhere)."""
    try:
        return registry.get(str(results.get("protocol", "bagchain"))).report
    except ValueError:
        return ReportLayout()


def headline(results: Mapping[str, Any], layout: ReportLayout) -> tuple[Figure, ...]:
    """The layout's headline, or every scalar of protocol_results when it names none."""
    if layout.headline:
        return layout.headline
    own = results.get("protocol_results", {})
    shown = []
    for key, found in own.items():
        if isinstance(found, int | float | str) and not isinstance(found, bool):
            shown.append(
                Figure(key, key, "id" if isinstance(found, str) else "count" if isinstance(found, int) else "num")
            )
    return tuple(shown)


def value(data: Mapping[str, Any], path: str) -> Any:
    """A figure by dotted path; None where any part is absent."""
    found: Any = data
    for part in path.split("."):
        if not isinstance(found, Mapping) or part not in found:
            return None
        found = found[part]
    return found


def number(raw: Any) -> float | None:
    """raw as a float, or None where it is absent or not a number (a partial or failed run)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw)


def header(figure: Figure, round_seconds: float | None = None) -> str:
    """A column's label, with the unit its cells leave out."""
    unit = "s" if figure.format == "rounds" and round_seconds else _UNITS.get(figure.format)
    return f"{figure.label} ({unit})" if unit else figure.label


def render(figure: Figure, data: Mapping[str, Any], round_seconds: float | None = None, *, unit: bool = True) -> str:
    """One figure of data as text; rounds become seconds given a round length; unit=False leaves units out."""
    raw = value(data, figure.path)
    if figure.format == "id":
        return MISSING if raw is None else escape(str(raw)[:SHORT_ID])
    if figure.format == "range":
        values = [n for n in (number(x) for x in raw or []) if n is not None] if isinstance(raw, list) else []
        return f"{100 * min(values):.1f}~{100 * max(values):.1f}%" if values else MISSING
    if figure.format == "ratio":
        other = value(data, figure.other)
        return f"{MISSING if raw is None else raw}/{MISSING if other is None else other}"
    if isinstance(raw, str):
        return escape(raw)
    n = number(raw)
    if n is None:
        return MISSING
    if figure.format == "pct":
        return f"{100 * n:.2f}%"
    if figure.format == "count":
        return f"{n:.0f}"
    if figure.format == "rounds" and round_seconds:
        return f"{n * round_seconds:.1f}" + (" s" if unit else "")
    if figure.format in _UNITS:
        return f"{n:.1f}" + (f" {_UNITS[figure.format]}" if unit else "")
    return f"{n:.2f}"


def caption(results: Mapping[str, Any], layout: ReportLayout) -> str:
    """The run's headline figures, then forks, wall and ML seconds, and the seed."""
    flat = figures(results)
    parts = [f"{f.label} {render(f, flat)}" for f in (*headline(results, layout), *RUN_FIGURES)]
    if "seed" in results:
        parts.append(f"seed {results['seed']}")
    return " · ".join(parts)


def results_table(results: Mapping[str, Any], title: str, *, compact: bool = False) -> Table:
    """One row per row of the protocol's results (BagChain: per height), the headline as the caption.

    compact keeps the columns marked compact and shows rounds as seconds when the run has a round length (live).
    """
    layout = layout_of(results)
    columns = [c for c in layout.row_columns if (c.compact if compact else c.full)]
    seconds = number(results.get("round_seconds")) if compact else None
    table = Table(title=escape(title), caption=escape(caption(results, layout)), padding=(0, 0 if compact else 1))
    for column in columns:
        table.add_column(
            header(column, seconds),
            justify="left" if column.format == "id" else "right",
            no_wrap=compact or column.format == "range",
        )
    rows = value(results, f"protocol_results.{layout.rows}") if layout.rows else None
    for row in rows if isinstance(rows, list) else []:
        table.add_row(*(render(c, row, seconds, unit=False) for c in columns))
    if not columns:  # a protocol without per-row figures: its headline, one figure a row
        table.add_column("figure")
        table.add_column("value", justify="right")
        flat = figures(results)
        for figure in (*headline(results, layout), *RUN_FIGURES):
            table.add_row(escape(figure.label), render(figure, flat))
        table.caption = f"seed {results['seed']}" if "seed" in results else None
    return table


def sweep_table(points: Sequence[tuple[str, Mapping[str, Any]]], title: str) -> Table:
    """One row per point of a parameter sweep, labelled by the swept value, with each point's compact headline."""
    table = Table(title=escape(title))
    table.add_column("Point")
    if not points:
        return table
    own = [f for f in headline(points[0][1], layout_of(points[0][1])) if f.compact]
    shown = (*own, *RUN_FIGURES)
    for figure in shown:
        table.add_column(header(figure), justify="right")
    for label, results in points:
        flat = figures(results)
        table.add_row(escape(label), *(render(f, flat, unit=False) for f in shown))
    return table


def summary_fields(results: Mapping[str, Any]) -> list[str]:
    """The dotted paths of a run's headline and run figures: the columns of sweep summaries."""
    return [f.path for f in (*headline(results, layout_of(results)), *RUN_FIGURES)]
