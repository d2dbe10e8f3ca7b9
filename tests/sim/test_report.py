"""Tests for rendering simulation results."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from chainlab.sim.report import markdown_table, plot_results, plot_sweep, results_table, sweep_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_results(heights: int = 3, *, wastage: float = 0.5, ensemble: float = 0.93) -> dict[str, Any]:
    rows = [
        {
            "height": h,
            "task_id": f"{h:02x}" * 32,
            "key_block": "ab" * 32,
            "key_block_miner": f"miner{h}" + "cd" * 28,
            "ensemble_accuracy": ensemble - 0.01 * h,
            "base_accuracies": [0.80 + 0.01 * i for i in range(5)],
            "miniblocks_generated": 10,
            "miniblocks_used": 9,
            "best_possible_accuracy": 0.95,
            "round": 120 * h,
        }
        for h in range(1, heights + 1)
    ]
    return {
        "schema": 2,
        "protocol": "bagchain",
        "config": {"miners": 10},
        "seed": 42,
        "forks": 1,
        "wall_seconds": 3.25,
        "ml_seconds": 2.5,
        "protocol_results": {
            "heights": rows,
            "ensemble_accuracy": ensemble,
            "base_accuracy": {"min": 0.8, "mean": 0.82, "max": 0.84},
            "public_accuracy": 0.78,
            "best_possible_accuracy": 0.95,
            "miniblock_wastage": wastage,
            "key_block_interval_rounds": 121.5,
        },
    }


def render(table: Table) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table)
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[: len(PNG_MAGIC)] == PNG_MAGIC


def test_results_table_has_a_row_per_height_and_a_summary() -> None:
    table = results_table(fake_results(3), "demo [seed 42]")
    assert table.row_count == 3
    text = render(table)
    assert "demo [seed 42]" in text
    assert "01010101" in text and "miner1cd" in text
    assert "92.00%" in text  # ensemble accuracy at height 1
    assert "80.0~84.0%" in text
    assert "9/10" in text
    assert "public 78.00%" in text and "wastage 0.50" in text and "forks 1" in text
    assert "base mean 82.00% · base min 80.00% · base max 84.00%" in text
    assert "KB interval 121.5 rounds" in text


def test_results_table_tolerates_a_partial_run() -> None:
    results = fake_results(1)
    del results["wall_seconds"]
    results["protocol_results"]["heights"][0]["base_accuracies"] = []
    table = results_table(results, "partial")
    assert table.row_count == 1
    assert "wall —" in render(table)


def test_a_protocol_without_a_layout_shows_its_scalar_figures() -> None:
    from chainlab.scenarios.base import ReportLayout
    from chainlab.scenarios.tables import caption

    results = {"protocol": "toychain", "seed": 1, "forks": 0, "protocol_results": {"height": 4, "tip": "ab" * 32}}
    assert caption(results, ReportLayout()).startswith("height 4 · tip abababab · forks 0")
    text = render(results_table(results, "toy"))
    assert "height" in text and "abababab" in text


def test_plot_results_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "plots" / "results.png"
    plot_results(fake_results(4), path)
    assert is_png(path)


def test_plot_results_without_heights(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    plot_results(fake_results(0), path)
    assert is_png(path)


def sweep_points() -> list[tuple[str, dict[str, Any]]]:
    return [(str(delay), fake_results(2, wastage=delay / 8, ensemble=0.95 - delay / 1000)) for delay in (16, 2, 8)]


def test_sweep_table() -> None:
    table = sweep_table(sweep_points(), "network delay")
    assert table.row_count == 3
    text = render(table)
    assert "94.80%" in text and "2.00" in text


@pytest.mark.parametrize(
    "metrics",
    [
        ("ensemble_accuracy", "miniblock_wastage"),
        ("ensemble_accuracy",),
        ("forks", "wall_seconds", "base_accuracy.mean"),
    ],
)
def test_plot_sweep_numeric_labels(tmp_path: Path, metrics: tuple[str, ...]) -> None:
    path = tmp_path / "sweep.png"
    plot_sweep(sweep_points(), "Network delay (rounds)", path, metrics=metrics)
    assert is_png(path)


def test_plot_sweep_categorical_labels(tmp_path: Path) -> None:
    points = [("w/o CFS", fake_results(1)), ("w/ CFS", fake_results(1, wastage=0.0))]
    path = tmp_path / "cfs.png"
    plot_sweep(points, "Scheme", path, metrics=("ensemble_accuracy", "miniblock_wastage"))
    assert is_png(path)


def test_markdown_table() -> None:
    rows = [
        {"scheme": "w/ CFS", "accuracy": 0.934567, "forks": 3, "wall": 12345.678},
        {"scheme": "a|b", "accuracy": 1.0, "forks": 0},
    ]
    text = markdown_table(rows, ["scheme", "accuracy", "forks", "wall"])
    assert text == (
        "| scheme | accuracy | forks | wall |\n"
        "| --- | --- | --- | --- |\n"
        "| w/ CFS | 0.9346 | 3 | 12346 |\n"
        "| a\\|b | 1 | 0 |  |\n"
    )


def test_compare_plot_overlays_variants(tmp_path: Path) -> None:
    from chainlab.sim.report import plot_compare

    def point(size: str, accuracy: float, wastage: float) -> tuple[str, dict[str, float]]:
        return size, {"ensemble_accuracy": accuracy, "miniblock_wastage": wastage}

    series = {
        "w/o CFS": [point("8", 0.9, 2), point("32", 0.85, 4)],
        "w/ CFS": [point("8", 0.91, 0), point("32", 0.91, 0)],
    }
    plot_compare(
        series, "Key Block size (MB)", tmp_path / "compare.png", metrics=("ensemble_accuracy", "miniblock_wastage")
    )
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError):
        plot_compare({}, "x", tmp_path / "none.png", metrics=("ensemble_accuracy",))
