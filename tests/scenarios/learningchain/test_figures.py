"""The LearningChain report: canned results.json files become cells (mean, sd over seeds), verdicts and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chainlab.scenarios.learningchain import figures


def canned(
    root: Path,
    experiment: str,
    seed: int,
    final_error: float,
    *,
    dataset: str = "synthetic_ball",
    nodes: int = 30,
    rounds: int = 200,
    selected_attackers: int = 0,
    **protocol: object,
) -> None:
    """One run's results.json with what the report reads: config, seed, initial and per-height accuracies."""
    heights = [
        {"height": h, "accuracy": 1.0 - (0.5 + (final_error - 0.5) * h / rounds) if h % 50 == 0 else None}
        for h in range(1, rounds + 1)
    ]
    data: dict[str, Any] = {
        "protocol": "learningchain",
        "seed": seed,
        "config": {
            "name": experiment,
            "dataset": dataset,
            "protocol": {"name": "learningchain", "nodes": nodes, "rounds": rounds, **protocol},
        },
        "protocol_results": {
            "initial_accuracy": 0.5,
            "heights": heights,
            "selected_messages": 15 * rounds,
            "selected_attackers": selected_attackers,
        },
    }
    label = ",".join(f"{k}={v}" for k, v in sorted(protocol.items())) + f",nodes={nodes},seed={seed}"
    folder = root / experiment / label
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(data))


def synthetic_world(root: Path, twenty_error: float, eps_01_error: float = 0.03) -> None:
    """A baseline, the Fig. 5 synthetic grid and a Fig. 7 pair, three seeds each (errors spread +-0.2 pp by seed)."""
    for seed, spread in ((1, -0.002), (2, 0.0), (3, 0.002)):
        canned(root, "learningchain_baseline_synthetic", seed, 0.01 + spread, nodes=1, epsilon=None)
        for epsilon, clean in ((0.1, eps_01_error), (0.3, 0.02), (None, 0.015)):
            for byzantine, extra in ((0, 0.0), (5, 0.005), (12, 0.01), (20, twenty_error)):
                error = clean + extra if byzantine < 20 else twenty_error
                canned(
                    root,
                    "learningchain_fig5_synthetic",
                    seed,
                    error + spread,
                    epsilon=epsilon,
                    byzantine_holders=byzantine,
                    selected_attackers=5 * 200 if byzantine == 20 else 0,
                )
        for rule, error in (("l_nearest", 0.6), ("multi_krum", 0.7)):
            canned(
                root, "learningchain_fig7", seed, error, dataset="mnist", nodes=20, epsilon=None,
                byzantine_holders=14, aggregator=rule,
            )  # fmt: skip


def verdict(found: list[figures.Verdict], result: str, case: str) -> figures.Verdict:
    (match,) = [v for v in found if v.result == result and v.case == case]
    return match


def test_cells_are_mean_and_sd_over_seeds(tmp_path: Path) -> None:
    synthetic_world(tmp_path, twenty_error=0.45)
    cells = figures.cells_of(figures.load_runs(tmp_path))
    (base,) = [c for c in cells.values() if c.key.nodes == 1]
    assert base.seeds == [1, 2, 3]
    assert base.final == pytest.approx((0.01, 0.002))
    heights, means, _ = base.curve()
    assert heights == [0, 50, 100, 150, 200] and means[0] == pytest.approx(0.5) and means[-1] == pytest.approx(0.01)
    assert base.error_at(120) == pytest.approx(base.error_at(100))
    (twenty,) = [c for c in cells.values() if c.key.byzantine == 20 and c.key.epsilon is None]
    assert twenty.attacker_share == pytest.approx(5 / 15)


def test_verdicts_follow_the_acceptance_table(tmp_path: Path) -> None:
    synthetic_world(tmp_path, twenty_error=0.45)
    found = figures.write(tmp_path, tmp_path / "report")
    assert verdict(found, "L1 baseline", "synthetic").met is True
    assert verdict(found, "L1 baseline", "MNIST").met is None  # not run
    assert verdict(found, "L1 privacy", "synthetic").met is True
    assert verdict(found, "L1 Byzantine", "synthetic, no DP").met is True
    assert verdict(found, "L3", "K = 20, T = 200: 14 Byzantine (70 %)").met is True
    document = json.loads((tmp_path / "report" / "results.json").read_text())
    assert len(document["cells"]) == 1 + 12 + 2
    markdown = (tmp_path / "report" / "results.md").read_text()
    assert "## L1 Byzantine" in markdown and "| synthetic | 1.00 ± 0.20 % at 200 |" in markdown
    assert (tmp_path / "report" / "fig5.png").stat().st_size > 0
    assert (tmp_path / "report" / "fig7.png").stat().st_size > 0
    assert not (tmp_path / "report" / "fig6.png").exists()  # no Fig. 6 runs


def test_a_result_that_does_not_reproduce_is_marked_not_met(tmp_path: Path) -> None:
    # 20 of 30 converging (the brief's observation) and eps = 0.1 better than eps = 0.3.
    synthetic_world(tmp_path, twenty_error=0.005, eps_01_error=0.01)
    found = figures.write(tmp_path, tmp_path)
    assert verdict(found, "L1 Byzantine", "synthetic, no DP").met is False
    assert verdict(found, "L1 privacy", "synthetic").met is False
    assert "**no**" in (tmp_path / "results.md").read_text()


def fig7_pair(root: Path, byzantine: int, near: float, krum: float) -> None:
    for seed in (1, 2, 3):
        for rule, error in (("l_nearest", near), ("multi_krum", krum)):
            canned(
                root, "learningchain_fig7", seed, error, dataset="mnist", nodes=20, epsilon=None,
                byzantine_holders=byzantine, aggregator=rule,
            )  # fmt: skip


@pytest.mark.parametrize(("clean", "met"), [(None, None), (0.12, True), (0.05, False)])
def test_l3_compares_with_the_clean_run_of_the_same_size(tmp_path: Path, clean: float | None, met: bool | None) -> None:
    fig7_pair(tmp_path, 8, near=0.125, krum=0.124)
    for seed in (1, 2, 3):
        if clean is not None:
            canned(tmp_path, "learningchain_fig5_mnist", seed, clean, dataset="mnist", nodes=20, epsilon=None)
        canned(tmp_path, "learningchain_fig5_mnist", seed, 0.9, dataset="mnist", nodes=50, epsilon=None)  # other K
    found = figures.write(tmp_path, tmp_path / "report")
    assert verdict(found, "L3", "K = 20, T = 200: 8 Byzantine (40 %)").met is met
