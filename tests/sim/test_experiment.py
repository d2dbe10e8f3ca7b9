"""Simulated experiments end to end: determinism, results contents, sweeps and config errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chainlab.cli import main
from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.scenarios.results import without_measurements
from chainlab.sim.experiment import run
from chainlab.sim.report import figures
from chainlab.sim.runner import points, run_to_disk

SMALL: dict[str, Any] = {
    "name": "small",
    "seed": 3,
    "dataset": "digits",
    "model": {"family": "decision_tree"},
    "metric_min": 0.3,
    "tasks": 2,
    "miners": 4,
    "validators": 1,
    "partition": {"kappa": 0.1, "zeta": 0.2},
    "network": {"kind": "full", "delay_rounds": 2},
    "protocol": {"phase1_rounds": 30, "phase2_rounds": 10, "target": "2**250-1"},
    "work": {"train_rounds": 3},
}
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_same_seed_gives_identical_results_json() -> None:
    exp = Experiment.from_mapping(SMALL)
    first, second = run(exp), run(exp)
    assert without_measurements(first) == without_measurements(second)
    first_json, second_json = (json.dumps(without_measurements(r), sort_keys=True) for r in (first, second))
    assert first_json == second_json
    other = run(Experiment.from_mapping({**SMALL, "seed": 4}))
    assert figures(other)["heights"] != figures(first)["heights"]


def test_results_hold_what_the_paper_reports() -> None:
    raw = run(Experiment.from_mapping(SMALL))
    assert raw["schema"] == 2 and raw["protocol"] == "bagchain" and raw["driver"] == "sim"
    assert raw["truncated"] is False and raw["observer"] == "validator-0"
    results = figures(raw)
    assert len(results["heights"]) == 2
    assert results["tips_agree"]
    assert results["rejections"] == {}
    for height in results["heights"]:
        assert height["miniblocks_generated"] == 4
        assert 0 < height["miniblocks_used"] <= 4
        assert len(height["base_accuracies"]) == 4
        assert height["ensemble_accuracy"] > 0.5
    base = results["base_accuracy"]
    assert base["min"] <= base["mean"] <= base["max"]
    assert results["ensemble_accuracy"] > base["max"]  # bagging beats every base model here
    assert results["public_accuracy"] > 0
    assert results["ml_seconds"] <= results["wall_seconds"]
    assert results["key_block_interval_rounds"] > SMALL["protocol"]["phase1_rounds"]


def test_sweep_writes_one_results_json_per_point_and_a_summary(tmp_path: Path) -> None:
    sweep = {**SMALL, "tasks": 1, "sweep": {"path": "miners", "values": [2, 3]},
             "compare": {"path": "protocol.cfs", "values": [False, True], "labels": ["w/o", "on"]}}  # fmt: skip
    exp = Experiment.from_mapping(sweep)
    assert [label for label, _ in points(exp)] == ["miners=2,w/o", "miners=2,on", "miners=3,w/o", "miners=3,on"]
    run_to_disk(exp, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "miners=2,on", "miners=2,w_o", "miners=3,on", "miners=3,w_o"
    ]  # fmt: skip
    for label in ("miners=2,w_o", "miners=3,on"):
        assert json.loads((tmp_path / label / "results.json").read_text())["config"]["miners"] == int(label[7])
        assert (tmp_path / label / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 4
    assert "miners=3,on" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_sim_writes_results_and_plot(tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(json.dumps({**SMALL, "tasks": 1}))  # JSON is YAML
    assert main(["sim", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["seed"] == 3 and len(results["protocol_results"]["heights"]) == 1
    assert (tmp_path / "out" / "results.png").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "unknown config key"),
        ({"protocol": {"phase_one": 3}}, "unknown protocol parameter"),
        ({"network": {"kind": "full", "speed": 3}}, "speed"),
        ({"miners": 0}, "miners must be an integer >= 1"),
        ({"work": {"train_round": 3}}, "unknown work parameter"),
        ({"live": {"round_seconds": 0}}, "round_seconds"),
        ({"partition": {"kapa": 0.1}}, "unknown partition parameter"),
        ({"protocol": {"name": "nosuch"}}, "unknown protocol 'nosuch'"),
        ({"deviations": "none"}, "deviations must be a list"),
    ],
)
def test_bad_config_is_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Experiment.from_mapping({**SMALL, **change})


def test_a_run_past_max_rounds_is_marked_truncated() -> None:
    results = run(Experiment.from_mapping({**SMALL, "tasks": 1, "max_rounds": 20}))
    assert results["truncated"] is True
    assert figures(results)["heights"] == []


def test_cli_reports_config_errors(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("colour: blue\n")
    assert main(["sim", "--config", str(config), "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize("section", [{"network": {"kind": "full", "speed": 3}}, {"work": {"train_round": 3}}])
def test_chainlab_up_names_a_bad_section_before_starting_anything(
    tmp_path: Path, section: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(json.dumps({**SMALL, **section}))
    assert main(["up", "--config", str(config), "--out", str(tmp_path / "up")]) == 2
    assert "unknown" in capsys.readouterr().out
    assert not (tmp_path / "up").exists()  # nothing was started


def test_shipped_experiment_configs_parse() -> None:
    configs = sorted(EXPERIMENTS.glob("*.yaml"))
    assert {"table1_mnist_dt", "noniid_mnist_dt", "miners_sweep_mnist_dt", "delay_cfs_mnist_dt", "demo"} <= {
        c.stem for c in configs
    }
    for config in configs:
        assert points(load_experiment(config))


@pytest.mark.slow
def test_results_do_not_depend_on_the_number_of_ml_workers() -> None:
    exp = Experiment.from_mapping(SMALL)
    one, two = run(exp, workers=1), run(exp, workers=2)
    assert (one["workers"], two["workers"]) == (1, 2)
    one_json, two_json = (json.dumps(without_measurements(r), sort_keys=True) for r in (one, two))
    assert one_json == two_json
    assert two["ml_seconds"] > 0 and two["peak_rss_mb"] > 0 and two["peak_rss_worker_mb"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("demo", ["dfl_demo", "bflc_demo", "learningchain_demo", "datamarket_demo"])
def test_a_demo_gives_the_same_results_in_two_processes(demo: str, tmp_path: Path) -> None:
    # Separate processes, because what can differ between them (hash seeds, the order a library's hash map hands
    # tensors back in) is the same within one; BFLC's attackers once drew different noise run to run that way.
    outputs = []
    for run_dir in ("one", "two"):
        out = tmp_path / run_dir
        command = [sys.executable, "-m", "chainlab.cli", "sim", "--config", str(EXPERIMENTS / f"{demo}.yaml")]
        subprocess.run([*command, "--out", str(out), "--workers", "1"], check=True, capture_output=True, timeout=300)
        outputs.append(json.dumps(without_measurements(json.loads((out / "results.json").read_text())), sort_keys=True))
    assert outputs[0] == outputs[1]
