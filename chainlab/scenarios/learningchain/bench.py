"""Aggregation time of l-nearest against multi-Krum (seed 003 Fig. 7's cost claim, O(Kd) against O(K^2 d)).

python -m chainlab.scenarios.learningchain.bench [--out runs/learningchain/aggregation.json] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from chainlab.learning import dp_gradients, robust_aggregation


def inputs(
    holders: int, shape: dp_gradients.LinearShape, byzantine: int, seed: int
) -> tuple[bytes, tuple[bytes, ...], tuple[float, ...]]:
    """w_t and K messages: honest gradients near one direction, Byzantine ones N(0, 200^2)."""
    rng = np.random.default_rng(seed)
    weights = dp_gradients.encode_weights(rng.standard_normal(shape.dimension) * 0.01, shape)
    base = rng.standard_normal(shape.dimension)
    raws = [base * 10 + rng.standard_normal(shape.dimension) for _ in range(holders - byzantine)]
    raws += [rng.standard_normal(shape.dimension) * 200 for _ in range(byzantine)]
    norms = tuple(float(np.linalg.norm(r)) for r in raws)
    vectors = tuple((r / n).astype("<f8").tobytes() for r, n in zip(raws, norms, strict=True))
    return weights, vectors, norms


def measure(holders: int = 100, classes: int = 10, features: int = 784, repeats: int = 7) -> dict[str, object]:
    """Median seconds of one aggregation (decoding included) per rule, at K = holders, d = classes * (features + 1)."""
    shape = dp_gradients.LinearShape(classes, features)
    byzantine = holders * 4 // 10
    weights, vectors, norms = inputs(holders, shape, byzantine, seed=0)
    results: dict[str, object] = {"holders": holders, "dimension": shape.dimension, "byzantine": byzantine}
    for rule in robust_aggregation.RULES:
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            robust_aggregation.aggregate(
                weights, shape, vectors, norms, rule=rule, select=holders // 2, byzantine=byzantine, lr=0.01
            )
            seconds.append(time.perf_counter() - start)
        results[rule] = {"median_seconds": statistics.median(seconds), "repeats": repeats, "seconds": seconds}
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/learningchain/aggregation.json"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    results = measure(repeats=max(5, args.repeats))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for rule in robust_aggregation.RULES:
        entry = results[rule]
        assert isinstance(entry, dict)
        print(f"{rule}: {entry['median_seconds'] * 1000:.1f} ms (median of {entry['repeats']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
