"""Classification metrics over integer label vectors."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

METRICS = ("accuracy", "f1")


def _check(y_pred: NDArray[np.int64], y_true: NDArray[np.int64]) -> None:
    if np.shape(y_pred) != np.shape(y_true) or np.ndim(y_true) != 1:
        raise ValueError("y_pred and y_true must be 1-D and of equal length")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty prediction")


def accuracy(y_pred: NDArray[np.int64], y_true: NDArray[np.int64]) -> float:
    """Fraction of predictions equal to the true label."""
    _check(y_pred, y_true)
    return float(np.mean(np.asarray(y_pred) == np.asarray(y_true)))


def f1_macro(y_pred: NDArray[np.int64], y_true: NDArray[np.int64], n_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes occurring in y_true or y_pred.

    Matches sklearn's f1_score(average="macro", zero_division=0): a class that is predicted but never
    true (or true but never predicted) scores 0; classes absent from both are left out rather than
    counted as 0, so a 62-class task evaluated on digits only is not diluted.
    """
    _check(y_pred, y_true)
    pred = np.asarray(y_pred, dtype=np.int64)
    true = np.asarray(y_true, dtype=np.int64)
    if min(pred.min(), true.min()) < 0 or max(pred.max(), true.max()) >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes})")
    confusion = np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(confusion).astype(np.float64)
    # 2TP + FP + FN = (times predicted) + (times true); it is zero exactly for classes absent from both.
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)
    present = denominator > 0
    return float(np.mean(2.0 * tp[present] / denominator[present]))


def compute_metric(name: str, y_pred: NDArray[np.int64], y_true: NDArray[np.int64], n_classes: int) -> float:
    """Score predictions with the metric called `name` ("accuracy" or "f1")."""
    if name == "accuracy":
        return accuracy(y_pred, y_true)
    if name == "f1":
        return f1_macro(y_pred, y_true, n_classes)
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
