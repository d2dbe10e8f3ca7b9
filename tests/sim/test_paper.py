"""`make paper`: every shipped experiment states its deviations from the paper, and the report prints them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.sim import paper
from chainlab.sim.runner import points
from tests.sim.test_report import fake_results

EXPERIMENTS = Path("experiments")
SHIPPED = sorted(EXPERIMENTS.glob("*.yaml"))


def test_experiments_are_found() -> None:
    assert {c.stem for c in SHIPPED} >= set(paper.ORDER)


@pytest.mark.parametrize("config", SHIPPED, ids=lambda c: c.stem)
def test_every_shipped_experiment_states_its_deviations(config: Path) -> None:
    stated = paper.deviations(load_experiment(config).raw)
    assert stated
    assert all(len(item) > 20 for item in stated)


def test_report_prints_each_experiments_deviations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run_to_disk(
        exp: Experiment, out: Path, progress: Any = None, jobs: int = 1
    ) -> list[tuple[str, dict[str, Any]]]:
        return [(label, fake_results()) for label, _ in points(exp)]

    monkeypatch.setattr(paper, "run_to_disk", fake_run_to_disk)
    report = paper.write_paper(EXPERIMENTS, tmp_path, Console(file=io.StringIO())).read_text()

    sections = report.split("\n## ")[1:]
    assert [s.split("\n", 1)[0] for s in sections] == list(paper.ORDER)
    for name, section in zip(paper.ORDER, sections, strict=True):
        stated = paper.deviations(load_experiment(EXPERIMENTS / f"{name}.yaml").raw)
        assert "Deviations from the paper's setting:" in section
        for item in stated:
            assert f"- {item}\n" in section
        # Printed once, as prose, not again inside the config dump.
        assert '"deviations"' not in section
        assert section.count("Paper: ") == 1 and '"paper"' not in section


def test_only_runs_the_named_experiments_and_refuses_unknown_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paper, "run_to_disk", lambda exp, out, progress=None, jobs=1: [("", fake_results())])
    only = (paper.ORDER[1],)
    report = paper.write_paper(EXPERIMENTS, tmp_path, Console(file=io.StringIO()), only).read_text()
    assert [s.split("\n", 1)[0] for s in report.split("\n## ")[1:]] == list(only)
    with pytest.raises(ValueError, match="not a paper experiment"):
        paper.write_paper(EXPERIMENTS, tmp_path, Console(file=io.StringIO()), ("nope",))


def test_deviations_are_a_list_of_strings() -> None:
    assert paper.deviations({}) == []
    assert paper.deviations({"deviations": ["a  multi-line\n  reason"]}) == ["a multi-line reason"]
    for bad in ("a string", [""], [3], {"a": "b"}):
        with pytest.raises(ValueError, match="deviations"):
            paper.deviations({"deviations": bad})


def test_a_config_without_deviations_says_so() -> None:
    lines = paper._section("table1_mnist_dt", {"name": "x", "paper": "Table I"}, [("", fake_results())])
    assert "Deviations from the paper's setting: none stated." in lines


def test_resume_reads_back_finished_runs_and_reruns_changed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = paper.ORDER[0]
    exp = load_experiment(EXPERIMENTS / f"{name}.yaml")
    ran: list[str] = []

    def fake_run_to_disk(exp: Experiment, out: Path, progress: Any = None, jobs: int = 1) -> Any:
        ran.append(exp.name)
        results = {**fake_results(), "config": dict(exp.raw)}
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results))
        return [("", results)]

    monkeypatch.setattr(paper, "run_to_disk", fake_run_to_disk)
    console = Console(file=io.StringIO())
    paper.write_paper(EXPERIMENTS, tmp_path, console, (name,), resume=True)
    paper.write_paper(EXPERIMENTS, tmp_path, console, (name,), resume=True)
    assert ran == [exp.name]  # the second report read the first run back
    described = json.loads((tmp_path / name / "results.json").read_text())
    described["config"]["deviations"] = ["edited prose does not call for a new run"]
    (tmp_path / name / "results.json").write_text(json.dumps(described))
    paper.write_paper(EXPERIMENTS, tmp_path, console, (name,), resume=True)
    assert ran == [exp.name]
    stale = json.loads((tmp_path / name / "results.json").read_text())
    stale["config"]["seed"] = -1
    (tmp_path / name / "results.json").write_text(json.dumps(stale))
    paper.write_paper(EXPERIMENTS, tmp_path, console, (name,), resume=True)
    assert ran == [exp.name, exp.name]  # results from another config are run again
