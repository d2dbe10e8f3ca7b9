"""An experiment's data: the dataset loaded, D_V and D_E split off the original test set, and the partition."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chainlab.learning.datasets import Dataset, load_dataset, split_validation_test
from chainlab.learning.partition import partition
from chainlab.scenarios.experiment import Experiment


@dataclass(frozen=True)
class DataSplit:
    """Public training data D_T, validation D_V, test D_E, one private part per data holder, and the report set
    D_R when the experiment holds one out (`report_set:`)."""

    public: Dataset
    validation: Dataset
    test: Dataset
    private: list[Dataset]
    report: Dataset | None = None


def split_report(test: Dataset, size: int | None, seed: int) -> tuple[Dataset | None, Dataset]:
    """(D_R, the rest of the test set): `size` samples drawn from seed that no protocol sees (protocols.md 6), or
    (None, test) without a report set. Its own generator, so that every other draw of the run is unchanged."""
    if size is None:
        return None, test
    if size >= len(test):
        raise ValueError(f"report_set {size} leaves nothing of the {len(test)}-sample test set")
    perm = np.random.default_rng([seed, 0x5245]).permutation(len(test))  # 0x5245: "RE", the report set's stream
    return test.subset(np.sort(perm[:size])), test.subset(np.sort(perm[size:]))


def load_split(exp: Experiment, holders: int) -> DataSplit:
    """Load exp's dataset and split it for `holders` private data holders (seed 000's appendix), from exp.seed."""
    rng = np.random.default_rng(exp.seed)
    train, original_test = load_dataset(str(exp.get("dataset", "mnist")))
    report, original_test = split_report(original_test, exp.report_set, exp.seed)
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
    return DataSplit(parts.public, validation, test, list(parts.private), report)
