"""Carrying out a node's ML effects (Train, Evaluate) with the learning worker; both drivers use this."""

from __future__ import annotations

from collections.abc import Mapping

from chainlab.learning.codec import ModelCodecError
from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import ModelSpec as LearningSpec
from chainlab.learning.worker import Worker
from chainlab.protocols.bagchain.fullnode import EvaluationFailed
from chainlab.protocols.effects import Evaluate, Train
from chainlab.protocols.spec import ModelSpec


def learning_spec(spec: ModelSpec) -> LearningSpec:
    """The learning layer's view of Train(.; f)."""
    return LearningSpec.from_mapping(spec.family, spec.params)


def local_data(public: Dataset, private: Dataset | None) -> Dataset:
    """D_Ti = D_T U D_Mi (Algorithm 1.1, line 4)."""
    return public if private is None else Dataset.concat([public, private])


def train(worker: Worker, effect: Train, data: Dataset) -> bytes:
    """Train(Resample(D_Ti); f): the encoded base model."""
    return worker.train(learning_spec(effect.spec), data, effect.seed)


def evaluate(worker: Worker, effect: Evaluate, datasets: Mapping[bytes, Dataset]) -> float | EvaluationFailed:
    """Metric(Aggregate(...)) on the named dataset; models that fail to decode or run are reported, not raised."""
    try:
        return worker.ensemble_metric(
            effect.models, learning_spec(effect.spec), datasets[effect.dataset], effect.aggregate, effect.metric
        )
    except (ModelCodecError, ValueError) as exc:
        return EvaluationFailed(str(exc))
