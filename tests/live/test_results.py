"""The live run's console table: compact, laid out by the protocol, rounds as wall seconds."""

from __future__ import annotations

from rich.console import Console

from chainlab.live.results import results_table


def test_the_table_fits_80_columns_and_shows_every_task() -> None:
    row = {
        "height": 1, "task_id": "ab" * 32, "ensemble_accuracy": 0.7766, "predict_accuracy": 0.7766,
        "base_accuracies": [0.61, 0.654], "miniblocks_generated": 5, "miniblocks_used": 4, "interval_rounds": 297,
    }  # fmt: skip
    results = {
        "protocol": "bagchain", "round_seconds": 0.1, "wall_seconds": 84.2, "forks": 0,
        "protocol_results": {"heights": [row, {**row, "height": 2, "predict_accuracy": None}],
                             "ensemble_accuracy": 0.7766, "public_accuracy": 0.594},
    }  # fmt: skip
    console = Console(width=80, record=True)
    console.print(results_table(results, "demo"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "77.66%" in text and "61.0~65.4%" in text and "4/5" in text and "KB after (s)" in text and "29.7" in text
    assert "abababab" in text and "…" not in text
