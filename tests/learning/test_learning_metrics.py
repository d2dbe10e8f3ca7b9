"""Tests for the metrics, checked against scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, f1_score

from chainlab.learning.metrics import accuracy, compute_metric, f1_macro


@st.composite
def _labels(draw: st.DrawFn) -> tuple[NDArray[Any], NDArray[Any], int]:
    n_classes = draw(st.integers(1, 8))
    n = draw(st.integers(1, 60))
    label = st.integers(0, n_classes - 1)
    pred = np.array(draw(st.lists(label, min_size=n, max_size=n)), dtype=np.int64)
    true = np.array(draw(st.lists(label, min_size=n, max_size=n)), dtype=np.int64)
    return pred, true, n_classes


@given(_labels())
def test_against_sklearn(case: tuple[NDArray[Any], NDArray[Any], int]) -> None:
    pred, true, n_classes = case
    acc = accuracy(pred, true)
    assert type(acc) is float
    assert acc == pytest.approx(accuracy_score(true, pred), abs=1e-12)
    f1 = f1_macro(pred, true, n_classes)
    assert type(f1) is float
    assert f1 == pytest.approx(f1_score(true, pred, average="macro", zero_division=0), abs=1e-12)
    assert compute_metric("f1", pred, true, n_classes) == f1
    assert compute_metric("accuracy", pred, true, n_classes) == acc


def test_errors() -> None:
    y = np.array([0, 1], dtype=np.int64)
    with pytest.raises(ValueError, match="metric"):
        compute_metric("auc", y, y, 2)
    with pytest.raises(ValueError):
        accuracy(y, y[:1])
    with pytest.raises(ValueError):
        f1_macro(y, y, 1)
    with pytest.raises(ValueError):
        accuracy(y[:0], y[:0])
