"""The on-chain model: an averaged integer perceptron over binary features, as on-chain contracts compute with
integers (0xDeCA10B's Perceptron contract does), so that every replica gets the same weights bit for bit.

A sample's features are packed bits (most significant bit first, as numpy.packbits). Training is the perceptron
rule on the current weights w (the bias last): on a mistake of sign(w.x + b), w += s.x and b += s with s = +1 for
label 1 and -1 for label 0. The model that predicts is the average of w over every sample seen, kept exactly in
integers as c.w - a (a accumulates c.s.x at each update, c counts samples): the average is what makes later
updates count less, as scikit-learn's decaying 'optimal' learning rate does in DRT's float perceptron, and it
keeps a plain perceptron's last iterate from swinging with each flipped label.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_BITS: tuple[tuple[int, ...], ...] = tuple(tuple(j for j in range(8) if byte & (0x80 >> j)) for byte in range(256))


def packed_size(features: int) -> int:
    """Bytes of a sample's packed bits."""
    return (features + 7) // 8


def well_formed(x: bytes, features: int) -> bool:
    """Whether x is a sample of `features` binary features (the right length, padding bits clear)."""
    if len(x) != packed_size(features):
        return False
    spare = 8 * len(x) - features
    return spare == 0 or x[-1] & ((1 << spare) - 1) == 0


def active(x: bytes) -> list[int]:
    """The indices of the features that are set."""
    out: list[int] = []
    for i, byte in enumerate(x):
        if byte:
            base = 8 * i
            out.extend(base + j for j in _BITS[byte])
    return out


@dataclass
class Perceptron:
    """Current weights w, the update accumulator a and the sample count c (all integers, bias last)."""

    w: list[int]
    a: list[int]
    c: int = 1

    @classmethod
    def zero(cls, features: int) -> Perceptron:
        """An untrained model."""
        return cls([0] * (features + 1), [0] * (features + 1))

    def copy(self) -> Perceptron:
        """An independent copy."""
        return Perceptron(list(self.w), list(self.a), self.c)

    def predict(self, x: bytes) -> int:
        """The averaged model's label for x: 1 if (c.w - a).x + bias > 0, else 0."""
        indices = active(x)
        w, a = self.w, self.a
        total = self.c * (sum(w[i] for i in indices) + w[-1]) - (sum(a[i] for i in indices) + a[-1])
        return 1 if total > 0 else 0

    def update(self, x: bytes, y: int) -> bool:
        """partial_fit on one sample; whether the current weights changed."""
        indices = active(x)
        w, a, c = self.w, self.a, self.c
        changed = (1 if sum(w[i] for i in indices) + w[-1] > 0 else 0) != y
        if changed:
            step = 1 if y == 1 else -1
            for i in indices:
                w[i] += step
                a[i] += step * c
            w[-1] += step
            a[-1] += step * c
        self.c = c + 1
        return changed

    def averaged(self) -> list[int]:
        """The predicting weights c.w - a (a multiple of the average of w)."""
        return [self.c * wi - ai for wi, ai in zip(self.w, self.a, strict=True)]


def fit(features: int, samples: Iterable[tuple[bytes, int]], epochs: int) -> Perceptron:
    """The owner's initial model: `epochs` passes of update over the samples, from zero."""
    model = Perceptron.zero(features)
    data = list(samples)
    for _ in range(epochs):
        for x, y in data:
            model.update(x, y)
    return model


def encode_weights(weights: Sequence[int]) -> bytes:
    """Weights as little-endian int64s (what the owner's evaluation op reads)."""
    return struct.pack(f"<{len(weights)}q", *weights)


def decode_weights(data: bytes) -> list[int]:
    """encode_weights' inverse; ValueError if the length is not a whole number of int64s."""
    if len(data) % 8:
        raise ValueError(f"{len(data)} bytes are not a whole number of int64 weights")
    return list(struct.unpack(f"<{len(data) // 8}q", data))
