"""l-nearest (Eq. 14-17, corrected) and multi-Krum: who they select, the step they take, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.learning import dp_gradients as dp
from chainlab.learning import robust_aggregation as ra
from chainlab.learning.codec import ModelCodecError
from chainlab.learning.federated import Federated, NetSpec

SHAPE = dp.LinearShape(2, 4)  # d = 10
NET = NetSpec.of("softmax", {"input": [4], "classes": 2})


def messages(honest: int, byzantine: int, seed: int = 0) -> tuple[tuple[bytes, ...], tuple[float, ...]]:
    """Honest gradients near one direction (norm ~10), Byzantine ones N(0, 200^2)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(SHAPE.dimension)
    raws = [10 * base + rng.standard_normal(SHAPE.dimension) for _ in range(honest)]
    raws += [200 * rng.standard_normal(SHAPE.dimension) for _ in range(byzantine)]
    norms = tuple(float(np.linalg.norm(r)) for r in raws)
    return tuple((r / n).astype("<f8").tobytes() for r, n in zip(raws, norms, strict=True)), norms


def weights() -> bytes:
    return Federated("cpu").init(NET, 2)


@pytest.mark.parametrize("rule", ["l_nearest", "multi_krum"])
def test_below_half_byzantine_only_honest_messages_are_selected(rule: str) -> None:
    vectors, norms = messages(12, 8)
    _, chosen = ra.aggregate(weights(), SHAPE, vectors, norms, rule=rule, select=10, byzantine=8, lr=0.1)
    assert chosen and max(chosen) < 12
    assert len(chosen) == (10 if rule == "l_nearest" else 12)


def test_l_nearest_fails_when_attackers_outnumber_l_minus_honest() -> None:
    vectors, norms = messages(6, 14)
    _, chosen = ra.aggregate(weights(), SHAPE, vectors, norms, rule="l_nearest", select=10, byzantine=0, lr=0.1)
    assert any(i >= 6 for i in chosen)


def test_the_step_descends_eq_17_with_the_sign_corrected() -> None:
    w = weights()
    vectors, norms = messages(5, 0)
    new, chosen = ra.aggregate(w, SHAPE, vectors, norms, rule="l_nearest", select=5, byzantine=0, lr=0.01)
    raw = np.stack([np.frombuffer(v, "<f8") * n for v, n in zip(vectors, norms, strict=True)])
    expected = dp.decode_weights(w, SHAPE) - 0.01 * raw.mean(axis=0)
    assert chosen == (0, 1, 2, 3, 4)
    assert np.allclose(dp.decode_weights(new, SHAPE), expected.astype(np.float32), atol=1e-7)


def test_l2_adds_lambda_w() -> None:
    w = weights()
    vectors, norms = messages(4, 0)
    plain, _ = ra.aggregate(w, SHAPE, vectors, norms, rule="l_nearest", select=2, byzantine=0, lr=0.1)
    decayed, _ = ra.aggregate(w, SHAPE, vectors, norms, rule="l_nearest", select=2, byzantine=0, lr=0.1, l2=0.5)
    diff = dp.decode_weights(plain, SHAPE) - dp.decode_weights(decayed, SHAPE)
    assert np.allclose(diff, 0.05 * dp.decode_weights(w, SHAPE), atol=1e-6)


def test_krum_f_is_capped_so_that_n_exceeds_2f_plus_2() -> None:
    assert ra.krum_f(70, 100) == 48 and ra.krum_f(10, 100) == 10 and ra.krum_f(5, 3) == 0
    assert ra.selected_count("multi_krum", 0, 70, 100) == 52 and ra.selected_count("l_nearest", 50, 0, 30) == 30


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 20), st.integers(0, 10), st.integers(1, 20), st.sampled_from(["l_nearest", "multi_krum"]))
def test_the_selection_is_ascending_distinct_and_of_the_rules_size(n: int, f: int, select: int, rule: str) -> None:
    vectors, norms = messages(n, 0, seed=n)
    _, chosen = ra.aggregate(weights(), SHAPE, vectors, norms, rule=rule, select=select, byzantine=f, lr=0.1)
    assert list(chosen) == sorted(set(chosen)) and all(0 <= i < n for i in chosen)
    assert len(chosen) == ra.selected_count(rule, select, f, n)


def test_aggregation_is_deterministic() -> None:
    vectors, norms = messages(10, 3)
    runs = {
        ra.aggregate(weights(), SHAPE, vectors, norms, rule="multi_krum", select=5, byzantine=3, lr=0.1)
        for _ in range(3)
    }
    assert len(runs) == 1


def test_a_vector_that_does_not_decode_is_a_codec_error() -> None:
    vectors, norms = messages(3, 0)
    with pytest.raises(ModelCodecError):
        ra.aggregate(
            weights(), SHAPE, (vectors[0][:-8], *vectors[1:]), norms, rule="l_nearest", select=2, byzantine=0, lr=0.1
        )
