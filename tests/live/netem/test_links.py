import pytest

from chainlab.live.netem.links import (
    BYTES_PER_MB,
    DedupCache,
    LinkTable,
    LossDraws,
    delay_seconds,
    partition_groups,
    transfer_rounds,
)
from chainlab.live.netem.topology import LinkSpec, Topology, from_edges


def _id(i: int) -> bytes:
    return bytes([i + 1]) * 32


def _topology(edges: list[tuple[int, int, LinkSpec]], n: int = 4) -> Topology:
    nodes = {_id(i): f"127.0.0.1:{7000 + i}" for i in range(n)}
    return from_edges(nodes, [(_id(a), _id(b), spec) for a, b, spec in edges])


def _line(n: int = 4) -> Topology:
    return _topology([(i, i + 1, LinkSpec()) for i in range(n - 1)], n)


def test_delay_is_latency_plus_size_over_bandwidth() -> None:
    spec = LinkSpec(latency_rounds=1.0, bandwidth_mb_per_round=2.0)
    assert transfer_rounds(spec, 4 * BYTES_PER_MB) == pytest.approx(3.0)
    assert delay_seconds(spec, 4 * BYTES_PER_MB, 0.5) == pytest.approx(1.5)
    # The size-dependent part doubles when the size doubles.
    small = delay_seconds(spec, BYTES_PER_MB, 0.5) - delay_seconds(spec, 0, 0.5)
    large = delay_seconds(spec, 2 * BYTES_PER_MB, 0.5) - delay_seconds(spec, 0, 0.5)
    assert large == pytest.approx(2 * small)


def test_zero_bandwidth_is_unlimited() -> None:
    spec = LinkSpec(latency_rounds=2.0, bandwidth_mb_per_round=0.0)
    assert delay_seconds(spec, 0, 0.1) == delay_seconds(spec, 10**9, 0.1) == pytest.approx(0.2)


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError):
        transfer_rounds(LinkSpec(), -1)


def test_loss_rate_matches_the_configured_probability_and_is_seeded() -> None:
    draws = LossDraws(7, _id(0))
    rate = sum(draws.lost(0.3) for _ in range(20_000)) / 20_000
    assert rate == pytest.approx(0.3, abs=0.02)
    again = LossDraws(7, _id(0))
    other = LossDraws(7, _id(1))
    seq = [again.lost(0.5) for _ in range(64)]
    replay = LossDraws(7, _id(0))
    assert [replay.lost(0.5) for _ in range(64)] == seq
    assert [other.lost(0.5) for _ in range(64)] != seq
    assert not any(LossDraws(1).lost(0.0) for _ in range(1000))


def test_partition_cuts_links_between_groups_and_heal_restores_them() -> None:
    table = LinkTable(_id(1), _line(), seed=0)
    assert table.partition([[_id(0), _id(1)], [_id(2), _id(3)]]) == 1
    assert not table.link(_id(2)).up
    assert table.link(_id(0)).up
    assert table.up_neighbours() == [_id(0)]
    assert table.heal() == 0
    assert table.up_neighbours() == sorted([_id(0), _id(2)])


def test_nodes_in_no_group_keep_their_links() -> None:
    table = LinkTable(_id(1), _line(), seed=0)
    assert table.partition([[_id(0)], [_id(3)]]) == 0


def test_a_new_partition_replaces_the_old_one() -> None:
    table = LinkTable(_id(1), _line(), seed=0)
    table.partition([[_id(1)], [_id(2)]])
    assert table.partition([[_id(0)], [_id(1)]]) == 1
    assert table.link(_id(2)).up
    assert not table.link(_id(0)).up


def test_a_disabled_link_stays_down_after_heal() -> None:
    table = LinkTable(_id(1), _line(), seed=0)
    table.set_link(_id(0), LinkSpec(), enabled=False)
    table.partition([[_id(1)], [_id(2)]])
    assert table.heal() == 1
    assert not table.link(_id(0)).up


def test_overlapping_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="more than one"):
        partition_groups([[_id(0), _id(1)], [_id(1)]])


def test_set_link_validates_and_rejects_unknown_peers() -> None:
    table = LinkTable(_id(1), _line(), seed=0)
    with pytest.raises(KeyError):
        table.set_link(_id(3), LinkSpec(), enabled=True)
    with pytest.raises(ValueError):
        LinkSpec(latency_rounds=-1.0)
    with pytest.raises(ValueError):
        LinkSpec(loss=1.0)


def test_dedup_cache_is_bounded_and_forgets_the_oldest() -> None:
    cache = DedupCache(capacity=3)
    assert [cache.add(bytes([i])) for i in range(4)] == [True] * 4
    assert len(cache) == 3
    assert bytes([0]) not in cache
    assert not cache.add(bytes([3]))
    assert cache.add(bytes([0]))
    with pytest.raises(ValueError):
        DedupCache(0)


def test_send_plan_skips_excluded_and_counts_drops() -> None:
    topology = _topology([(0, 1, LinkSpec()), (0, 2, LinkSpec(latency_rounds=2.0)), (0, 3, LinkSpec())])
    table = LinkTable(_id(0), topology, seed=0)
    table.partition([[_id(0)], [_id(3)]])
    plan, dropped = table.send_plan(100, 0.5, exclude=[_id(1)])
    assert [peer for peer, _ in plan] == [_id(2)]
    assert plan[0][1] == pytest.approx(1.0)
    assert dropped == [_id(3)]
    assert table.link(_id(2)).counters.messages_sent == 1
    assert table.link(_id(2)).counters.bytes_sent == 100
    assert table.link(_id(3)).counters.messages_dropped == 1
    assert table.link(_id(1)).counters.messages_sent == 0


def _diamond() -> Topology:
    return _topology(
        [
            (0, 1, LinkSpec(latency_rounds=1.0, bandwidth_mb_per_round=10.0)),
            (1, 3, LinkSpec(latency_rounds=1.0, bandwidth_mb_per_round=2.0)),
            (0, 2, LinkSpec(latency_rounds=5.0)),
            (2, 3, LinkSpec(latency_rounds=5.0)),
        ]
    )


def test_route_takes_the_lowest_latency_path_with_its_bottleneck_bandwidth() -> None:
    route = LinkTable(_id(0), _diamond()).route(_id(3))
    assert route is not None
    assert route.path == (_id(1), _id(3))
    assert route.latency_rounds == pytest.approx(2.0)
    assert route.bandwidth_mb_per_round == pytest.approx(2.0)
    assert route.delay_seconds(2 * BYTES_PER_MB, 0.1) == pytest.approx(0.3)


def test_route_goes_around_a_cut_and_fails_when_none_is_left() -> None:
    table = LinkTable(_id(0), _diamond())
    table.partition([[_id(1)], [_id(3)]])
    route = table.route(_id(3))
    assert route is not None
    assert route.path == (_id(2), _id(3))
    assert route.latency_rounds == pytest.approx(10.0)
    assert route.bandwidth_mb_per_round == 0.0
    table.partition([[_id(0)], [_id(1), _id(2), _id(3)]])
    assert table.route(_id(3)) is None
    table.heal()
    table.set_link(_id(1), LinkSpec(), enabled=False)
    route = table.route(_id(3))
    assert route is not None and route.path == (_id(2), _id(3))


def test_route_to_an_unknown_node_is_an_error_and_to_itself_is_empty() -> None:
    table = LinkTable(_id(0), _diamond())
    with pytest.raises(KeyError):
        table.route(b"\x99" * 32)
    route = table.route(_id(0))
    assert route is not None and route.path == ()


def test_a_table_needs_its_own_node_in_the_topology() -> None:
    with pytest.raises(ValueError):
        LinkTable(b"\x99" * 32, _line())
