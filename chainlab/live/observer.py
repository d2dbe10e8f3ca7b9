"""Turns a node's Record effects into Prometheus metrics and counters for its Status answer."""

from __future__ import annotations

import time
from collections import Counter

from chainlab.live import metrics
from chainlab.scenario import Observation


class MetricsObserver:
    """Counts what one node records: rejections, accepted blocks, its tip, forks, jobs and task outcomes."""

    def __init__(self) -> None:
        self.rejections: Counter[str] = Counter()
        self._key_blocks_at: Counter[int] = Counter()
        self._last_tip: float | None = None

    def __call__(self, obs: Observation) -> None:
        """Observe one record."""
        data = obs.data
        if obs.event == "rejected":
            kind, reason = str(data.get("kind", "?")), str(data.get("reason", "?"))
            self.rejections[f"{kind}:{reason}"] += 1
            metrics.BLOCK_REJECTIONS.labels(kind, reason).inc()
        elif obs.event == "accepted":
            metrics.BLOCKS_ACCEPTED.labels(str(data["kind"])).inc()
            if data["kind"] == "KeyBlock":
                height = int(data["height"])
                self._key_blocks_at[height] += 1
                if self._key_blocks_at[height] > 1:
                    metrics.FORKS.inc()
        elif obs.event == "tip":
            now = time.monotonic()
            metrics.CHAIN_HEIGHT.set(int(data["height"]))
            if self._last_tip is not None:
                metrics.KEY_BLOCK_INTERVAL.observe(now - self._last_tip)
            self._last_tip = now
            task = str(data.get("task", ""))
            metrics.ENSEMBLE_ACCURACY.labels(task).set(float(data["metric_best"]))
            wasted = int(data.get("miniblocks_seen", 0)) - int(data.get("miniblocks_used", 0))
            metrics.MINIBLOCK_WASTAGE.labels(task).set(max(wasted, 0))
        elif obs.event == "miniblock_created":
            metrics.MINIBLOCKS.labels(str(data.get("task", ""))).inc()
        elif obs.event == "job_done" and data["job"] in ("Train", "Evaluate"):
            histogram = metrics.TRAINING_SECONDS if data["job"] == "Train" else metrics.EVALUATION_SECONDS
            histogram.observe(float(data["seconds"]))
