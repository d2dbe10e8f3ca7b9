"""The one hop rule both drivers call: a link's settings, message IDs, keyed bandwidth and loss draws, partitions.

A message's hop over a link takes ``max(1, transfer + latency_rounds)`` rounds, where transfer is
``max(1, ceil(size_mb / b))`` with b drawn from N(bandwidth, (0.2 bandwidth)^2) floored at 0.1 bandwidth
(seed 000, section VII), or 0 on a link of unlimited bandwidth (bandwidth 0). The message is lost on the
link with the link's loss probability. Both draws are a function of (network seed, message ID, edge index)
only, so the simulator and a live sidecar compute the same hop for the same message on the same link.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BANDWIDTH_FLOOR_RATIO",
    "BANDWIDTH_SIGMA_RATIO",
    "LinkSpec",
    "check_bandwidth",
    "check_loss",
    "check_size",
    "hop_array",
    "hop_rounds",
    "is_cut",
    "message_id",
    "partition_groups",
    "whole_rounds",
]

# Seed 000 / DESIGN section 5: b ~ N(bandwidth, (0.2 * bandwidth)^2), floored so that a bad draw
# cannot produce a zero or negative bandwidth (an infinite or negative transfer time).
BANDWIDTH_SIGMA_RATIO = 0.2
BANDWIDTH_FLOOR_RATIO = 0.1

# Domain separation: the hop draws must not coincide with any other use of the same seed and bytes.
_HOP_DOMAIN = b"chainlab.network.hop:"

Node = TypeVar("Node", bound=Hashable)


def message_id(origin: bytes, wire: bytes) -> bytes:
    """A broadcast's ID: SHA-256 of its origin's node ID then its wire bytes (netem's de-duplication key)."""
    # The origin is part of the ID because two nodes broadcasting the same bytes are two broadcasts in the
    # simulator; the sidecars must not merge them either.
    return hashlib.sha256(origin + wire).digest()


def whole_rounds(value: object, what: str = "latency_rounds") -> int:
    """value as a whole number of rounds >= 0; ValueError naming `what` otherwise (2.0 is fine, 2.5 is not)."""
    # Rounds are integers in the simulator; a fractional latency would have no meaning there.
    number = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    if not math.isfinite(number) or number != int(number) or number < 0:
        raise ValueError(f"{what} must be a whole number of rounds >= 0, got {value!r}")
    return int(number)


def check_bandwidth(value: object, what: str = "bandwidth_mb_per_round") -> float:
    """value as a bandwidth in MB per round: finite and >= 0, where 0 means unlimited (no transfer time)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a number, got {value!r}")
    bandwidth = float(value)
    if not (math.isfinite(bandwidth) and bandwidth >= 0.0):
        raise ValueError(f"{what} must be finite and >= 0 (0: unlimited), got {value!r}")
    return bandwidth


def check_loss(value: object, what: str = "loss") -> float:
    """value as a loss probability in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a number, got {value!r}")
    loss = float(value)
    if not 0.0 <= loss <= 1.0:
        raise ValueError(f"{what} must be a probability in [0, 1], got {value!r}")
    return loss


def check_size(size_mb: object) -> float:
    """A declared message size in MB: finite and >= 0."""
    if isinstance(size_mb, bool) or not isinstance(size_mb, numbers.Real):
        raise ValueError(f"message size must be a number of MB, got {size_mb!r}")
    size = float(size_mb)
    if not (math.isfinite(size) and size >= 0.0):
        raise ValueError(f"message size must be a finite number of MB >= 0, got {size_mb!r}")
    return size


@dataclass(frozen=True)
class LinkSpec:
    """One link's settings: fixed latency in whole rounds, mean bandwidth in MB per round (0: unlimited), loss."""

    latency_rounds: int = 1
    bandwidth_mb_per_round: float = 0.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        # Normalise 2.0 to 2 so that specs read from YAML, JSON or protobuf doubles compare equal.
        object.__setattr__(self, "latency_rounds", whole_rounds(self.latency_rounds))
        object.__setattr__(self, "bandwidth_mb_per_round", check_bandwidth(self.bandwidth_mb_per_round))
        object.__setattr__(self, "loss", check_loss(self.loss))

    def to_mapping(self) -> dict[str, float]:
        """The spec as plain data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], base: LinkSpec | None = None) -> LinkSpec:
        """A spec from a mapping; missing keys come from base (or the defaults), unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown link key(s) {unknown}; known: {sorted(known)}")
        start = base or cls()
        return cls(
            latency_rounds=whole_rounds(data.get("latency_rounds", start.latency_rounds)),
            bandwidth_mb_per_round=check_bandwidth(data.get("bandwidth_mb_per_round", start.bandwidth_mb_per_round)),
            loss=check_loss(data.get("loss", start.loss)),
        )


def _generator(seed: int, message: bytes) -> np.random.Generator:
    return rng_of(hashlib.sha256(_HOP_DOMAIN + str(int(seed)).encode() + b":" + bytes(message)).digest())


def rng_of(key: bytes) -> np.random.Generator:
    """default_rng(key as a big-endian integer), built from that integer's 32-bit words directly (as SeedSequence
    splits an integer: least significant first, no high zero words) in half the time: one is made per message."""
    words = np.frombuffer(key[::-1].ljust(-(-len(key) // 4) * 4, b"\0"), dtype="<u4")
    used = np.flatnonzero(words)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words[: used[-1] + 1 if len(used) else 1])))


def hop_rounds(seed: int, message: bytes, links: Sequence[LinkSpec], size_mb: float) -> list[int | None]:
    """Rounds `message` (its ID) of `size_mb` declared MB takes to cross each link; None where it is lost.

    links is the whole network's edge list in its one fixed order (edges sorted by vertex index); every
    link gets its draws whatever its state, so that a link's hop depends only on (seed, message ID, its
    index, its own settings) and a sidecar that knows only its own links' current settings still agrees.
    """
    latency = np.array([spec.latency_rounds for spec in links], dtype=np.int64)
    bandwidth = np.array([spec.bandwidth_mb_per_round for spec in links], dtype=np.float64)
    loss = np.array([spec.loss for spec in links], dtype=np.float64)
    return [None if hop < 0 else hop for hop in hop_array(seed, message, latency, bandwidth, loss, size_mb).tolist()]


def hop_array(
    seed: int,
    message: bytes,
    latency: NDArray[np.int64],
    bandwidth: NDArray[np.float64],
    loss: NDArray[np.float64],
    size_mb: float,
) -> NDArray[np.int64]:
    """hop_rounds over the links' settings as arrays (in edge order), with -1 where the message is lost: the same
    draws and arithmetic in IEEE doubles, one vector operation per step instead of a loop over links."""
    size = check_size(size_mb)
    rng = _generator(seed, message)
    normal = rng.standard_normal(len(latency))
    uniform = rng.random(len(latency))
    drawn = np.maximum(bandwidth + BANDWIDTH_SIGMA_RATIO * bandwidth * normal, BANDWIDTH_FLOOR_RATIO * bandwidth)
    limited = bandwidth > 0.0
    transfer = np.zeros(len(latency), dtype=np.int64)
    if limited.any():
        transfer[limited] = np.maximum(1, np.ceil(size / drawn[limited])).astype(np.int64)
    # At least one round: a message acted on in the round it was sent could not have travelled.
    hops = np.maximum(1, transfer + latency)
    hops[uniform < loss] = -1
    return hops


def undrawn_limit_mb(bandwidth: NDArray[np.float64]) -> float:
    """The largest size no draw of hop_array can stretch: at most the floor of every limited link's bandwidth draw,
    so it crosses each link in one round of transfer, whatever the message. Without loss such a message takes the
    same hops as any other of that kind, so they can be worked out once rather than drawn per message."""
    limited = bandwidth[bandwidth > 0.0]
    return float((BANDWIDTH_FLOOR_RATIO * limited).min()) if len(limited) else math.inf


def partition_groups(groups: Iterable[Iterable[Node]]) -> dict[Node, int]:
    """Each listed node's group number (from 1); a node listed in two groups is an error."""
    group: dict[Node, int] = {}
    for index, members in enumerate(groups, start=1):
        for node in members:
            if group.get(node, index) != index:
                shown = node.hex() if isinstance(node, bytes) else repr(node)
                raise ValueError(f"node {shown} is listed in more than one partition group")
            group[node] = index
    return group


def is_cut(group: Mapping[Node, int], a: Node, b: Node) -> bool:
    """Whether a partition separates a and b: both listed, in different groups (unlisted nodes keep their links)."""
    return a in group and b in group and group[a] != group[b]
