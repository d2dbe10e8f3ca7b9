"""Seed 004's Figures 9, 11 and 12 from the marketplace runs' results.json (protocols.md 4.5): the dataset's growth
(M1), the good and the bad agent's balances (M2) and the on-chain model's accuracy (M3), one line per seed.

    python -m chainlab.scenarios.datamarket.figures [--runs runs/datamarket] [--out runs/datamarket]

Each run is a directory of seed=<n>/results.json (`chainlab sim --out`): drt (8 % initial, DRT's setting), noatt
(its control without the attacker) and p80 (80 % initial, seed 004's); a missing one is left out.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after the backend is chosen

RUNS = {
    "drt": "8 % initial, 1 good + 1 bad",
    "noatt": "8 % initial, no attacker",
    "p80": "80 % initial, 1 good + 1 bad",
}
COLOURS = {"drt": "tab:red", "noatt": "tab:blue", "p80": "tab:green"}


def load(runs: Path) -> dict[str, list[dict[str, object]]]:
    """Each run's protocol_results, one per seed, in seed order."""
    out: dict[str, list[dict[str, object]]] = {}
    for name in RUNS:
        files = sorted((runs / name).glob("seed=*/results.json"))
        if files:
            out[name] = [json.loads(f.read_text())["protocol_results"] for f in files]
    return out


def _series(result: dict[str, object], key: str) -> tuple[list[float], list[float]]:
    days = result["days"]
    assert isinstance(days, list)
    points = [(float(d["day"]), float(d[key])) for d in days if d.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot(results: dict[str, list[dict[str, object]]], out: Path) -> list[Path]:
    """Write fig9_dataset.png, fig11_balances.png and fig12_accuracy.png under out; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    figure, (whole, first) = plt.subplots(1, 2, figsize=(11, 4))
    for name, seeds in results.items():
        for i, result in enumerate(seeds):
            days, size = _series(result, "dataset_size")
            label = RUNS[name] if i == 0 else None
            whole.plot(days, size, color=COLOURS[name], alpha=0.7, label=label)
            early = [(d, s) for d, s in zip(days, size, strict=True) if d <= 6]
            first.plot([d for d, _ in early], [s for _, s in early], color=COLOURS[name], alpha=0.7, marker=".")
    whole.set(xlabel="simulated day", ylabel="accepted additions", title="Fig. 9: dataset growth")
    first.set(xlabel="simulated day", ylabel="accepted additions", title="the first 6 days (M1)")
    whole.legend()
    figure.tight_layout()
    written.append(out / "fig9_dataset.png")
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7, 4))
    for name, seeds in results.items():
        for i, result in enumerate(seeds):
            for key, style in (("balance_honest", "-"), ("balance_malicious", "--")):
                days, balance = _series(result, key)
                kind = "good" if key == "balance_honest" else "bad"
                label = f"{kind} agent, {RUNS[name]}" if i == 0 else None
                axes.plot(days, balance, style, color=COLOURS[name], alpha=0.7, label=label)
    axes.axhline(10_000, color="grey", linewidth=0.5)
    axes.set(xlabel="simulated day", ylabel="balance (units)", title="Fig. 11: the agents' balances (M2)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    written.append(out / "fig11_balances.png")
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7, 4))
    for name, seeds in results.items():
        for i, result in enumerate(seeds):
            days, accuracy = _series(result, "accuracy")
            label = RUNS[name] if i == 0 else None
            axes.plot(days, [100 * a for a in accuracy], color=COLOURS[name], alpha=0.7, label=label)
    axes.set(xlabel="simulated day", ylabel="published accuracy (%)", title="Fig. 12: the on-chain model (M3)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    written.append(out / "fig12_accuracy.png")
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Plot the runs found under --runs into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=Path, default=Path("runs/datamarket"))
    parser.add_argument("--out", type=Path, default=Path("runs/datamarket"))
    args = parser.parse_args(argv)
    for path in plot(load(args.runs), args.out):
        print(path)


if __name__ == "__main__":
    main()
