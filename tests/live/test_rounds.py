from __future__ import annotations

import math

import pytest

from chainlab.live.rounds import check_round_seconds, resolve_round_seconds


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_round_seconds_must_be_positive_and_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="round_seconds"):
        check_round_seconds(bad)


def test_a_flag_beats_the_shared_variable_which_beats_a_file() -> None:
    env = {"CHAINLAB_ROUND_SECONDS": "0.2"}
    assert resolve_round_seconds(0.1, 0.3, env) == (0.1, "flag")
    assert resolve_round_seconds(None, 0.3, env) == (0.2, "env")
    assert resolve_round_seconds(None, 0.3, {}) == (0.3, "file")
    assert resolve_round_seconds(None, None, {}) == (1.0, "default")
    with pytest.raises(ValueError, match="not a number"):
        resolve_round_seconds(None, None, {"CHAINLAB_ROUND_SECONDS": "fast"})
