"""An experiment's data: the dataset loaded, D_V and D_E split off the original test set, and the partition."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chainlab.learning.datasets import Dataset, load_dataset, split_validation_test
from chainlab.learning.partition import partition
from chainlab.scenarios.experiment import Experiment


@dataclass(frozen=True)
class DataSplit:
    """Public training data D_T, validation D_V, test D_E, and one private part per data holder."""

    public: Dataset
    validation: Dataset
    test: Dataset
    private: list[Dataset]


def load_split(exp: Experiment, holders: int) -> DataSplit:
    """Load exp's dataset and split it for `holders` private data holders (seed 000's appendix), from exp.seed."""
    rng = np.random.default_rng(exp.seed)
    train, original_test = load_dataset(str(exp.get("dataset", "mnist")))
    validation, test = split_validation_test(original_test, rng)
    split = exp.partition
    parts = partition(
        train,
        holders,
        kappa=float(split.kappa),
        zeta=float(split.zeta),
        phi=split.phi,
        scheme=str(split.scheme),
        beta=float(split.beta),
        rng=rng,
    )
    return DataSplit(parts.public, validation, test, list(parts.private))
