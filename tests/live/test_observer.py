from __future__ import annotations

from prometheus_client import REGISTRY

from chainlab.live.observer import MetricsObserver
from chainlab.scenario import Observation


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_records_become_metrics() -> None:
    observer = MetricsObserver()
    forks = _value("chainlab_forks_total")
    trained = _value("chainlab_training_seconds_count")
    accepted = _value("chainlab_blocks_accepted_total", {"kind": "KeyBlock"})
    records: list[tuple[str, dict[str, object]]] = [
        ("accepted", {"kind": "KeyBlock", "height": 1}),
        ("accepted", {"kind": "KeyBlock", "height": 1}),  # a second Key Block at height 1: a fork
        ("tip", {"height": 1, "task": "t9", "metric_best": 0.8125, "miniblocks_seen": 5, "miniblocks_used": 3}),
        ("job_done", {"job": "Train", "seconds": 0.5}),
        ("job_done", {"job": "Mine", "seconds": 9.0}),
        ("rejected", {"kind": "MiniBlock", "reason": "bad_signature"}),
    ]
    for event, data in records:
        observer(Observation(0, 0, event, data))
    assert _value("chainlab_blocks_accepted_total", {"kind": "KeyBlock"}) == accepted + 2
    assert _value("chainlab_forks_total") == forks + 1
    assert _value("chainlab_chain_height") == 1
    assert _value("chainlab_ensemble_accuracy", {"task": "t9"}) == 0.8125
    assert _value("chainlab_miniblock_wastage", {"task": "t9"}) == 2
    assert _value("chainlab_training_seconds_count") == trained + 1
    assert observer.rejections == {"MiniBlock:bad_signature": 1}
