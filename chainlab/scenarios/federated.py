"""Data for the federated protocols (DFL, BFLC, LearningChain): full train and test sets, one shard per
participant, attacks on data, and the public shard that pre-trains w0.

By default all of the training set is dealt to the participants; with `public_share: <fraction>` (protocols.md 6
"Participants") that fraction is first held out as the public shard the genesis role pre-trains w0 on, as
BagChain's D_T. Reports use the whole original test set, which no participant trains on, or the report set D_R
held out of it when the experiment sets `report_set:`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from chainlab.learning.datasets import Dataset, load_dataset
from chainlab.learning.partition import partition
from chainlab.learning.worker import Worker
from chainlab.protocols.effects import TrainSteps
from chainlab.protocols.spec import ModelSpec
from chainlab.scenarios.data import split_report
from chainlab.scenarios.experiment import Experiment
from chainlab.work import executor

FAMILIES = ("softmax", "mlp", "lenet5", "caffe_lenet")
PUBLIC_SHARE = "public_share"  # the top-level key of the specs that pre-train w0 on a public shard
PUBLIC_EPOCHS = 2  # "a few local epochs" of pre-training on the public shard
PUBLIC_BATCH = 32


@dataclass(frozen=True)
class FederatedData:
    """The original training set, the test set (the original one, less D_R), one shard per participant, and the
    report set D_R that no protocol sees when the experiment sets `report_set:` (protocols.md 6)."""

    train: Dataset
    test: Dataset
    shards: tuple[Dataset, ...]
    report: Dataset | None = None
    public: Dataset | None = None  # the public shard w0 is pre-trained on, with `public_share:` (else None)

    @property
    def reported(self) -> Dataset:
        """What final accuracies are measured on: D_R when there is one, else the test set."""
        return self.report if self.report is not None else self.test


def public_share_of(exp: Experiment) -> float:
    """exp's `public_share:` (default 0: no public shard), checked: a fraction in [0, 1)."""
    value = exp.get(PUBLIC_SHARE, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{PUBLIC_SHARE} must be a fraction in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{PUBLIC_SHARE} must be a fraction in [0, 1), got {value!r}")
    return float(value)


def federated_data(exp: Experiment, participants: int) -> FederatedData:
    """Load exp's dataset, hold out the public shard (`public_share:`, none by default; kappa is ignored) and deal
    the rest of the training set to participants by exp's partition, deterministically in exp.seed."""
    rng = np.random.default_rng(exp.seed)
    train, original_test = load_dataset(str(exp.get("dataset", "mnist")))
    report, test = split_report(original_test, exp.report_set, exp.seed)
    split = exp.partition
    public_share = public_share_of(exp)
    # Without zeta, everything left is dealt: the largest whole share per participant (rounding never overshoots).
    dealt = len(train) - round(public_share * len(train))
    zeta = float(split.zeta) if "zeta" in exp.get("partition", {}) else (dealt // participants) / len(train)
    parts = partition(
        train,
        participants,
        kappa=public_share,
        zeta=zeta,
        phi=split.phi,
        scheme=str(split.scheme),
        beta=float(split.beta),
        rng=rng,
    )
    return FederatedData(train, test, parts.private, report, parts.public if public_share > 0 else None)


def pretrained(spec: ModelSpec, w0: bytes, public: Dataset | None, seed: int) -> bytes:
    """w0 after PUBLIC_EPOCHS epochs of SGD (batches of PUBLIC_BATCH, the spec's learning rate) on the public shard,
    deterministic in seed; w0 itself without a public shard."""
    if public is None or len(public) == 0:
        return w0
    steps = max(1, math.ceil(PUBLIC_EPOCHS * len(public) / PUBLIC_BATCH))
    op = TrainSteps(spec, w0, public.commitment(), steps, PUBLIC_BATCH, seed % 2**31)
    weights = executor.execute(Worker(), op, {public.commitment(): public})
    if not isinstance(weights, bytes):
        raise ValueError(f"pre-training w0 on the public shard failed: {weights!r}")
    return weights


def flipped_shards(shards: Sequence[Dataset], fraction: float) -> tuple[Dataset, ...]:
    """The common label-flip attack (protocols.md 6): the first floor(fraction * N) shards label_flipped."""
    count = math.floor(fraction * len(shards) + 1e-9)
    return tuple(label_flipped(s) if i < count else s for i, s in enumerate(shards))


def label_flip_of(section: Mapping[str, object]) -> float:
    """A protocol section's `label_flip:` fraction (default 0), checked: a share in [0, 1)."""
    value = section.get("label_flip", 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"label_flip must be a fraction in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"label_flip must be a fraction in [0, 1), got {value!r}")
    return float(value)


def label_matched(test: Dataset, shard: Dataset, size: int, rng: np.random.Generator) -> Dataset:
    """`size` samples of test drawn with shard's label distribution (seed 001's simulator measures receipts so)."""
    counts = np.bincount(shard.y, minlength=test.n_classes).astype(np.float64)
    if counts.sum() == 0:
        counts[:] = 1.0
    labels = rng.choice(test.n_classes, size=size, p=counts / counts.sum())
    idx = np.empty(size, dtype=np.int64)
    for k in np.unique(labels):
        where = np.flatnonzero(test.y == k)
        picks = labels == k
        idx[picks] = rng.choice(where, size=int(picks.sum()), replace=bool(picks.sum() > len(where)))
    return test.subset(idx)


def noise_images(shard: Dataset, rng: np.random.Generator) -> Dataset:
    """Seed 001's data poisoning: every pixel U(0, 1), labels kept."""
    X = rng.random(shard.X.shape, dtype=np.float32)
    return Dataset(X, shard.y, shard.n_classes, shard.shape, f"{shard.name}+noise")


def label_flipped(shard: Dataset) -> Dataset:
    """The common attack of protocols.md section 6: y -> (y + 1) mod n_classes, images kept."""
    return Dataset(shard.X, (shard.y + 1) % shard.n_classes, shard.n_classes, shard.shape, f"{shard.name}+flip")


def model_spec(model: Mapping[str, object], data: Dataset) -> ModelSpec:
    """A federated model's spec from a config's `model:` mapping (family plus hyper-parameters), with the data's
    input shape and class count filled in so that weights can be initialised without data."""
    params = {str(k): v for k, v in model.items() if k != "family"}
    family = str(model.get("family", "softmax"))
    if family not in FAMILIES:
        raise ValueError(f"unknown federated model family {family!r}; known: {', '.join(FAMILIES)}")
    params["input"] = list(data.shape)
    params["classes"] = data.n_classes
    return ModelSpec.of(family, params)
