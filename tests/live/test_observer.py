"""Records become Prometheus metrics: the generic ones here, BagChain's through its spec."""

from __future__ import annotations

from prometheus_client import REGISTRY

from chainlab.live.observer import MetricsObserver
from chainlab.protocols.base import Observation, RecordValue
from chainlab.scenarios import registry


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_records_become_metrics() -> None:
    observer = MetricsObserver(registry.get("bagchain"))
    trained = _value("chainlab_job_seconds_count", {"job": "TrainModel"})
    accepted = _value("chainlab_blocks_accepted_total", {"kind": "KeyBlock"})
    internal = _value("chainlab_internal_errors_total", {"job": "EvaluateEnsemble"})
    mined = _value("chainlab_bagchain_miniblocks_total", {"task": "t9"})
    records: list[tuple[str, dict[str, RecordValue]]] = [
        ("accepted", {"kind": "KeyBlock", "height": 1}),
        ("accepted", {"kind": "KeyBlock", "height": 1}),
        ("tip", {"height": 1, "task": "t9", "metric_best": 0.8125, "miniblocks_seen": 5, "miniblocks_used": 3}),
        ("miniblock_created", {"height": 2, "task": "t9"}),
        ("job_done", {"job": "TrainModel", "seconds": 0.5}),
        ("job_done", {"job": "Mine", "seconds": 9.0}),
        ("internal_error", {"job": "EvaluateEnsemble", "error": "KeyError()", "attempt": 1}),
        ("rejected", {"kind": "MiniBlock", "reason": "bad_signature"}),
    ]
    for event, data in records:
        observer(Observation(0, 0, event, data))
    assert _value("chainlab_blocks_accepted_total", {"kind": "KeyBlock"}) == accepted + 2
    assert _value("chainlab_bagchain_ensemble_accuracy", {"task": "t9"}) == 0.8125
    assert _value("chainlab_bagchain_miniblock_wastage", {"task": "t9"}) == 2
    assert _value("chainlab_bagchain_miniblocks_total", {"task": "t9"}) == mined + 1
    assert _value("chainlab_job_seconds_count", {"job": "TrainModel"}) == trained + 1
    assert _value("chainlab_internal_errors_total", {"job": "EvaluateEnsemble"}) == internal + 1
    assert observer.rejections == {"MiniBlock:bad_signature": 1}


def test_a_requester_s_task_events_become_bagchain_metrics() -> None:
    observer = MetricsObserver(registry.get("bagchain"))
    completed = _value("chainlab_bagchain_tasks_completed_total")
    observer(Observation(0, 0, "task_done", {"task": "t7", "height": 3, "metric_best": 0.9}))
    scored: dict[str, RecordValue] = {
        "task": "t7",
        "miniblocks": 5,
        "accuracy_ensemble": 0.9,
        "accuracy_base_min": 0.6,
        "accuracy_public": 0.7,
    }
    observer(Observation(0, 0, "task_scored", scored))
    assert _value("chainlab_bagchain_tasks_completed_total") == completed + 1
    for measure, value in (("ensemble", 0.9), ("base_min", 0.6), ("public", 0.7)):
        assert _value("chainlab_bagchain_task_accuracy", {"task": "t7", "measure": measure}) == value
    assert _value("chainlab_bagchain_task_miniblocks", {"task": "t7"}) == 5
