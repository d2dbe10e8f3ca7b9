"""Sweep points repeated over seeds, and the median summary that stands for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chainlab.scenarios.experiment import Experiment
from chainlab.sim.runner import by_seed_medians, points, write_summary
from tests.sim.test_report import fake_results

BASE: dict[str, Any] = {"name": "s", "protocol": {"name": "bagchain"}, "miners": 2}


def _seeded(ensemble: float, seed: int) -> dict[str, Any]:
    results = fake_results(ensemble=ensemble)
    results["seed"] = seed
    return results


def test_each_point_runs_once_per_seed_with_that_seed() -> None:
    exp = Experiment.from_mapping({**BASE, "sweep": {"path": "miners", "values": [2, 3]}, "seeds": [5, 6]})
    got = [(label, point.seed, point.get("miners")) for label, point in points(exp)]
    assert got == [
        ("miners=2,seed=5", 5, 2),
        ("miners=2,seed=6", 6, 2),
        ("miners=3,seed=5", 5, 3),
        ("miners=3,seed=6", 6, 3),
    ]
    assert [label for label, _ in points(Experiment.from_mapping({**BASE, "seeds": [1]}))] == ["seed=1"]


def test_seeds_must_be_distinct_integers() -> None:
    for bad in ([1, 1], ["1"], 3):
        with pytest.raises(ValueError, match="seeds"):
            Experiment.from_mapping({**BASE, "seeds": bad})


def test_a_point_over_seeds_reports_the_median_of_each_figure() -> None:
    done = [(f"miners=2,seed={s}", _seeded(e, s)) for s, e in ((1, 0.9), (2, 0.5), (3, 0.8))]
    [(label, merged)] = by_seed_medians(done)
    assert label == "miners=2" and merged["seeds"] == [1, 2, 3]
    assert merged["protocol_results"]["ensemble_accuracy"] == 0.8
    # Without seeds nothing changes.
    assert by_seed_medians([("miners=2", fake_results())])[0][0] == "miners=2"


def test_the_summary_is_the_medians_and_seeds_json_every_run(tmp_path: Path) -> None:
    exp = Experiment.from_mapping({**BASE, "sweep": {"path": "miners", "values": [2, 3]}, "seeds": [1, 2, 3]})
    done = [(f"miners={m},seed={s}", _seeded(0.5 + 0.1 * s, s)) for m in (2, 3) for s in (1, 2, 3)]
    write_summary(exp, done, tmp_path)
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert [r["point"] for r in rows] == ["miners=2", "miners=3"]
    assert len(json.loads((tmp_path / "seeds.json").read_text())) == 6
    assert (tmp_path / "summary.png").exists()


def test_an_analysis_is_computed_not_simulated_and_written_with_a_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chainlab.scenarios import registry
    from chainlab.scenarios.base import Analysis
    from chainlab.sim.runner import run_to_disk

    spec = registry.get("bflc")
    rows: list[dict[str, Any]] = [{"p": p, "q": q, "exact": p * q} for p in (0.1, 0.2) for q in (0.4, 0.5)]
    monkeypatch.setattr(spec, "analyse", lambda name, exp: Analysis(rows, {"max_gap": 0.0}, "q", ("exact",), "p"))
    exp = Experiment.from_mapping({"name": "a", "analysis": "committee_capture", "protocol": {"name": "bflc"}})
    [(label, results)] = run_to_disk(exp, tmp_path)
    assert label == ""
    assert results["analysis"] == "committee_capture" and results["rows"] == rows
    assert json.loads((tmp_path / "results.json").read_text())["summary"] == {"max_gap": 0.0}
    assert (tmp_path / "results.png").exists() and "| p | q | exact |" in (tmp_path / "results.md").read_text()


def test_an_analysis_the_protocol_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="analysis must be one of"):
        Experiment.from_mapping({**BASE, "analysis": "committee_capture"})


def test_a_curve_may_read_its_points_from_rows(tmp_path: Path) -> None:
    from chainlab.scenarios.base import Curve, Figure
    from chainlab.sim import report

    results = {
        "protocol_results": {"rounds": [{"u": 1.0, "acc": 0.5}, {"u": 2.0, "acc": None}, {"u": 3.0, "acc": 0.9}]}
    }
    assert report._series(results, "u", False, "rounds") == [1.0, 2.0, 3.0]
    acc = report._series(results, "acc", True, "rounds")
    assert acc[0] == 50.0 and acc[2] == 90.0 and acc[1] != acc[1]  # NaN where a round was not measured
    curve = Curve("u", "units", (Figure("accuracy", "acc", "pct"),), rows="rounds")
    report.plot_curves([("a", results), ("b", results)], curve, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
