"""Weight-space operations: deterministic SGD, evaluation, aggregation, attacks, and refusal of foreign bytes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.learning import codec
from chainlab.learning.codec import ModelCodecError
from chainlab.learning.datasets import Dataset
from chainlab.learning.federated import Federated, NetSpec

SOFTMAX = NetSpec("softmax", (4,), 2, lr=0.5)


def _data(n: int = 200, seed: int = 0) -> Dataset:
    X = np.random.default_rng(seed).random((n, 4), dtype=np.float32)
    return Dataset(X, (X[:, 0] + X[:, 1] > 1.0).astype(np.int64), 2, (4,), "toy")


def test_training_is_deterministic_and_learns() -> None:
    fed, data = Federated(), _data()
    start = fed.init(SOFTMAX, 3)
    assert start == Federated().init(SOFTMAX, 3) != fed.init(SOFTMAX, 4)
    trained = fed.train_steps(SOFTMAX, start, data, 200, 16, seed=1, iteration=0)
    assert trained == Federated().train_steps(SOFTMAX, start, data, 200, 16, seed=1, iteration=0)
    assert fed.evaluate(SOFTMAX, trained, data) > max(0.85, fed.evaluate(SOFTMAX, start, data))


def test_sampled_evaluation_uses_that_many_samples() -> None:
    fed, data = Federated(), _data()
    weights = fed.init(SOFTMAX, 0)
    accuracy = fed.evaluate(SOFTMAX, weights, data, samples=7, seed=2)
    assert accuracy * 7 == pytest.approx(round(accuracy * 7))
    assert accuracy == fed.evaluate(SOFTMAX, weights, data, samples=7, seed=2)


def test_weighted_aggregation_is_the_coefficient_sum_and_median_the_middle() -> None:
    fed = Federated()
    a, b, c = (fed.init(SOFTMAX, s) for s in (1, 2, 3))
    mean = fed._tensors(SOFTMAX, fed.aggregate(SOFTMAX, [a, b], [0.5, 0.5], "weighted"))
    ta, tb, tc = (fed._tensors(SOFTMAX, m) for m in (a, b, c))
    for name in mean:
        assert np.allclose(mean[name], (ta[name] + tb[name]) / 2, atol=1e-6)
    median = fed._tensors(SOFTMAX, fed.aggregate(SOFTMAX, [a, b, c], [], "median"))
    for name in median:
        stacked = np.stack([t[name].numpy() for t in (ta, tb, tc)])
        assert np.allclose(median[name], np.median(stacked, axis=0), atol=1e-6)
    with pytest.raises(ValueError):
        fed.aggregate(SOFTMAX, [a, b], [1.0], "weighted")
    with pytest.raises(ValueError):
        fed.aggregate(SOFTMAX, [a], [1.0], "trimmed")


@pytest.mark.parametrize("kind", ["uniform", "gaussian"])
def test_a_seeded_perturbation_does_not_depend_on_the_order_safetensors_hands_tensors_back(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = Federated()
    weights = fed.init(SOFTMAX, 3)
    expected = fed.perturb(SOFTMAX, weights, kind, 1.0, 5)
    decode = codec.decode_safetensors

    def reversed_order(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        tensors, meta = decode(data)
        return dict(reversed(tensors.items())), meta

    # safetensors' order differs between processes (a hash map's): here it is forced the other way round.
    monkeypatch.setattr("chainlab.learning.federated.decode_safetensors", reversed_order)
    assert fed.perturb(SOFTMAX, weights, kind, 1.0, 5) == expected


def test_perturbations_are_the_papers_attacks() -> None:
    fed = Federated()
    weights = fed.init(SOFTMAX, 0)
    uniform = fed._tensors(SOFTMAX, fed.perturb(SOFTMAX, weights, "uniform", 0.001, 5))
    assert all(float(t.min()) >= 0 and float(t.max()) <= 0.001 for t in uniform.values())
    noisy = fed._tensors(SOFTMAX, fed.perturb(SOFTMAX, weights, "gaussian", 1.0, 5))
    clean = fed._tensors(SOFTMAX, weights)
    spread = np.concatenate([(noisy[n] - clean[n]).numpy().ravel() for n in clean])
    assert 0.5 < float(spread.std()) < 1.5
    with pytest.raises(ValueError):
        fed.perturb(SOFTMAX, weights, "swap", 1.0, 0)


def test_weights_of_another_architecture_or_not_finite_are_refused() -> None:
    fed = Federated()
    mlp = NetSpec("mlp", (4,), 2, hidden=3)
    with pytest.raises(ModelCodecError):
        fed.evaluate(SOFTMAX, fed.init(mlp, 0), _data())
    with pytest.raises(ModelCodecError):
        fed.evaluate(NetSpec("softmax", (4,), 3), fed.init(SOFTMAX, 0), _data())
    tensors = fed._tensors(SOFTMAX, fed.init(SOFTMAX, 0))
    tensors["1.weight"][0, 0] = float("nan")
    from chainlab.learning.codec import encode_safetensors

    with pytest.raises(ModelCodecError, match="finite"):
        fed.evaluate(SOFTMAX, encode_safetensors(tensors, {"family": "softmax", "format": 1}), _data())


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=256))
def test_arbitrary_bytes_never_load(data: bytes) -> None:
    with pytest.raises(ModelCodecError):
        Federated().evaluate(SOFTMAX, data, _data(10))


def test_spec_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown federated model family"):
        NetSpec.of("svm", {"input": [4], "classes": 2})
    with pytest.raises(ValueError, match="unknown softmax parameter"):
        NetSpec.of("softmax", {"input": [4], "classes": 2, "momentum": 0.9})
    with pytest.raises(ValueError, match="LeNet-5"):
        NetSpec.of("lenet5", {"input": [4], "classes": 2})
    with pytest.raises(ValueError, match="lr_policy"):
        NetSpec.of("softmax", {"input": [4], "classes": 2, "lr_policy": "step"})
    inv = NetSpec.of("softmax", {"input": [4], "classes": 2, "lr": 0.01, "lr_policy": "inv"})
    assert inv.lr_at(0) == 0.01 and inv.lr_at(10_000) == pytest.approx(0.01 * 2**-0.75)


def test_xavier_initialisation_gives_zero_biases_and_caffe_scaled_weights() -> None:
    fed = Federated()
    spec = NetSpec("mlp", (4,), 2, hidden=3, init="xavier")
    tensors = fed._tensors(spec, fed.init(spec, 0))
    assert all(float(t.abs().max()) == 0.0 for name, t in tensors.items() if name.endswith("bias"))
    bound = (6 / (4 + 3)) ** 0.5  # xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    assert 0 < float(tensors["1.weight"].abs().max()) <= bound
    assert fed.init(spec, 0) != fed.init(NetSpec("mlp", (4,), 2, hidden=3), 0)
    with pytest.raises(ValueError, match="init"):
        NetSpec("mlp", (4,), 2, init="he")
