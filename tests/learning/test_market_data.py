"""The binary-MNIST stand-in: the task, the sample encoding the contract reads, and the owner's evaluation op,
which agrees with the contract's integer perceptron sample by sample."""

from __future__ import annotations

import numpy as np
import pytest

from chainlab.learning import market_data
from chainlab.learning.datasets import Dataset, load_dataset
from chainlab.learning.worker import Worker
from chainlab.protocols.datamarket import perceptron
from chainlab.protocols.effects import EvaluatePerceptron, EvaluationFailed, ReadSample
from chainlab.work import executor


@pytest.fixture(scope="module")
def digits() -> Dataset:
    train, _ = load_dataset("digits")
    return train


def test_the_task_is_digit_below_five_on_binarised_pixels(digits: Dataset) -> None:
    binary = market_data.binary_task(digits)
    assert binary.n_classes == 2 and set(np.unique(binary.X)) <= {0.0, 1.0}
    assert np.array_equal(binary.y, (digits.y < 5).astype(np.int64))


def test_a_sample_is_its_packed_bits_and_label(digits: Dataset) -> None:
    binary = market_data.binary_task(digits)
    data = market_data.sample_bytes(binary, 3)
    x, y = market_data.split_sample(data)
    assert len(x) == perceptron.packed_size(binary.X.shape[1]) and y == binary.y[3]
    assert perceptron.well_formed(x, binary.X.shape[1])
    assert perceptron.active(x) == list(np.flatnonzero(binary.X[3]))
    with pytest.raises(IndexError):
        market_data.sample_bytes(binary, len(binary))


def test_the_evaluation_op_matches_the_contracts_predictions(digits: Dataset) -> None:
    binary = market_data.binary_task(digits)
    model = perceptron.fit(binary.X.shape[1], market_data.samples(binary.subset(np.arange(300))), 2)
    weights = model.averaged()
    held = {binary.commitment(): binary}
    accuracy = executor.execute(
        Worker(), EvaluatePerceptron(perceptron.encode_weights(weights), binary.commitment()), held
    )
    expected = np.mean([model.predict(x) == y for x, y in market_data.samples(binary)])
    assert isinstance(accuracy, float) and accuracy == pytest.approx(expected) and accuracy > 0.7
    read = executor.execute(Worker(), ReadSample(binary.commitment(), 5), held)
    assert read == market_data.sample_bytes(binary, 5)


def test_weights_of_the_wrong_shape_fail_as_the_peers_fault(digits: Dataset) -> None:
    binary = market_data.binary_task(digits)
    op = EvaluatePerceptron(perceptron.encode_weights([1, 2, 3]), binary.commitment())
    assert isinstance(executor.execute(Worker(), op, {binary.commitment(): binary}), EvaluationFailed)


def test_the_averaged_perceptron_learns_and_round_trips() -> None:
    model = perceptron.Perceptron.zero(8)
    assert model.update(b"\x80", 1) and not model.update(b"\x80", 1)
    assert model.predict(b"\x80") == 1 and model.c == 3
    assert perceptron.decode_weights(perceptron.encode_weights(model.averaged())) == model.averaged()
    with pytest.raises(ValueError):
        perceptron.decode_weights(b"\x00" * 7)
