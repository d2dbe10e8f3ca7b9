"""`make bench-scale`: the point list from the environment, rows from results.json, the writers, failures."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chainlab.sim import bench_scale
from chainlab.sim.bench_scale import (
    DEFAULT_MINERS,
    DEFAULT_TIMEOUT_SECONDS,
    Outcome,
    Point,
    available_cores,
    markdown,
    parse_difficulty,
    parse_miners,
    parse_networks,
    parse_timeout,
    parse_workers,
    points_of,
    row_of,
    run_point,
    scaled_target,
    sim_command,
    write_outputs,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "experiments" / "bench_scale.yaml"
OK = Outcome(0, 5.0, 400.0, "")


def _results(path: Path, **extra: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "wall_seconds": 10.0,
        "ml_seconds": 8.0,
        "truncated": False,
        "protocol_results": {"ensemble_accuracy": 0.81, "heights": []},
        **extra,
    }
    path.write_text(json.dumps(results))
    return path


def test_points_come_from_the_environment_with_defaults() -> None:
    assert parse_miners(None) == parse_miners("  ") == DEFAULT_MINERS == (10, 100, 250, 1000)
    assert parse_miners("100 250") == parse_miners("100,250") == (100, 250)
    assert parse_networks("") == ("full", "erdos_renyi") and parse_networks("erdos_renyi") == ("erdos_renyi",)
    assert parse_workers("") == available_cores() >= 1 and parse_workers("2") == 2
    assert parse_timeout(None) == DEFAULT_TIMEOUT_SECONDS and parse_timeout("1.5") == 1.5
    assert points_of((10, 100), ("full", "erdos_renyi")) == [
        Point(10, "full"), Point(10, "erdos_renyi"), Point(100, "full"), Point(100, "erdos_renyi")
    ]  # fmt: skip
    assert Point(1000, "erdos_renyi").name == "erdos_renyi-1000"


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_miners, "ten", "MINERS must be whole numbers"),
        (parse_miners, "10 0", "MINERS must each be >= 1"),
        (parse_networks, "full mesh", "NETWORKS must be among full, erdos_renyi, got mesh"),
        (parse_networks, "topology", "NETWORKS must be among"),
        (parse_workers, "two", "WORKERS must be a whole number"),
        (parse_workers, "0", "WORKERS must be >= 1"),
        (parse_timeout, "soon", "TIMEOUT must be seconds"),
        (parse_timeout, "0", "TIMEOUT must be > 0"),
        (parse_timeout, "nan", "TIMEOUT must be > 0"),
    ],
)
def test_bad_environment_values_are_named(parse: Any, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text)


def test_main_exits_2_on_a_bad_variable_or_a_missing_config(tmp_path: Path) -> None:
    assert bench_scale.main(["--out", str(tmp_path)], {"MINERS": "many"}) == 2
    assert bench_scale.main(["--out", str(tmp_path), "--config", str(tmp_path / "none.yaml")], {}) == 2
    assert not (tmp_path / "bench.json").exists()


def test_sim_command_sets_the_point_and_passes_workers_only_when_asked(tmp_path: Path) -> None:
    command = sim_command(CONFIG, tmp_path / "p", Point(250, "erdos_renyi"), 2)
    assert command[:3] == [sys.executable, "-m", "chainlab.cli"]
    assert command[3:] == ["sim", "--config", str(CONFIG), "--out", str(tmp_path / "p"), "--set", "miners=250",
                           "--set", "network.kind=erdos_renyi", "--workers", "2"]  # fmt: skip
    assert "--workers" not in sim_command(CONFIG, tmp_path, Point(10, "full"), None)


def test_a_target_override_is_passed_as_a_setting(tmp_path: Path) -> None:
    command = sim_command(CONFIG, tmp_path, Point(100, "full"), None, 12345)
    assert command[-2:] == ["--set", "protocol.target=12345"]


def test_the_scaled_target_keeps_the_expected_time_to_a_nonce(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("miners: 10\nprotocol: {target: '2**20'}\n")
    assert scaled_target(config, 10) == 2**20
    assert scaled_target(config, 1000) == 2**20 // 100  # 100 times the miners, each 100 times less likely per trial
    assert scaled_target(config, 10**9) == 1  # never a target nothing meets
    config.write_text("miners: 4\nprotocol: {target: 1000}\n")
    assert scaled_target(config, 8) == 500


@pytest.mark.parametrize("text, chosen", [("", "scaled"), ("fixed", "fixed"), (" scaled ", "scaled")])
def test_difficulty_is_scaled_unless_fixed_is_asked(text: str, chosen: str) -> None:
    assert parse_difficulty(text) == chosen


def test_a_bad_difficulty_exits_2(tmp_path: Path) -> None:
    assert bench_scale.main(["--out", str(tmp_path)], {"DIFFICULTY": "hard"}) == 2
    with pytest.raises(ValueError, match="DIFFICULTY"):
        parse_difficulty("hard")


def test_a_row_reads_results_json_and_its_non_ml_time(tmp_path: Path) -> None:
    path = _results(tmp_path / "full-100" / "results.json", peak_rss_mb=321.5, non_ml_seconds=2.0)
    row = row_of(Point(100, "full"), 2, path, OK, 900)
    assert row["miners"] == 100 and row["network"] == "full" and row["workers"] == 2
    assert row["status"] == "ok" and row["error"] is None
    assert row["wall_seconds"] == 10.0 and row["ml_seconds"] == 8.0
    assert row["non_ml_seconds"] == 2.0 and row["non_ml_over_ml"] == 0.25  # 2 / 8
    assert row["peak_rss_mb"] == 321.5 and row["max_process_rss_mb"] == 400.0
    assert row["ensemble_accuracy"] == 0.81 and row["truncated"] is False


def test_a_row_takes_the_runs_own_worker_count_and_nulls_what_results_lack(tmp_path: Path) -> None:
    path = _results(tmp_path / "results.json", workers=1, ml_seconds=0.0, non_ml_seconds=10.0, protocol_results={})
    row = row_of(Point(10, "full"), 2, path, OK, 900)
    assert row["workers"] == 1
    assert row["peak_rss_mb"] is None and row["ensemble_accuracy"] is None
    assert row["non_ml_seconds"] == 10.0 and row["non_ml_over_ml"] is None  # no ML: no ratio


@pytest.mark.parametrize(
    ("outcome", "results", "status", "error"),
    [
        (Outcome(None, 900.2, 500.0, "round 4000"), True, "timeout", "timed out after 900 s; log tail: round 4000"),
        (Outcome(1, 3.0, 200.0, "Traceback: boom"), True, "failed", "exit code 1; log tail: Traceback: boom"),
        (Outcome(-9, 3.0, None, ""), False, "failed", "exit code -9"),
        (OK, False, "failed", "exit code 0 but no readable results.json"),
    ],
)
def test_a_failed_or_timed_out_point_is_written_with_its_error(
    tmp_path: Path, outcome: Outcome, results: bool, status: str, error: str
) -> None:
    path = _results(tmp_path / "results.json") if results else tmp_path / "results.json"
    row = row_of(Point(1000, "erdos_renyi"), 2, path, outcome, 900)
    assert row["status"] == status and str(row["error"]).startswith(error)
    assert row["miners"] == 1000 and row["network"] == "erdos_renyi"
    assert row["wall_seconds"] is None and row["ensemble_accuracy"] is None


def test_a_results_file_that_is_not_an_object_fails_the_point(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("[1, 2]")
    row = row_of(Point(10, "full"), 1, tmp_path / "results.json", OK, 900)
    assert row["status"] == "failed" and row["error"] == "results.json is not an object"


def test_writers_make_json_markdown_and_a_png(tmp_path: Path) -> None:
    rows = [
        row_of(Point(n, kind), 2, _results(tmp_path / f"{kind}-{n}" / "results.json", wall_seconds=n / 10), OK, 900)
        for n in (10, 100)
        for kind in ("full", "erdos_renyi")
    ]
    rows.append(row_of(Point(1000, "full"), 2, tmp_path / "none.json", Outcome(None, 900.0, None, "x"), 900))
    write_outputs(rows, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "bench.json").read_text()) == json.loads(json.dumps(rows))
    text = (tmp_path / "out" / "bench.md").read_text()
    assert "| 100 | erdos_renyi | 2 | scaled | 10.0 | 8.0 |" in text
    assert "- full, 1000 miners: timed out after 900 s" in text
    assert (tmp_path / "out" / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_markdown_and_plot_cope_with_no_successful_point(tmp_path: Path) -> None:
    rows = [row_of(Point(10, "full"), 1, tmp_path / "none.json", Outcome(2, 1.0, None, "usage"), 900)]
    assert "| 10 | full | 1 | scaled |  |" in markdown(rows, "t")
    write_outputs(rows, tmp_path)
    assert (tmp_path / "bench.png").stat().st_size > 0


def test_the_bench_runs_each_point_writes_after_each_and_exits_1_on_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Sequence[str]] = []

    def fake_run(command: Sequence[str], log: Path, timeout_seconds: float) -> Outcome:
        started.append(command)
        out = Path(command[command.index("--out") + 1])
        if "miners=20" in command:
            return Outcome(None, timeout_seconds, None, "stuck")
        _results(out / "results.json", workers=2)
        return OK

    monkeypatch.setattr(bench_scale, "cli_has_workers", lambda: True)
    monkeypatch.setattr(bench_scale, "run_point", fake_run)
    env = {"MINERS": "10 20", "NETWORKS": "full", "WORKERS": "2", "TIMEOUT": "7", "OUT": str(tmp_path)}
    assert bench_scale.main(["--config", str(CONFIG)], env) == 1
    assert [c[c.index("--out") + 1] for c in started] == [str(tmp_path / "full-10"), str(tmp_path / "full-20")]
    assert all(c[-2:] == ["--workers", "2"] for c in started)
    rows = json.loads((tmp_path / "bench.json").read_text())
    assert [(r["miners"], r["status"]) for r in rows] == [(10, "ok"), (20, "timeout")]
    assert rows[1]["error"].startswith("timed out after 7 s")


def test_without_a_workers_flag_the_bench_says_so_and_records_one_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[Sequence[str]] = []

    def fake_run(command: Sequence[str], log: Path, timeout_seconds: float) -> Outcome:
        commands.append(command)
        _results(Path(command[command.index("--out") + 1]) / "results.json")
        return OK

    monkeypatch.setattr(bench_scale, "cli_has_workers", lambda: False)
    monkeypatch.setattr(bench_scale, "run_point", fake_run)
    console = Console(record=True, width=200)
    rows = bench_scale.run_bench_scale(CONFIG, tmp_path, [Point(10, "full")], 2, 60.0, console)
    assert "--workers" not in commands[0] and rows[0]["workers"] == 1
    assert "no --workers" in console.export_text()


@pytest.mark.slow
def test_run_point_reports_exit_code_memory_and_a_timeout(tmp_path: Path) -> None:
    ok = run_point([sys.executable, "-c", "print('hello')"], tmp_path / "ok.log", 60)
    assert ok.returncode == 0 and "hello" in ok.log_tail
    assert ok.max_process_rss_mb is not None and ok.max_process_rss_mb > 1
    assert run_point([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "bad.log", 60).returncode == 3
    stuck = run_point([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "stuck.log", 0.5)
    assert stuck.returncode is None and stuck.process_seconds < 10


@pytest.mark.slow
def test_the_real_bench_on_five_miners(tmp_path: Path) -> None:
    env = {"MINERS": "5", "NETWORKS": "full", "WORKERS": "1", "OUT": str(tmp_path)}
    assert bench_scale.main(["--config", str(CONFIG)], env) == 0
    (row,) = json.loads((tmp_path / "bench.json").read_text())
    assert row["miners"] == 5 and row["network"] == "full" and row["status"] == "ok" and row["workers"] == 1
    assert 0 < row["ml_seconds"] < row["wall_seconds"]
    assert 0.5 < row["ensemble_accuracy"] <= 1 and not math.isnan(row["non_ml_over_ml"])
    config = json.loads((tmp_path / "full-5" / "results.json").read_text())["config"]
    assert config["miners"] == 5 and config["network"]["kind"] == "full"  # the --set overrides, recorded
    assert (tmp_path / "bench.md").exists() and (tmp_path / "bench.png").exists()
