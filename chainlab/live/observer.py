"""Turns a node's Record effects into Prometheus metrics and counters for its Status answer."""

from __future__ import annotations

import time
from collections import Counter

from prometheus_client import Counter as CounterMetric
from prometheus_client import Gauge, Histogram

from chainlab.live import metrics
from chainlab.protocols.base import Observation
from chainlab.protocols.effects import RECORD_INTERNAL_ERROR, RECORD_REJECTED
from chainlab.scenarios.base import MetricFamily, ProtocolSpec

_Metric = CounterMetric | Gauge | Histogram
_families: dict[str, _Metric] = {}  # prometheus-client registers each name once per process


def _family(family: MetricFamily) -> _Metric:
    found = _families.get(family.name)
    if found is None:
        kind = {"counter": CounterMetric, "gauge": Gauge, "histogram": Histogram}[family.kind]
        found = _families[family.name] = kind(family.name, family.help, list(family.labels))
    return found


class MetricsObserver:
    """Counts what one node records: the generic events here, the protocol's through its spec's metric updates.

    Generic events: rejected (kind, reason), accepted (kind), tip (height: a new best-chain head),
    internal_error (job), job_done (job, seconds). Height, forks and tip are copied from status() (node_service).
    """

    def __init__(self, spec: ProtocolSpec) -> None:
        self.spec = spec
        self.rejections: Counter[str] = Counter()
        self.internal_errors = 0
        self._families = {f.name: _family(f) for f in spec.metric_families}
        self._last_tip: float | None = None

    def __call__(self, obs: Observation) -> None:
        """Observe one record."""
        data = obs.data
        if obs.event == RECORD_REJECTED:
            kind, reason = str(data.get("kind", "?")), str(data.get("reason", "?"))
            self.rejections[f"{kind}:{reason}"] += 1
            metrics.BLOCK_REJECTIONS.labels(kind, reason).inc()
        elif obs.event == "accepted":
            metrics.BLOCKS_ACCEPTED.labels(str(data.get("kind", "?"))).inc()
        elif obs.event == "tip":
            now = time.monotonic()
            if self._last_tip is not None:
                metrics.KEY_BLOCK_INTERVAL.observe(now - self._last_tip)
            self._last_tip = now
        elif obs.event == RECORD_INTERNAL_ERROR:
            self.internal_errors += 1
            metrics.INTERNAL_ERRORS.labels(str(data.get("job", "?"))).inc()
        elif obs.event == "job_done":
            seconds = data.get("seconds")
            if isinstance(seconds, float | int):
                metrics.JOB_SECONDS.labels(str(data.get("job", "?"))).observe(float(seconds))
        for update in self.spec.metric_updates(obs):
            metric = self._families[update.name]
            target = metric.labels(*update.labels) if update.labels else metric
            if isinstance(target, CounterMetric):
                target.inc(update.value)
            elif isinstance(target, Gauge):
                target.set(update.value)
            else:
                target.observe(update.value)
