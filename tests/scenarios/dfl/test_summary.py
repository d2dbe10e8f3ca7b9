"""DFL's summary: the comparison's history measures each point's own weights on the report set D_R."""

from __future__ import annotations

import numpy as np

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.protocols.dfl.messages import AccuracyPoint, NodeReport
from chainlab.scenarios.dfl.summary import DflView, summarise
from chainlab.scenarios.federated import model_spec
from chainlab.work.executor import net_spec


def _dataset(seed: int, n: int = 60) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.random((n, 4), dtype=np.float32)
    return Dataset(X, (X[:, 0] > 0.5).astype(np.int64), 2, (4,), f"toy-{seed}")


def _report(node: int, points: list[tuple[int, bytes]]) -> NodeReport:
    history = tuple(AccuracyPoint(tick, 0.123, weights) for tick, weights in points)  # a local figure D_R must not show
    return NodeReport(bytes([node]) * 32, False, points[-1][1], (), (), history, 0, 0, 0, 0, b"tip")


def test_the_comparison_history_is_the_snapshots_measured_on_the_report_set() -> None:
    test, report_set = _dataset(1), _dataset(2)
    spec = model_spec({"family": "softmax", "lr": 0.1}, test)
    worker = Worker()
    a, b, c = (worker.federated.init(net_spec(spec), seed) for seed in (1, 2, 3))
    view = DflView({"miner-0": _report(0, [(10, a), (20, b)]), "miner-1": _report(1, [(10, c), (20, c), (30, a)])})
    on_d_r = {w: worker.federated.evaluate(net_spec(spec), w, report_set) for w in (a, b, c)}

    results = summarise(view, spec, test, worker, report_set=report_set)

    history = results["comparison"]["history"]  # type: ignore[index]
    assert history["rounds"] == [10, 20]  # tick 30 is only miner-1's
    assert history["accuracy"] == [(on_d_r[a] + on_d_r[c]) / 2, (on_d_r[b] + on_d_r[c]) / 2]
    assert results["history"] == {"ticks": [10.0, 20.0], "mean": [0.123, 0.123]}  # the local one is unchanged
