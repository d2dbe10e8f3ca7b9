"""BagChain's run-time task intake: a SubmitTask's terms with the network's defaults, its refusals, and the split of
the requester's dataset into D_T, D_V and D_E. Transport-free: the gRPC adapter decodes, calls these, encodes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chainlab.learning.datasets import Dataset, split_validation_test
from chainlab.protocols.bagchain.messages import Task
from chainlab.protocols.bagchain.reasons import Reason, Rejected
from chainlab.protocols.errors import Refusal, invalid, not_ready
from chainlab.protocols.spec import ModelSpec

MIN_ROWS = 30  # fewer samples leave D_V or D_E too small to rank ensembles on
TRAIN_SHARE = 0.2  # of a shipped dataset's training part: D_T (the miners add their private data)
SPLIT = (0.4, 0.3, 0.3)  # D_T, D_V, D_E of one dataset given by CID


@dataclass(frozen=True)
class TaskTerms:
    """What a task asks of the network: Train, Aggregate, Metric, Metric_min and the fee."""

    train: ModelSpec
    aggregate: str
    metric: str
    metric_min: float
    fee: int


def terms_of(
    planned: Task, family: str, params_json: str, aggregate: str, metric: str, metric_min: float, fee: int
) -> TaskTerms:
    """The requested terms; the fields left empty take the model, aggregation and metric of a planned task."""
    train = ModelSpec(family, params_json or "{}") if family else planned.train
    return TaskTerms(train, aggregate or planned.aggregate, metric or planned.metric, metric_min, fee)


def refusal(exc: Rejected) -> Refusal:
    """A task the requester will not sign, as a named refusal: no funds is a state to change, the rest bad input."""
    if exc.reason is Reason.INSUFFICIENT_FUNDS:
        return not_ready(str(exc.reason), exc.detail)
    return invalid(str(exc.reason), exc.detail)


def check_compatible(dataset: Dataset, like: Dataset) -> None:
    """The network's miners train on their private data too: a task's samples must have its features and classes."""
    if dataset.X.shape[1] != like.X.shape[1] or dataset.n_classes != like.n_classes:
        raise invalid(
            "incompatible_dataset",
            f"{dataset.X.shape[1]} features and {dataset.n_classes} classes; this network's data has "
            f"{like.X.shape[1]} and {like.n_classes}",
        )
    if len(dataset) < MIN_ROWS:
        raise invalid("dataset_too_small", f"{len(dataset)} samples < {MIN_ROWS}")


def split_shipped(train: Dataset, test: Dataset, seed: int) -> tuple[Dataset, Dataset, Dataset]:
    """A shipped dataset: D_T a random share of its training part, D_V and D_E its test part halved (as planned
    tasks are split), so that no D_E sample is one a miner may hold privately."""
    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(train))[: max(MIN_ROWS, round(TRAIN_SHARE * len(train)))]
    validation, evaluation = split_validation_test(test, rng)
    return train.subset(np.sort(picked)), validation, evaluation


def split_given(dataset: Dataset, seed: int) -> tuple[Dataset, Dataset, Dataset]:
    """One dataset the user put in storage: D_T, D_V and D_E in SPLIT proportions, at random."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    first = round(SPLIT[0] * len(dataset))
    second = first + round(SPLIT[1] * len(dataset))
    parts = (order[:first], order[first:second], order[second:])
    d_t, d_v, d_e = (dataset.subset(np.sort(p)) for p in parts)
    return d_t, d_v, d_e
