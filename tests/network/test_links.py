"""Tests for the one hop rule: keyed bandwidth and loss draws, link settings, message IDs and partitions."""

import hashlib
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.network.links import (
    BANDWIDTH_FLOOR_RATIO,
    BANDWIDTH_SIGMA_RATIO,
    LinkSpec,
    hop_array,
    hop_rounds,
    is_cut,
    message_id,
    partition_groups,
    rng_of,
    undrawn_limit_mb,
    whole_rounds,
)

_specs = st.builds(
    LinkSpec,
    latency_rounds=st.integers(0, 20),
    bandwidth_mb_per_round=st.one_of(st.just(0.0), st.floats(0.01, 100.0)),
    loss=st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
)
_ids = st.binary(min_size=1, max_size=40)
_sizes = st.floats(0.0, 50.0)
_seeds = st.integers(-(2**70), 2**70)


@settings(max_examples=200, deadline=None)
@given(seed=_seeds, mid=_ids, links=st.lists(_specs, max_size=12), size=_sizes)
def test_hops_are_a_pure_function_bounded_by_the_link_and_at_least_one_round(
    seed: int, mid: bytes, links: list[LinkSpec], size: float
) -> None:
    hops = hop_rounds(seed, mid, links, size)
    assert hops == hop_rounds(seed, mid, list(links), size)
    assert len(hops) == len(links)
    for spec, hop in zip(links, hops, strict=True):
        if hop is None:
            assert spec.loss > 0.0
            continue
        assert hop >= 1
        bandwidth = spec.bandwidth_mb_per_round
        if bandwidth == 0.0:
            assert hop == max(1, spec.latency_rounds)
        else:
            slowest = max(1, math.ceil(size / (BANDWIDTH_FLOOR_RATIO * bandwidth)))
            assert 1 + spec.latency_rounds <= hop <= slowest + spec.latency_rounds


@settings(max_examples=100, deadline=None)
@given(seed=_seeds, mid=_ids, links=st.lists(_specs, min_size=1, max_size=8), small=_sizes, extra=_sizes)
def test_a_bigger_message_is_never_faster_and_loss_does_not_depend_on_size(
    seed: int, mid: bytes, links: list[LinkSpec], small: float, extra: float
) -> None:
    before = hop_rounds(seed, mid, links, small)
    after = hop_rounds(seed, mid, links, small + extra)
    for a, b in zip(before, after, strict=True):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert b >= a


@settings(max_examples=100, deadline=None)
@given(
    seed=_seeds,
    mid=_ids,
    links=st.lists(_specs, min_size=2, max_size=8),
    index=st.integers(0, 7),
    other=_specs,
    size=_sizes,
)
def test_a_links_hop_depends_only_on_its_own_settings_and_index(
    seed: int, mid: bytes, links: list[LinkSpec], index: int, other: LinkSpec, size: float
) -> None:
    # What lets a sidecar that knows only its own links' current settings agree with the simulator.
    index %= len(links)
    changed = [other if i != index else spec for i, spec in enumerate(links)]
    assert hop_rounds(seed, mid, links, size)[index] == hop_rounds(seed, mid, changed, size)[index]


@settings(max_examples=50, deadline=None)
@given(seed=_seeds, mid=_ids, n=st.integers(1, 10), size=_sizes)
def test_no_loss_never_drops_and_total_loss_always_does(seed: int, mid: bytes, n: int, size: float) -> None:
    assert None not in hop_rounds(seed, mid, [LinkSpec(0, 0.5, 0.0)] * n, size)
    assert hop_rounds(seed, mid, [LinkSpec(0, 0.5, 1.0)] * n, size) == [None] * n


def test_draws_vary_by_message_like_the_papers_normal_bandwidth() -> None:
    # b ~ N(0.5, 0.1^2): ceil(2 / b) is 4 for b in [0.5, 0.667), the most likely bucket, and 5 next.
    link = [LinkSpec(latency_rounds=0, bandwidth_mb_per_round=0.5)]
    counts = Counter(hop_rounds(0, i.to_bytes(4, "big"), link, 2.0)[0] for i in range(2000))
    assert [hop for hop, _ in counts.most_common(2)] == [4, 5]
    # Another seed is another network: the same messages draw differently.
    assert [hop_rounds(1, i.to_bytes(4, "big"), link, 2.0) for i in range(50)] != [
        hop_rounds(0, i.to_bytes(4, "big"), link, 2.0) for i in range(50)
    ]


def test_loss_rate_matches_the_configured_probability() -> None:
    link = [LinkSpec(latency_rounds=0, bandwidth_mb_per_round=0.5, loss=0.3)]
    lost = sum(hop_rounds(5, i.to_bytes(4, "big"), link, 1.0)[0] is None for i in range(4000))
    assert lost / 4000 == pytest.approx(0.3, abs=0.03)


def test_the_papers_block_sizes_at_their_bandwidth() -> None:
    # At 0.5 MB per round the median hop of a Key Block (6 MB) is 12 rounds, of a MiniBlock (2 MB) 4.
    link = [LinkSpec(latency_rounds=0, bandwidth_mb_per_round=0.5)]
    for size, median in ((6.0, 12), (2.0, 4), (0.01, 1)):
        hops = sorted(hop_rounds(3, i.to_bytes(4, "big"), link, size)[0] or 0 for i in range(1001))
        assert hops[500] == median
    # Unlimited bandwidth: the latency alone, whatever the size (the full network's constant delay).
    assert hop_rounds(3, b"x", [LinkSpec(latency_rounds=2, bandwidth_mb_per_round=0.0)], 6.0) == [2]


def test_message_id_is_sha256_of_origin_then_wire_bytes() -> None:
    assert message_id(b"\x01" * 32, b"payload") == hashlib.sha256(b"\x01" * 32 + b"payload").digest()
    assert message_id(b"\x01" * 32, b"p") != message_id(b"\x02" * 32, b"p")


def test_link_spec_validates_and_normalises() -> None:
    assert LinkSpec(2.0, 1, 0) == LinkSpec(2, 1.0, 0.0)  # type: ignore[arg-type]
    assert LinkSpec.from_mapping({"loss": 0.5}, LinkSpec(3, 2.0, 0.0)) == LinkSpec(3, 2.0, 0.5)
    assert LinkSpec(loss=1.0).loss == 1.0
    for bad in ({"latency_rounds": 0.5}, {"latency_rounds": -1}, {"bandwidth_mb_per_round": -1.0}, {"loss": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LinkSpec.from_mapping(bad)
    with pytest.raises(ValueError, match="unknown link key"):
        LinkSpec.from_mapping({"speed": 1})
    assert whole_rounds(3.0) == 3
    with pytest.raises(ValueError):
        whole_rounds(True)


def test_partitions_cut_between_listed_groups_only() -> None:
    group = partition_groups([[0, 1], [2]])
    assert is_cut(group, 0, 2) and not is_cut(group, 0, 1)
    assert not is_cut(group, 0, 3)  # an unlisted node keeps its links
    with pytest.raises(ValueError, match="more than one"):
        partition_groups([[0, 1], [1]])


def _one_link_at_a_time(seed: int, mid: bytes, links: list[LinkSpec], size: float) -> list[int | None]:
    """The hop rule written out per link, as the paper states it: the reference the vectorized rule must match."""
    rng = np.random.default_rng(
        int.from_bytes(hashlib.sha256(b"chainlab.network.hop:" + str(seed).encode() + b":" + mid).digest(), "big")
    )
    normal, uniform = rng.standard_normal(len(links)), rng.random(len(links))
    hops: list[int | None] = []
    for spec, z, u in zip(links, normal.tolist(), uniform.tolist(), strict=True):
        if u < spec.loss:
            hops.append(None)
            continue
        b = spec.bandwidth_mb_per_round
        transfer = 0
        if b > 0.0:
            drawn = max(b + BANDWIDTH_SIGMA_RATIO * b * z, BANDWIDTH_FLOOR_RATIO * b)
            transfer = max(1, math.ceil(size / drawn))
        hops.append(max(1, transfer + spec.latency_rounds))
    return hops


@settings(max_examples=300, deadline=None)
@given(seed=_seeds, mid=_ids, links=st.lists(_specs, max_size=30), size=_sizes)
def test_the_vectorized_rule_matches_the_rule_link_by_link(
    seed: int, mid: bytes, links: list[LinkSpec], size: float
) -> None:
    assert hop_rounds(seed, mid, links, size) == _one_link_at_a_time(seed, mid, links, size)


@settings(max_examples=200, deadline=None)
@given(seed=_seeds, mids=st.lists(_ids, min_size=2, max_size=4), links=st.lists(_specs, min_size=1, max_size=12))
def test_up_to_the_undrawn_limit_no_draw_changes_a_lossless_hop(
    seed: int, mids: list[bytes], links: list[LinkSpec]
) -> None:
    latency = np.array([spec.latency_rounds for spec in links], dtype=np.int64)
    bandwidth = np.array([spec.bandwidth_mb_per_round for spec in links], dtype=np.float64)
    lossless = np.zeros(len(links))
    limit = undrawn_limit_mb(bandwidth)
    for size in (0.0, limit / 2, limit) if math.isfinite(limit) else (0.0, 1e6):
        hops = [hop_array(seed, mid, latency, bandwidth, lossless, size).tolist() for mid in mids]
        assert hops == [np.maximum(1, latency + (bandwidth > 0)).tolist()] * len(mids)


def test_the_undrawn_limit_is_the_least_bandwidth_floor_and_a_bigger_message_is_drawn() -> None:
    bandwidth = np.array([0.0, 2.0, 0.5])
    assert undrawn_limit_mb(bandwidth) == BANDWIDTH_FLOOR_RATIO * 0.5
    assert undrawn_limit_mb(np.array([0.0])) == math.inf
    latency, lossless = np.zeros(1, dtype=np.int64), np.zeros(1)
    above = [hop_array(1, bytes([i]), latency, np.array([0.5]), lossless, 0.5).item() for i in range(50)]
    assert len(set(above)) > 1  # 0.5 MB at 0.5 MB per round: one round or two, by the draw


@settings(max_examples=300, deadline=None)
@given(key=st.binary(min_size=1, max_size=40), zeros=st.integers(0, 40))
def test_the_generator_is_default_rng_of_the_key_as_an_integer(key: bytes, zeros: int) -> None:
    key = bytes(zeros) + key[zeros:]  # high zero words are left out of an integer's words
    fast = rng_of(key).random(4)
    assert np.array_equal(fast, np.random.default_rng(int.from_bytes(key, "big")).random(4))
