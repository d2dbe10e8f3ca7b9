"""Seed 003's holder numerics: clipping (per example and of the sum), the noise of Eq. 10, normalisation, attackers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.learning import dp_gradients as dp
from chainlab.learning.codec import ModelCodecError
from chainlab.learning.federated import Federated, NetSpec

SHAPE = dp.LinearShape(3, 4)
NET = NetSpec.of("softmax", {"input": [4], "classes": 3})


def weights(seed: int = 1) -> bytes:
    return Federated("cpu").init(NET, seed)


def data(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(np.float32) * 3, rng.integers(0, 3, n)


def test_weights_decode_and_encode_as_federateds_softmax() -> None:
    w = weights()
    vector = dp.decode_weights(w, SHAPE)
    assert vector.shape == (15,) and dp.encode_weights(vector, SHAPE) == w


def test_the_unclipped_sum_is_torchs_cross_entropy_gradient() -> None:
    X, y = data()
    w = weights()
    mine = dp.summed_gradient(dp.decode_weights(w, SHAPE), SHAPE, X, y, "sum", bound=1e9)
    net = torch.nn.Linear(4, 3).double()
    vec = torch.from_numpy(dp.decode_weights(w, SHAPE))
    with torch.no_grad():
        net.weight.copy_(vec[:12].reshape(3, 4))
        net.bias.copy_(vec[12:])
    torch.nn.functional.cross_entropy(
        net(torch.from_numpy(X).double()), torch.from_numpy(y), reduction="sum"
    ).backward()  # type: ignore[no-untyped-call]
    assert net.weight.grad is not None and net.bias.grad is not None
    expected = torch.cat([net.weight.grad.ravel(), net.bias.grad]).numpy()
    assert np.allclose(mine, expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.01, 5.0), st.integers(1, 60))
def test_per_example_clipping_bounds_every_example_by_G(bound: float, n: int) -> None:
    X, y = data(n)
    w = dp.decode_weights(weights(), SHAPE)
    for i in range(n):
        single = dp.summed_gradient(w, SHAPE, X[i : i + 1], y[i : i + 1], "per_example", bound)
        assert np.linalg.norm(single) <= bound * (1 + 1e-9)
    total = dp.summed_gradient(w, SHAPE, X, y, "per_example", bound)
    assert np.linalg.norm(total) <= n * bound * (1 + 1e-9)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.01, 5.0))
def test_sum_clipping_bounds_the_sum_by_G(bound: float) -> None:
    X, y = data()
    total = dp.summed_gradient(dp.decode_weights(weights(), SHAPE), SHAPE, X, y, "sum", bound)
    assert np.linalg.norm(total) <= bound * (1 + 1e-9)


def test_the_noise_has_norm_gamma_d_2G_over_eps_in_a_uniform_direction() -> None:
    rng = np.random.default_rng(0)
    d, bound, eps = 50, 1.0, 0.5
    draws = np.stack([dp.laplace_ball_noise(d, bound, eps, rng) for _ in range(4000)])
    norms = np.linalg.norm(draws, axis=1)
    assert abs(norms.mean() - 2 * bound * d / eps) < 0.02 * 2 * bound * d / eps  # E||rho|| = 2Gd / eps
    assert abs(norms.var() - d * (2 * bound / eps) ** 2) < 0.1 * d * (2 * bound / eps) ** 2  # Gamma's variance
    directions = draws / norms[:, None]
    assert np.abs(directions.mean(axis=0)).max() < 0.03  # no preferred direction


def test_a_private_gradient_is_a_unit_vector_and_its_norm_deterministic_in_the_seed() -> None:
    X, y = data()
    a = dp.private_gradient(weights(), SHAPE, X, y, batch=0, clip="per_example", bound=1.0, epsilon=0.3, seed=5)
    b = dp.private_gradient(weights(), SHAPE, X, y, batch=0, clip="per_example", bound=1.0, epsilon=0.3, seed=5)
    c = dp.private_gradient(weights(), SHAPE, X, y, batch=0, clip="per_example", bound=1.0, epsilon=0.3, seed=6)
    assert a == b and a != c
    vector = np.frombuffer(a[0], dtype="<f8")
    assert vector.shape == (15,) and math.isclose(np.linalg.norm(vector), 1.0, rel_tol=1e-12) and a[1] > 0


def test_smaller_epsilon_means_more_noise() -> None:
    X, y = data()
    norms = {
        eps: np.mean(
            [
                dp.private_gradient(
                    weights(), SHAPE, X, y, batch=0, clip="per_example", bound=1.0, epsilon=eps, seed=s
                )[1]
                for s in range(30)
            ]
        )
        for eps in (0.1, 0.3)
    }
    clean = dp.private_gradient(weights(), SHAPE, X, y, batch=0, clip="per_example", bound=1.0, epsilon=None, seed=0)[1]
    assert norms[0.1] > norms[0.3] > clean


def test_a_batch_draws_m_samples() -> None:
    X, y = data()
    full = dp.private_gradient(weights(), SHAPE, X, y, batch=0, clip="sum", bound=1e9, epsilon=None, seed=1)
    part = dp.private_gradient(weights(), SHAPE, X, y, batch=10, clip="sum", bound=1e9, epsilon=None, seed=1)
    assert full != part and part[1] < full[1]


def test_a_byzantine_gradient_is_n_0_200_squared() -> None:
    X, y = data()
    norms = [
        dp.private_gradient(
            weights(), SHAPE, X, y, batch=0, clip="per_example", bound=1.0, epsilon=None, seed=s, byzantine=True
        )[1]
        for s in range(200)
    ]
    assert abs(np.mean(norms) - 200 * math.sqrt(15)) < 0.05 * 200 * math.sqrt(15)


def test_weights_of_another_shape_do_not_decode() -> None:
    other = Federated("cpu").init(NetSpec.of("softmax", {"input": [5], "classes": 3}), 1)
    with pytest.raises(ModelCodecError):
        dp.decode_weights(other, SHAPE)
    with pytest.raises(ModelCodecError):
        dp.decode_vector(b"\x00" * 7, 15)
