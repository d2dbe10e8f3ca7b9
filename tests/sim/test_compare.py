"""`make compare`'s harness: rows from canned results.json files, aggregation, breakdown, report and plots; a small
real run of two protocols; and the CI grid (`make compare-quick`'s command) end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from chainlab.scenarios import registry
from chainlab.scenarios.compare import IID, CompareConfig, Expansion, Point, Skipped, expand
from chainlab.sim.compare import (
    PLOTS,
    aggregate,
    breakdown,
    cmd_compare,
    on_one_clock,
    read_results,
    row_of,
    time_to,
    write_outputs,
)

ROOT = Path(__file__).resolve().parents[2]


def config(**extra: Any) -> CompareConfig:
    """A two-protocol compare config (DFL and BFLC, tiny horizons)."""
    data: dict[str, Any] = {
        "name": "cmp",
        "participants": 4,
        "seeds": [1, 2],
        "fractions": [0.0, 0.5],
        "attacks": ["label_flip"],
        "timeout": 300,
        "world": {"dataset": "digits", "report_set": 300, "partition": {"scheme": "iid"}},
        "deviations": ["a test"],
        "protocols": {
            "dfl": {
                "experiment": {
                    "network": {"kind": "full"},
                    "protocol": {"nodes": 4, "duration": 60, "record_every": 20, "model": {"family": "softmax"}},
                },
                "attacks": {"label_flip": {"protocol.label_flip": "$fraction"}},
            },
            "bflc": {
                "experiment": {
                    "network": {"kind": "full"},
                    "protocol": {"nodes": 4, "rounds": 2, "active": 1.0, "model": {"family": "softmax"}},
                },
                "attacks": {"label_flip": {"protocol.label_flip": "$fraction"}},
            },
        },
    }
    data.update(extra)
    return CompareConfig.from_mapping(data)


def canned(accuracy: float, *, payload: int = 1000, history: tuple[float, ...] = (0.5, 0.9)) -> dict[str, Any]:
    """A results.json as `chainlab sim` writes it, reduced to what the harness reads."""
    return {
        "schema": 2,
        "wall_seconds": 3.0,
        "ml_seconds": 1.0,
        "forks": 2,
        "rounds": 100,
        "truncated": False,
        "protocol_cpu_share": None,
        "codec_cpu_share": None,
        "wire_bytes": {
            "payload": payload,
            "control": 10,
            "served": 200,
            "total": payload + 210,
            "per_node_mean": (payload + 210) / 4,
            "per_node_max": 900,
        },
        # Round 0 at 1 s, then 0.1 s a round: round r is 1 + r / 10 seconds in.
        "round_trace": {"rounds": [0, 100], "seconds": [1.0, 11.0], "heights": [0, 5]},
        "protocol_results": {
            "comparison": {
                "accuracy": accuracy,
                "history": {"rounds": list(range(10, 10 * len(history) + 1, 10)), "accuracy": list(history)},
                "chain_bytes": 500,
                "blocks": 7,
                "forks": 1,
                "honest_reward_share": 0.75,
            }
        },
    }


def rows_from(tmp_path: Path, points: tuple[Point, ...], accuracy: dict[tuple[str, float], float]) -> list[Any]:
    rows = []
    for point in points:
        folder = tmp_path / point.name
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(canned(accuracy[(point.protocol, point.fraction)])))
        rows.append(row_of(point, folder, 0, 1.0, "", 300.0))
    return rows


def test_read_results_takes_the_comparison_block_and_generic_keys() -> None:
    row = read_results(canned(0.8))
    assert row["accuracy"] == 0.8 and row["chain_bytes"] == 500 and row["blocks"] == 7
    assert row["forks"] == 2  # the larger of the block's and results.json's own
    assert row["payload_bytes"] == 1000 and row["control_bytes"] == 10 and row["served_bytes"] == 200
    assert row["total_bytes"] == 1210 and row["per_node_bytes"] == 302.5 and row["per_node_max_bytes"] == 900
    assert row["time_to_target"] == 20.0 and row["honest_reward_share"] == 0.75
    assert row["seconds_to_target"] == pytest.approx(3.0) and row["history_clock"] == "round"
    history = row["history"]
    assert isinstance(history, dict) and history["seconds"] == pytest.approx([2.0, 3.0])
    assert row["protocol_cpu_share"] is None and row["wall_seconds"] == 3.0
    assert read_results({"protocol_results": {}})["status"] == "failed"
    assert read_results([1])["status"] == "failed"
    no_wire = canned(0.8)
    del no_wire["wire_bytes"]
    assert read_results(no_wire)["payload_bytes"] is None


def test_time_to_target() -> None:
    assert time_to({"rounds": [1, 2, 3], "accuracy": [0.1, 0.86, 0.9]}) == 2.0
    assert time_to({"rounds": [1, 2], "accuracy": [0.1, 0.2]}) is None
    assert time_to(None) is None
    assert time_to({"rounds": [1, 2], "seconds": [4.0, 7.5], "accuracy": [0.1, 0.9]}, axis="seconds") == 7.5


TRACE = {"rounds": [0, 10, 20, 40], "seconds": [2.0, 3.0, 5.0, 6.0], "heights": [0, 1, 1, 3]}


def test_a_round_history_gets_wall_seconds_interpolated_in_the_trace() -> None:
    history = {"rounds": [0, 15, 30, 50], "accuracy": [0.1, 0.5, 0.8, 0.9]}
    out = on_one_clock(history, "round", TRACE)
    assert out["rounds"] == [0, 15, 30, 50] and out["accuracy"] == [0.1, 0.5, 0.8, 0.9]
    assert out["seconds"] == pytest.approx([2.0, 4.0, 5.5, 6.0])  # clamped past the trace's end
    assert on_one_clock(history, "round", None)["seconds"] == []  # live: no trace, rounds only
    assert on_one_clock(history, "round", {"rounds": [0], "seconds": ["x"]})["seconds"] == []
    assert on_one_clock(None, "round", TRACE) == {"rounds": [], "seconds": [], "accuracy": []}


def test_a_height_history_is_placed_at_the_round_the_chain_reached_each_height() -> None:
    history = {"rounds": [0, 1, 2, 3, 4], "accuracy": [0.1, 0.2, 0.3, 0.4, 0.5]}
    out = on_one_clock(history, "height", TRACE)
    assert out["rounds"] == [0, 10, 40, 40]  # height 2 first seen at round 40 (with 3); 4 never reached: dropped
    assert out["accuracy"] == [0.1, 0.2, 0.3, 0.4] and out["seconds"] == [2.0, 3.0, 6.0, 6.0]
    assert on_one_clock(history, "height", None)["rounds"] == []  # heights without a trace are on no common clock


def test_failed_and_timed_out_points_are_rows_with_their_error(tmp_path: Path) -> None:
    point = expand(config()).points[0]
    assert row_of(point, tmp_path, None, 5.0, "tail", 300.0)["status"] == "timeout"
    failed = row_of(point, tmp_path, 1, 5.0, "Traceback", 300.0)
    assert failed["status"] == "failed" and "Traceback" in str(failed["error"])
    missing = row_of(point, tmp_path, 0, 5.0, "", 300.0)
    assert missing["status"] == "failed" and "no readable results.json" in str(missing["error"])


def test_report_from_canned_results(tmp_path: Path) -> None:
    cfg = config(iid_control=True)
    expansion = expand(cfg)
    accuracy = {("dfl", 0.0): 0.9, ("dfl", 0.5): 0.85, ("bflc", 0.0): 0.9, ("bflc", 0.5): 0.6}
    rows = rows_from(tmp_path / "runs", expansion.points, accuracy)
    for i, point in enumerate(expansion.points):
        if point.attack == IID:
            rows[i] = {**rows[i], "accuracy": 0.95}
        if point.name == "dfl/f0-none-s1":
            rows[i] = {**rows[i], "protocol_cpu_share": 1.5}
        if point.name == "bflc/f0.5-label_flip-s2":
            rows[i] = {**rows[i], "status": "failed", "error": "exit code 1; log tail: boom"}
    skipped = (*expansion.skipped, Skipped("learningchain", None, "not registered"))
    summary = write_outputs(cfg, Expansion(expansion.points, skipped), rows, tmp_path, 12.0)

    assert isinstance(summary["cells"], list)
    cells: dict[tuple[object, ...], Any] = {(c["protocol"], c["attack"], c["fraction"]): c for c in summary["cells"]}
    assert cells[("dfl", "label_flip", 0.0)]["accuracy"] == {"mean": 0.9, "sd": 0.0, "n": 2}
    assert cells[("bflc", "label_flip", 0.5)]["accuracy"]["n"] == 1  # one of its two seeds failed
    assert cells[("dfl", "label_flip", 0.0)]["seconds_to_target"]["mean"] == pytest.approx(3.0)
    assert cells[("dfl", "label_flip", 0.0)]["served_bytes"]["mean"] == 200
    assert not [c for c in summary["cells"] if c["attack"] == IID]  # the control has its own table
    assert summary["breakdown"] == {"dfl": {"label_flip": None}, "bflc": {"label_flip": 0.5}}
    assert summary["points_ok"] == len(rows) - 1
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["breakdown"] == summary["breakdown"] and len(on_disk["points"]) == len(rows)
    report = (tmp_path / "report.md").read_text()
    assert "| dfl | label_flip | 0 | 2 | 90.00 ± 0.00 | 20 | 3.0 | 1.0 kB | 200 B | 10 B | 302 B | 900 B |" in report
    assert "dfl/f0-none-s1: chain CPU share 150 % > 100 %" in report
    assert "## IID control" in report and "| dfl | 90.00 | 95.00 | +5.00 |" in report
    assert "| bflc | 0.5 |" in report  # the breakdown table
    assert "learningchain: not run: not registered" in report
    assert "bflc/f0.5-label_flip-s2: failed: exit code 1; log tail: boom" in report
    assert "a test" in report  # deviations
    for name in PLOTS:
        assert (tmp_path / name).stat().st_size > 1000


def test_aggregate_and_breakdown_without_a_clean_value() -> None:
    rows = [{"protocol": "p", "attack": "a", "fraction": 0.3, "status": "ok", "accuracy": 0.5}]
    cells = aggregate(rows, ["a"])
    assert [c["fraction"] for c in cells] == [0.3]
    assert breakdown(cells) == {"p": {"a": None}}


def test_cmd_compare_rejects_a_bad_config_and_jobs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("participants: 0\n")
    console = Console(file=open(tmp_path / "log", "w"))  # noqa: SIM115
    assert cmd_compare(bad, tmp_path / "out", 1, console) == 2
    assert cmd_compare(bad, tmp_path / "out", 0, console) == 2


@pytest.mark.slow
def test_a_small_real_run_of_two_protocols(tmp_path: Path) -> None:
    cfg = config(seeds=[1])
    path = tmp_path / "cmp.yaml"
    raw = {
        "name": cfg.name,
        "participants": cfg.participants,
        "seeds": [1],
        "fractions": [0.0, 0.5],
        "attacks": ["label_flip"],
        "timeout": 300,
        "world": dict(cfg.world),
        "deviations": ["a test"],
        "protocols": {p.name: {"experiment": dict(p.experiment), "attacks": dict(p.attacks)} for p in cfg.protocols},
    }
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    console = Console(file=open(tmp_path / "log", "w"))  # noqa: SIM115
    assert cmd_compare(path, out, 2, console) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points_ok"] == summary["points_total"] == 4
    for row in summary["points"]:
        assert 0.0 < row["accuracy"] <= 1.0 and row["history"]["rounds"], row
    assert set(summary["breakdown"]) == {"dfl", "bflc"}


@pytest.mark.slow
def test_compare_quick_holds_every_registered_protocol(tmp_path: Path) -> None:
    """`make compare-quick`'s command on experiments/compare/compare_quick.yaml (about 10 minutes on 2 cores)."""
    out = tmp_path / "compare-quick"
    quick = ROOT / "experiments" / "compare" / "compare_quick.yaml"
    command = [sys.executable, "-m", "chainlab.cli", "compare", "--config", str(quick), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert (out / "report.md").is_file() and (out / "summary.json").is_file(), done.stdout[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    report = (out / "report.md").read_text()
    configured = set(yaml.safe_load(quick.read_text())["protocols"])
    for name in configured & set(registry.names()):
        assert name in summary["protocols"], (name, summary["not_run"])
        assert f"| {name} | label_flip | 0 |" in report
    for name in configured - set(registry.names()):
        assert f"{name}: not run: not registered" in report
    assert done.returncode == 0, [r["error"] for r in summary["points"] if r["status"] != "ok"]
