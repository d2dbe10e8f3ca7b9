"""WireBytes: one tally of bytes by kind for both drivers, and the payload share it accepts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlab.network.wire_bytes import WireBytes, check_payload, wire_total

sizes = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
events = st.lists(
    st.one_of(
        st.tuples(st.just("message"), st.integers(0, 3), sizes, st.floats(0.0, 1.0), st.integers(0, 5)),
        st.tuples(st.just("served"), st.integers(0, 3), st.integers(0, 10**6)),
    ),
    max_size=30,
)


def _apply(tally: WireBytes[int], event: tuple[object, ...]) -> None:
    if event[0] == "message":
        _, sender, size, share, copies = event
        assert isinstance(sender, int) and isinstance(size, float) and isinstance(share, float)
        assert isinstance(copies, int)
        tally.count(sender, size, size * share, copies)
    else:
        _, server, length = event
        assert isinstance(server, int) and isinstance(length, int)
        tally.count_served(server, length)


@given(events, st.integers(0, 30))
def test_tallies_kept_per_node_and_summed_equal_one_tally_of_everything(
    events: list[tuple[object, ...]], cut: int
) -> None:
    """Live sums every node's own tally; the simulator keeps one. Both give the same summary."""
    whole: WireBytes[int] = WireBytes()
    first: WireBytes[int] = WireBytes()
    second: WireBytes[int] = WireBytes()
    for i, event in enumerate(events):
        _apply(whole, event)
        _apply(first if i < cut else second, event)
    assert wire_total([first, second], 4) == whole.summary(4)
    summary = whole.summary(4)
    kinds = summary["payload"] + summary["control"] + summary["served"]
    assert summary["total"] == kinds == sum(whole.sent_by.values())


def test_a_message_counts_its_declared_size_once_per_receiver_split_as_declared() -> None:
    tally: WireBytes[str] = WireBytes()
    tally.count("a", 0.01, 0.004, 3)
    tally.count_served("b", 123)
    assert (tally.payload, tally.control, tally.served) == (12_000, 18_000, 123)
    assert tally.sent_by == {"a": 30_000, "b": 123}
    assert tally.summary(2) == {
        "payload": 12_000,
        "control": 18_000,
        "served": 123,
        "total": 30_123,
        "per_node_mean": 15_061.5,
        "per_node_max": 30_000,
    }
    assert WireBytes[str]().summary(0)["per_node_mean"] == 0.0


@pytest.mark.parametrize(
    ("size_mb", "payload_mb", "what"),
    [
        (-1.0, 0.0, "message size"),
        (math.nan, 0.0, "message size"),
        (math.inf, 0.0, "message size"),
        (1.0, -0.1, "payload"),
        (1.0, 1.5, "payload"),
        (1.0, math.nan, "payload"),
        (1.0, math.inf, "payload"),
    ],
)
def test_a_payload_that_is_not_a_share_of_its_declared_size_is_refused(
    size_mb: float, payload_mb: float, what: str
) -> None:
    with pytest.raises(ValueError, match=what):
        check_payload(size_mb, payload_mb)
    with pytest.raises(ValueError, match=what):
        WireBytes[int]().count(0, size_mb, payload_mb, 1)


def test_the_whole_message_may_be_payload_or_none_of_it() -> None:
    assert check_payload(2.0, 2.0) == 2.0
    assert check_payload(0.0, 0.0) == 0.0
