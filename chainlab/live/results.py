"""The console table of a finished live run: one row per task, from results.json's protocol_results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table


def results_table(results: Mapping[str, Any], title: str) -> Table:
    """One row per task: ensemble accuracy on D_E (as ranked, and as Predict serves it), base accuracies on D_E,
    MiniBlocks used and wasted, and the wall time since the previous Key Block (the first counts start-up)."""
    seconds = float(results["round_seconds"])
    results = {**results, **results.get("protocol_results", {})}
    table = Table(title=title, padding=(0, 0))
    for name in ("Height", "Task", "Ensemble", "Predict", "Base min~max", "MBs used/wasted", "KB after"):
        table.add_column(name, justify="left" if name == "Task" else "right", no_wrap=True)
    for row in results.get("heights", []):
        base = row["base_accuracies"]
        wasted = row["miniblocks_generated"] - row["miniblocks_used"]
        predicted = row["predict_accuracy"]
        table.add_row(
            str(row["height"]),
            row["task_id"][:8],
            f"{100 * row['ensemble_accuracy']:.2f}%",
            "-" if predicted is None else f"{100 * predicted:.2f}%",
            f"{100 * min(base):.1f}~{100 * max(base):.1f}%" if base else "-",
            f"{row['miniblocks_used']}/{wasted}",
            f"{row['interval_rounds'] * seconds:.1f} s",
        )
    table.caption = (
        f"mean ensemble {100 * results.get('ensemble_accuracy', 0.0):.2f}%"
        f" · public model {100 * results.get('public_accuracy', 0.0):.2f}%"
        f" · wall {results.get('wall_seconds', 0):.0f} s"
    )
    return table
