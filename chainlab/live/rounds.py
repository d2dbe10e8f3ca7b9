"""The one setting every live service shares: how many seconds of wall time a protocol round lasts."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

ROUND_SECONDS_ENV = "CHAINLAB_ROUND_SECONDS"
DEFAULT_ROUND_SECONDS = 1.0


def check_round_seconds(value: float) -> float:
    """round_seconds must be a finite number > 0."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"round_seconds must be a finite number > 0, got {value!r}")
    return value


def resolve_round_seconds(
    flag: float | None, from_file: float | None = None, environ: Mapping[str, str] | None = None
) -> tuple[float, str]:
    """Seconds per round and where it came from: a flag, then CHAINLAB_ROUND_SECONDS, then a file's value, then 1.

    The environment variable is the one setting every service reads, so it outranks a service's own file (the
    plan, the topology); a flag outranks both because it is the most specific.
    """
    env = os.environ if environ is None else environ
    if flag is not None:
        return check_round_seconds(float(flag)), "flag"
    text = env.get(ROUND_SECONDS_ENV, "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{ROUND_SECONDS_ENV}={text!r} is not a number") from None
        return check_round_seconds(value), "env"
    if from_file is not None:
        return check_round_seconds(float(from_file)), "file"
    return DEFAULT_ROUND_SECONDS, "default"
