"""LearningChain's holder numerics (seed 003 Eq. 6-12) on softmax regression, in float64 numpy, deterministic in seed.

A linear model's weights travel as the "softmax" family's safetensors (chainlab.learning.federated's layout:
"1.weight" (C, F) and "1.bias" (C,), float32), so every other operation reads them; gradients and their
arithmetic are float64. A gradient vector lays out the weight matrix row-major, then the bias: d = C * F + C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from chainlab.learning.codec import ModelCodecError, decode_arrays, encode_arrays

CLIPS = ("per_example", "sum")
FAMILY = "softmax"
_NAMES = {"1.weight": "F32", "1.bias": "F32"}
_META = {"family": FAMILY, "format": 1}
VECTOR_DTYPE = np.dtype("<f8")

Vector = NDArray[np.float64]


@dataclass(frozen=True)
class LinearShape:
    """Softmax regression's shape: C classes over F features (d = C * F + C parameters)."""

    classes: int
    features: int

    @property
    def dimension(self) -> int:
        """d."""
        return self.classes * self.features + self.classes


def decode_weights(data: bytes, shape: LinearShape) -> Vector:
    """w as one float64 vector (weight row-major, then bias); ModelCodecError if not this shape's finite weights."""
    arrays, meta = decode_arrays(data, _NAMES)
    if meta != _META:
        raise ModelCodecError(f"not {FAMILY} weights")
    weight, bias = arrays["1.weight"], arrays["1.bias"]
    if weight.shape != (shape.classes, shape.features) or bias.shape != (shape.classes,):
        raise ModelCodecError(f"tensors do not match softmax regression of {shape.classes} x {shape.features}")
    vector: Vector = np.concatenate([weight.astype(np.float64).ravel(), bias.astype(np.float64)])
    if not np.isfinite(vector).all():
        raise ModelCodecError("weights are not all finite")
    return vector


def encode_weights(vector: Vector, shape: LinearShape) -> bytes:
    """The float32 safetensors of a weight vector (what Federated decodes as the softmax family)."""
    split = shape.classes * shape.features
    weight = vector[:split].reshape(shape.classes, shape.features).astype(np.float32)
    bias = vector[split:].astype(np.float32)
    return encode_arrays({"1.weight": weight, "1.bias": bias}, _META)


def decode_vector(data: bytes, dimension: int) -> Vector:
    """A message's unit vector; ModelCodecError if it is not d float64 values."""
    if len(data) != dimension * VECTOR_DTYPE.itemsize:
        raise ModelCodecError(f"a gradient of {len(data)} bytes, d = {dimension}")
    vector: Vector = np.frombuffer(data, dtype=VECTOR_DTYPE).astype(np.float64)
    if not np.isfinite(vector).all():
        raise ModelCodecError("a gradient is not all finite")
    return vector


def summed_gradient(
    w: Vector, shape: LinearShape, X: NDArray[np.float32 | np.float64], y: NDArray[np.int64], clip: str, bound: float
) -> Vector:
    """Eq. 6 with Eq. 9: the cross-entropy gradient summed over the samples, each clipped to `bound` first
    (per_example, Appendix A) or the sum clipped (sum, Eq. 9 as printed)."""
    if clip not in CLIPS:
        raise ValueError(f"clip must be one of {CLIPS}, got {clip!r}")
    split = shape.classes * shape.features
    weight = w[:split].reshape(shape.classes, shape.features)
    inputs = np.asarray(X, dtype=np.float64)
    logits = inputs @ weight.T + w[split:]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    errors = probs
    errors[np.arange(len(y)), np.asarray(y, dtype=np.int64)] -= 1.0  # dphi/dlogits = p - e_y
    if clip == "per_example":
        # ||(p - e_y) x^T||_F^2 + ||p - e_y||^2 = ||p - e_y||^2 (||x||^2 + 1)
        norms = np.sqrt((errors**2).sum(axis=1) * ((inputs**2).sum(axis=1) + 1.0))
        errors = errors * (1.0 / np.maximum(1.0, norms / bound))[:, None]
    gradient: Vector = np.concatenate([(errors.T @ inputs).ravel(), errors.sum(axis=0)])
    if clip == "sum":
        gradient = gradient / max(1.0, float(np.linalg.norm(gradient)) / bound)
    return gradient


def laplace_ball_noise(dimension: int, bound: float, epsilon: float, rng: np.random.Generator) -> Vector:
    """Eq. 10's rho, density proportional to exp(-eps ||rho|| / (2G)): r ~ Gamma(d, 2G / eps) times a uniform unit
    vector (not per-coordinate Laplace noise; E||rho|| = 2Gd / eps)."""
    radius = rng.gamma(shape=dimension, scale=2.0 * bound / epsilon)
    direction = rng.standard_normal(dimension)
    noise: Vector = radius * direction / np.linalg.norm(direction)
    return noise


def private_gradient(
    weights: bytes,
    shape: LinearShape,
    X: NDArray[np.float32 | np.float64],
    y: NDArray[np.int64],
    *,
    batch: int,
    clip: str,
    bound: float,
    epsilon: float | None,
    seed: int,
    byzantine: bool = False,
    sigma: float = 200.0,
) -> tuple[bytes, float]:
    """(g* / s as little-endian float64 bytes, s): Eq. 6-12 for an honest holder, N(0, sigma^2 I) for a Byzantine
    one (protocols.md 3.4). A zero vector (no DP, a perfect fit) comes back as (zeros, 0.0): nothing to send."""
    w = decode_weights(weights, shape)
    rng = np.random.default_rng(seed)
    if byzantine:
        gradient = rng.standard_normal(shape.dimension) * sigma
    else:
        if len(y) == 0:
            raise ValueError("cannot compute a gradient on no data")
        if 0 < batch < len(y):
            picks = np.sort(rng.choice(len(y), size=batch, replace=False))
            X, y = X[picks], y[picks]
        gradient = summed_gradient(w, shape, X, y, clip, bound)
        if epsilon is not None:
            if not epsilon > 0:
                raise ValueError(f"epsilon must be > 0, got {epsilon}")
            gradient = gradient + laplace_ball_noise(shape.dimension, bound, epsilon, rng)
    norm = float(np.linalg.norm(gradient))
    if norm == 0.0 or not math.isfinite(norm):
        return np.zeros(shape.dimension, dtype=VECTOR_DTYPE).tobytes(), 0.0
    return (gradient / norm).astype(VECTOR_DTYPE).tobytes(), norm
