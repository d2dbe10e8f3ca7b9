"""The on-chain model: an averaged integer perceptron over binary features, as on-chain contracts compute with
integers (0xDeCA10B's Perceptron contract does), so that every replica gets the same weights bit for bit.

With `classes` > 2 the model is one such perceptron per class (Crammer-Singer's multi-class rule): it predicts the
class of the largest score, and a mistake moves the true class's weights towards x and the predicted one's away.

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

SAMPLES_MAGIC = b"CLMS"  # a sample file: magic, features (u32), count (u32), then count x (packed bits, label)
MODEL_MAGIC = b"CLMW"  # a model file: magic, classes (u32), features (u32), c (i64), then w and a as int64s
_HEAD = struct.Struct("<4sII")
_MODEL_HEAD = struct.Struct("<4sIIq")


class SchemaMismatch(ValueError):
    """A well-formed sample file whose samples do not fit the market's schema (features or labels)."""


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


@dataclass
class MultiPerceptron:
    """One averaged perceptron per class: row k of w (its `features` weights, then the bias) is class k's current
    weights, row k of a its update accumulator, c the sample count, as Perceptron's."""

    w: list[list[int]]
    a: list[list[int]]
    c: int = 1

    @classmethod
    def zero(cls, features: int, classes: int) -> MultiPerceptron:
        """An untrained model."""
        return cls([[0] * (features + 1) for _ in range(classes)], [[0] * (features + 1) for _ in range(classes)])

    @classmethod
    def of(cls, weights: Sequence[int], sums: Sequence[int], count: int, classes: int) -> MultiPerceptron:
        """From flattened rows (class by class), as CreateMarket and model files carry them."""
        width = len(weights) // classes
        rows = [list(weights[k * width : (k + 1) * width]) for k in range(classes)]
        return cls(rows, [list(sums[k * width : (k + 1) * width]) for k in range(classes)], count)

    @property
    def classes(self) -> int:
        """The number of classes."""
        return len(self.w)

    @property
    def flat(self) -> tuple[list[int], list[int]]:
        """(w, a) flattened class by class."""
        return [v for row in self.w for v in row], [v for row in self.a for v in row]

    def copy(self) -> MultiPerceptron:
        """An independent copy."""
        return MultiPerceptron([list(r) for r in self.w], [list(r) for r in self.a], self.c)

    @staticmethod
    def _scores(rows: list[list[int]], indices: list[int]) -> list[int]:
        # A sum over the set bits only (w.x for binary x): a 10-class prediction costs 10 x (set bits) additions.
        return [sum(map(row.__getitem__, indices)) + row[-1] for row in rows]

    def predict(self, x: bytes) -> int:
        """The averaged model's class for x: the largest (c.w_k - a_k).x + bias_k, the first on a tie."""
        indices = active(x)
        current, sums = self._scores(self.w, indices), self._scores(self.a, indices)
        scores = [self.c * s - t for s, t in zip(current, sums, strict=True)]
        return scores.index(max(scores))

    def update(self, x: bytes, y: int) -> bool:
        """partial_fit on one sample (y < classes); whether the current weights changed."""
        indices = active(x)
        scores = self._scores(self.w, indices)
        guess = scores.index(max(scores))
        changed = guess != y
        if changed:
            c = self.c
            for k, step in ((y, 1), (guess, -1)):
                w, a = self.w[k], self.a[k]
                for i in indices:
                    w[i] += step
                    a[i] += step * c
                w[-1] += step
                a[-1] += step * c
        self.c += 1
        return changed

    def averaged(self) -> list[int]:
        """The predicting weights c.w - a, flattened class by class."""
        c = self.c
        return [c * wi - ai for w, a in zip(self.w, self.a, strict=True) for wi, ai in zip(w, a, strict=True)]


Model = Perceptron | MultiPerceptron


def model_of(weights: Sequence[int], sums: Sequence[int], count: int, classes: int) -> Model:
    """The on-chain model from CreateMarket's fields: binary (classes <= 2) or one row per class."""
    if classes <= 2:
        return Perceptron(list(weights), list(sums), count)
    return MultiPerceptron.of(weights, sums, count, classes)


def fit(features: int, samples: Iterable[tuple[bytes, int]], epochs: int, classes: int = 2) -> Model:
    """The owner's initial model: `epochs` passes of update over the samples, from zero."""
    model: Model = Perceptron.zero(features) if classes <= 2 else MultiPerceptron.zero(features, classes)
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


def encode_samples(features: int, samples: Sequence[tuple[bytes, int]]) -> bytes:
    """A sample file: what a contributor Puts and adds by CID, and the owner's revealed test set."""
    return _HEAD.pack(SAMPLES_MAGIC, features, len(samples)) + b"".join(x + bytes([y]) for x, y in samples)


def decode_samples(data: bytes, features: int, classes: int, limit: int) -> list[tuple[bytes, int]]:
    """encode_samples' inverse for a market's schema; ValueError naming what is wrong (not a sample file, other
    features, more than `limit` samples, a label out of range)."""
    if len(data) < _HEAD.size:
        raise ValueError(f"{len(data)} bytes are no sample file")
    magic, file_features, count = _HEAD.unpack_from(data)
    if magic != SAMPLES_MAGIC:
        raise ValueError("not a sample file")
    if file_features != features:
        raise SchemaMismatch(f"{file_features} features, the schema has {features}")
    if count > limit:
        raise ValueError(f"{count} samples, at most {limit}")
    size = packed_size(features) + 1
    if len(data) != _HEAD.size + count * size:
        raise ValueError(f"{len(data)} bytes for {count} samples")
    out: list[tuple[bytes, int]] = []
    for start in range(_HEAD.size, len(data), size):
        x, y = data[start : start + size - 1], data[start + size - 1]
        if not well_formed(x, features) or y >= max(classes, 2):
            raise SchemaMismatch(f"sample {len(out)}: padding bits set or label {y} out of range")
        out.append((x, y))
    return out


def encode_model(model: Model, features: int) -> bytes:
    """A model file (an off-chain trainer's upload): its class count, schema, c, w and a."""
    if isinstance(model, MultiPerceptron):
        w, a = model.flat
        return _MODEL_HEAD.pack(MODEL_MAGIC, model.classes, features, model.c) + encode_weights(w) + encode_weights(a)
    return _MODEL_HEAD.pack(MODEL_MAGIC, 2, features, model.c) + encode_weights(model.w) + encode_weights(model.a)


def decode_model(data: bytes, features: int, classes: int) -> Model:
    """encode_model's inverse for a market's schema; ValueError if it is no model file of that schema."""
    if len(data) < _MODEL_HEAD.size:
        raise ValueError(f"{len(data)} bytes are no model file")
    magic, file_classes, file_features, count = _MODEL_HEAD.unpack_from(data)
    rows = 1 if max(classes, 2) == 2 else classes
    if magic != MODEL_MAGIC or file_features != features or max(file_classes, 2) != max(classes, 2):
        raise ValueError(
            f"a model of {file_classes} classes and {file_features} features, not {classes} and {features}"
        )
    size = 8 * rows * (features + 1)
    if len(data) != _MODEL_HEAD.size + 2 * size or count < 1:
        raise ValueError(f"{len(data)} bytes for {rows} x {features + 1} weights")
    body = data[_MODEL_HEAD.size :]
    return model_of(decode_weights(body[:size]), decode_weights(body[size:]), count, classes)
