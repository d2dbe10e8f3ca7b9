"""The on-chain models and the storage files: the 10-class perceptron's rule and its agreement with the owner's
numpy evaluation, the sample and model files' codecs (round trip, and every malformed file rejected by name)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.learning import market_data
from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.protocols.datamarket import perceptron
from chainlab.protocols.datamarket.perceptron import MultiPerceptron, Perceptron, SchemaMismatch
from chainlab.protocols.effects import ReadSamples
from chainlab.work import executor

FEATURES = 12


def _x(bits: list[int]) -> bytes:
    return np.packbits(np.array(bits, dtype=np.uint8)).tobytes()


def test_a_multiclass_mistake_moves_the_true_row_up_and_the_guessed_row_down() -> None:
    model = MultiPerceptron.zero(FEATURES, 3)
    x = _x([1, 0, 1] + [0] * 9)
    assert model.update(x, 2)  # all scores tie at 0: the guess is class 0
    assert model.w[2][:3] == [1, 0, 1] and model.w[2][-1] == 1 and model.w[0][:3] == [-1, 0, -1]
    assert model.w[1] == [0] * (FEATURES + 1) and model.c == 2
    assert model.predict(x) == 2 and not model.update(x, 2) and model.c == 3


def test_a_flattened_multiclass_model_round_trips() -> None:
    model = MultiPerceptron.zero(FEATURES, 4)
    for i in range(20):
        model.update(_x([(i >> k) & 1 for k in range(FEATURES)]), i % 4)
    w, a = model.flat
    assert MultiPerceptron.of(w, a, model.c, 4) == model
    assert perceptron.model_of(w, a, model.c, 4) == model and isinstance(
        perceptron.model_of(w[:13], a[:13], 1, 0), Perceptron
    )


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(st.integers(0, 1), min_size=FEATURES, max_size=FEATURES), st.integers(0, 9)),
        min_size=1,
        max_size=30,
    )
)
def test_the_core_predicts_as_the_owners_numpy_evaluation(samples: list[tuple[list[int], int]]) -> None:
    model = perceptron.fit(FEATURES, [(_x(b), y) for b, y in samples], 2, classes=10)
    X = np.array([b for b, _ in samples], dtype=np.float32)
    y = np.array([v for _, v in samples], dtype=np.int64)
    data = Dataset(X, y, 10, (FEATURES,), "t")
    weights = perceptron.encode_weights(model.averaged())
    expected = np.mean([model.predict(_x(b)) == v for b, v in samples])
    assert market_data.perceptron_accuracy(weights, data) == pytest.approx(float(expected))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(st.integers(0, 1), min_size=FEATURES, max_size=FEATURES), st.integers(0, 9)), max_size=20
    )
)
def test_a_sample_file_round_trips_and_numpy_writes_the_same_bytes(samples: list[tuple[list[int], int]]) -> None:
    rows = [(_x(b), y) for b, y in samples]
    data = perceptron.encode_samples(FEATURES, rows)
    assert perceptron.decode_samples(data, FEATURES, 10, len(rows)) == rows
    if samples:
        X = np.array([b for b, _ in samples], dtype=np.float32)
        held = Dataset(X, np.array([v for _, v in samples], dtype=np.int64), 10, (FEATURES,), "t")
        assert market_data.sample_file(held, 0, 2**31) == data
        assert market_data.sample_file(held, 1, 1) == perceptron.encode_samples(FEATURES, rows[1:2])


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"CLMS", ValueError),
        (b"XXXX" + perceptron.encode_samples(FEATURES, [])[4:], ValueError),
        (perceptron.encode_samples(FEATURES, [(b"\x00\x00", 0)])[:-1], ValueError),
        (perceptron.encode_samples(FEATURES, [(b"\x00\x00", 0)] * 3), ValueError),  # over the limit of 2
        (perceptron.encode_samples(FEATURES + 4, [(b"\x00\x00", 0)]), SchemaMismatch),
        (perceptron.encode_samples(FEATURES, [(b"\x00\x01", 0)]), SchemaMismatch),  # a padding bit set
        (perceptron.encode_samples(FEATURES, [(b"\x00\x00", 10)]), SchemaMismatch),
    ],
)
def test_a_malformed_sample_file_is_rejected(data: bytes, error: type[ValueError]) -> None:
    with pytest.raises(error):
        perceptron.decode_samples(data, FEATURES, 10, 2)


def test_a_model_file_round_trips_and_must_fit_the_schema() -> None:
    multi, binary = MultiPerceptron.zero(FEATURES, 10), Perceptron.zero(FEATURES)
    multi.update(_x([1] * FEATURES), 3)
    assert perceptron.decode_model(perceptron.encode_model(multi, FEATURES), FEATURES, 10) == multi
    assert perceptron.decode_model(perceptron.encode_model(binary, FEATURES), FEATURES, 0) == binary
    for data, classes in [
        (perceptron.encode_model(multi, FEATURES), 0),
        (perceptron.encode_model(binary, FEATURES), 10),
        (perceptron.encode_model(binary, FEATURES)[:-8], 0),
        (b"CLMW", 0),
    ]:
        with pytest.raises(ValueError):
            perceptron.decode_model(data, FEATURES, classes)


def test_the_executor_reads_a_sample_file_of_a_held_dataset() -> None:
    X = np.eye(FEATURES, dtype=np.float32)
    held = Dataset(X, np.arange(FEATURES, dtype=np.int64) % 10, 10, (FEATURES,), "t")
    result = executor.execute(Worker(), ReadSamples(held.commitment(), 10, 5), {held.commitment(): held})
    assert isinstance(result, bytes)
    assert perceptron.decode_samples(result, FEATURES, 10, 5) == [
        (_x([int(i == j) for i in range(12)]), j % 10) for j in (10, 11)
    ]
