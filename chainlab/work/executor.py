"""Carries out a Compute effect's ML operation with the learning worker; both drivers use this."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, assert_never

from chainlab.learning.codec import ModelCodecError
from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import ModelSpec as LearningSpec
from chainlab.learning.worker import Worker
from chainlab.protocols.effects import (
    PRIVATE,
    Aggregate,
    AggregateGradients,
    Aggregation,
    EvaluateEnsemble,
    EvaluateModel,
    EvaluatePerceptron,
    EvaluationFailed,
    Gradient,
    InitModel,
    Perturb,
    PrivateGradient,
    ReadSample,
    ReadSamples,
    TrainModel,
    TrainSteps,
    WorkOp,
)
from chainlab.protocols.spec import ModelSpec

if TYPE_CHECKING:  # torch is imported on first use (see Worker.federated)
    from chainlab.learning.dp_gradients import LinearShape
    from chainlab.learning.federated import NetSpec


class MissingData(LookupError):
    """An operation names a dataset this node does not hold: the driver's problem, never a peer's."""


@functools.lru_cache(maxsize=64)
def learning_spec(spec: ModelSpec) -> LearningSpec:
    """The learning layer's view of Train(.; f); kept per spec, since every evaluation job carries its task's spec
    as JSON (a thousand nodes evaluating the same models would otherwise parse it a thousand times)."""
    return LearningSpec.from_mapping(spec.family, spec.params)


def training_data(op: TrainModel, datasets: Mapping[bytes, Dataset], private: Dataset | None) -> Dataset:
    """D_Ti = D_T U D_Mi (Algorithm 1.1, line 4): the named datasets, then the private data if asked."""
    parts = [_held(datasets, c) for c in op.datasets]
    if op.with_private and private is not None:
        parts.append(private)
    if not parts:
        raise MissingData("a training operation named no data")
    return parts[0] if len(parts) == 1 else Dataset.concat(parts)


def net_spec(spec: ModelSpec) -> NetSpec:
    """The learning layer's view of a federated model spec."""
    from chainlab.learning.federated import NetSpec

    return NetSpec.of(spec.family, spec.params)


def execute(
    worker: Worker,
    op: WorkOp,
    datasets: Mapping[bytes, Dataset],
    train_data: Dataset | None = None,
    private: Dataset | None = None,
) -> bytes | float | EvaluationFailed | Gradient | Aggregation:
    """Run op. Models that fail to decode or run are the peer's fault (EvaluationFailed); anything else raises.

    train_data, if given, is the already assembled training set (drivers cache it per node); private is the
    node's own data D_Mi, which the weight-space operations name as PRIVATE.
    """
    match op:
        case InitModel() | TrainSteps() | EvaluateModel() | Aggregate() | Perturb():
            start = time.perf_counter()
            try:
                return _weights_op(worker, op, datasets, private)
            except ModelCodecError as exc:
                return EvaluationFailed(str(exc))
            finally:
                worker.ml_seconds += time.perf_counter() - start
        case TrainModel():
            data = train_data if train_data is not None else training_data(op, datasets, None)
            return worker.train(learning_spec(op.spec), data, op.seed)
        case PrivateGradient() | AggregateGradients():
            start = time.perf_counter()
            try:
                return _gradient_op(op, datasets, private)
            except ModelCodecError as exc:
                return EvaluationFailed(str(exc))
            finally:
                worker.ml_seconds += time.perf_counter() - start
        case ReadSample() | ReadSamples() | EvaluatePerceptron():
            return _market_op(op, datasets, private)
        case EvaluateEnsemble():
            dataset = _held(datasets, op.dataset)
            try:
                return worker.ensemble_metric(op.models, learning_spec(op.spec), dataset, op.aggregate, op.metric)
            except ModelCodecError as exc:
                return EvaluationFailed(str(exc))
        case _:
            assert_never(op)


def _market_op(
    op: ReadSample | ReadSamples | EvaluatePerceptron, datasets: Mapping[bytes, Dataset], private: Dataset | None
) -> bytes | float | EvaluationFailed:
    """The data marketplace's operations on binary datasets (chainlab.learning.market_data)."""
    from chainlab.learning import market_data

    data = _held_or_private(datasets, op.dataset, private)
    if isinstance(op, ReadSample):
        return market_data.sample_bytes(data, op.index)
    if isinstance(op, ReadSamples):
        return market_data.sample_file(data, op.start, op.count)
    try:
        return market_data.perceptron_accuracy(op.weights, data)
    except ValueError as exc:
        return EvaluationFailed(str(exc))


def _weights_op(
    worker: Worker,
    op: InitModel | TrainSteps | EvaluateModel | Aggregate | Perturb,
    datasets: Mapping[bytes, Dataset],
    private: Dataset | None,
) -> bytes | float:
    """A weight-space operation; ModelCodecError when a peer's weights do not decode."""
    fed, spec = worker.federated, net_spec(op.spec)
    match op:
        case InitModel():
            return fed.init(spec, op.seed)
        case TrainSteps():
            data = _held_or_private(datasets, op.dataset, private)
            return fed.train_steps(spec, op.weights, data, op.steps, op.batch_size, op.seed, op.iteration)
        case EvaluateModel():
            data = _held_or_private(datasets, op.dataset, private)
            return fed.evaluate(spec, op.weights, data, op.samples, op.seed)
        case Aggregate():
            return fed.aggregate(spec, op.models, op.coefficients, op.rule)
        case Perturb():
            return fed.perturb(spec, op.weights, op.kind, op.scale, op.seed)
        case _:
            assert_never(op)


def _gradient_op(
    op: PrivateGradient | AggregateGradients, datasets: Mapping[bytes, Dataset], private: Dataset | None
) -> Gradient | Aggregation:
    """LearningChain's numpy operations on softmax regression; ModelCodecError when a peer's bytes do not decode."""
    from chainlab.learning import dp_gradients, robust_aggregation

    shape = _linear_shape(op.spec)
    match op:
        case PrivateGradient():
            data = _held_or_private(datasets, op.dataset, private)
            vector, norm = dp_gradients.private_gradient(
                op.weights,
                shape,
                data.X,
                data.y,
                batch=op.batch,
                clip=op.clip,
                bound=op.bound,
                epsilon=op.epsilon,
                seed=op.seed,
                byzantine=op.byzantine,
                sigma=op.sigma,
            )
            return Gradient(vector, norm)
        case AggregateGradients():
            weights, selected = robust_aggregation.aggregate(
                op.weights,
                shape,
                op.vectors,
                op.norms,
                rule=op.rule,
                select=op.select,
                byzantine=op.byzantine,
                lr=op.lr,
                l2=op.l2,
            )
            return Aggregation(weights, selected)
        case _:
            assert_never(op)


def _linear_shape(spec: ModelSpec) -> LinearShape:
    """Softmax regression's C x F from a model spec (the only family LearningChain's numpy operations take)."""
    from chainlab.learning.dp_gradients import FAMILY, LinearShape

    if spec.family != FAMILY:
        raise ValueError(f"LearningChain's gradients need the {FAMILY} family, got {spec.family!r}")
    shape = spec.params.get("input")
    classes = spec.params.get("classes")
    if not isinstance(shape, list | tuple) or not isinstance(classes, int):
        raise ValueError("a softmax spec names its input shape and class count")
    return LinearShape(classes, math.prod(int(s) for s in shape))


def _held_or_private(datasets: Mapping[bytes, Dataset], ref: bytes, private: Dataset | None) -> Dataset:
    if ref != PRIVATE:
        return _held(datasets, ref)
    if private is None:
        raise MissingData("this node has no private data")
    return private


def _held(datasets: Mapping[bytes, Dataset], commitment: bytes) -> Dataset:
    dataset = datasets.get(commitment)
    if dataset is None:
        raise MissingData(f"dataset {commitment.hex()[:16]} is not held by this node")
    return dataset
