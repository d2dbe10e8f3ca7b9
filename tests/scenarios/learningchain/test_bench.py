"""The aggregation benchmark measures both rules and writes its JSON."""

from __future__ import annotations

import json
from pathlib import Path

from chainlab.scenarios.learningchain import bench


def test_the_benchmark_times_both_rules() -> None:
    small = bench.measure(holders=10, classes=3, features=5, repeats=5)
    assert small["dimension"] == 18 and small["byzantine"] == 4
    for rule in ("l_nearest", "multi_krum"):
        entry = small[rule]
        assert isinstance(entry, dict) and len(entry["seconds"]) == 5 and entry["median_seconds"] > 0


def test_the_command_writes_aggregation_json(tmp_path: Path) -> None:
    out = tmp_path / "aggregation.json"
    assert bench.main(["--out", str(out), "--repeats", "5"]) == 0
    written = json.loads(out.read_text())
    assert written["holders"] == 100 and written["dimension"] == 7850
