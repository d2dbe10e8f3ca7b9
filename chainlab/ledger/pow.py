"""Proof-of-work: target checks, success odds and the nonce search loop."""

import hashlib
import math
from collections.abc import Callable

DEFAULT_TARGET: int = 2**244 - 1

_HASH_SPACE = 2**256


def parse_target(text: str) -> int:
    """'2**244-1' style targets from YAML, without eval: base**exponent, optionally minus an integer."""
    body, _, minus = text.replace(" ", "").partition("-")
    base, _, exponent = body.partition("**")
    try:
        value = int(base) ** int(exponent) if exponent else int(base)
        return value - int(minus) if minus else value
    except ValueError as exc:
        raise ValueError(f"target must look like 2**244-1, got {text!r}") from exc


def meets_target(digest: bytes, target: int) -> bool:
    """Return True iff ``digest``, read as a big-endian integer, is below ``target``."""
    return int.from_bytes(digest, "big") < target


def success_probability(target: int, trials: int) -> float:
    """Return the chance that at least one of ``trials`` hashes meets ``target``."""
    p = target / _HASH_SPACE
    if trials <= 0 or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    # Same as 1 - (1 - p)**trials, but log1p/expm1 keep precision when p is tiny.
    return -math.expm1(trials * math.log1p(-p))


def fixed64_suffix(tag: bytes) -> Callable[[int], bytes]:
    """The wire bytes a nonce adds after its tag: the tag, then the nonce as 8 little-endian bytes (fixed64)."""

    def suffix(nonce: int) -> bytes:
        return tag + nonce.to_bytes(8, "little")

    return suffix


def search_nonce(
    prefix: bytes,
    nonce_suffix: Callable[[int], bytes],
    target: int,
    start: int,
    max_trials: int,
) -> tuple[int | None, int]:
    """Try nonces from ``start`` on; return (winning nonce or None, trials made incl. the winner)."""
    if max_trials < 0:
        raise ValueError(f"max_trials must be non-negative, got {max_trials}")
    # Hashing the shared prefix once and copying the state saves rehashing it on every trial.
    base = hashlib.sha256(prefix)
    for trials, nonce in enumerate(range(start, start + max_trials), start=1):
        h = base.copy()
        h.update(nonce_suffix(nonce))
        if int.from_bytes(h.digest(), "big") < target:
            return nonce, trials
    return None, max_trials
