import pytest

from chainlab.live.netem.links import BYTES_PER_MB, DedupCache, LinkTable, Route, partition_groups
from chainlab.live.netem.topology import LinkSpec, Topology, from_edges
from chainlab.network.links import hop_rounds


def _id(i: int) -> bytes:
    return bytes([i + 1]) * 32


def _topology(edges: list[tuple[int, int, LinkSpec]], n: int = 4) -> Topology:
    nodes = {_id(i): f"127.0.0.1:{7000 + i}" for i in range(n)}
    return from_edges(nodes, [(_id(a), _id(b), spec) for a, b, spec in edges])


def _line(n: int = 4) -> Topology:
    return _topology([(i, i + 1, LinkSpec()) for i in range(n - 1)], n)


def test_a_fetch_route_charges_latency_plus_real_bytes_over_its_bottleneck() -> None:
    route = Route((_id(1),), latency_rounds=1, bandwidth_mb_per_round=2.0)
    assert route.rounds(4 * BYTES_PER_MB) == pytest.approx(3.0)
    assert route.delay_seconds(4 * BYTES_PER_MB, 0.5) == pytest.approx(1.5)
    unlimited = Route((_id(1),), latency_rounds=2, bandwidth_mb_per_round=0.0)
    assert unlimited.delay_seconds(0, 0.1) == unlimited.delay_seconds(10**9, 0.1) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        route.rounds(-1)


def test_hops_are_the_shared_rule_over_the_whole_topology_in_draw_order() -> None:
    specs = [LinkSpec(0, 0.5), LinkSpec(1, 0.25), LinkSpec(0, 1.0, loss=0.5)]
    topology = _topology([(0, 1, specs[0]), (1, 2, specs[1]), (2, 3, specs[2])])
    for i in range(20):
        message = i.to_bytes(2, "big")
        expected = hop_rounds(9, message, specs, 6.0)
        assert LinkTable(_id(1), topology, seed=9).hops(message, 6.0) == {_id(0): expected[0], _id(2): expected[1]}
        assert LinkTable(_id(3), topology, seed=9).hops(message, 6.0) == {_id(2): expected[2]}


def test_own_run_time_settings_change_own_hops_only() -> None:
    table = LinkTable(_id(1), _line(), seed=0)
    before = table.hops(b"m", 2.0)
    table.set_link(_id(2), LinkSpec(latency_rounds=7, bandwidth_mb_per_round=0.0), enabled=True)
    after = table.hops(b"m", 2.0)
    assert after[_id(0)] == before[_id(0)]
    assert after[_id(2)] == 7


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
        LinkSpec(latency_rounds=-1)
    with pytest.raises(ValueError):
        LinkSpec(loss=1.5)


def test_dedup_cache_is_bounded_and_forgets_the_oldest() -> None:
    cache = DedupCache(capacity=3)
    assert [cache.add(bytes([i])) for i in range(4)] == [True] * 4
    assert len(cache) == 3
    assert bytes([0]) not in cache
    assert not cache.add(bytes([3]))
    assert cache.add(bytes([0]))
    with pytest.raises(ValueError):
        DedupCache(0)
    cache.forget(bytes([0]))
    cache.forget(bytes([0]))  # idempotent
    assert bytes([0]) not in cache and cache.add(bytes([0]))


def test_send_plan_skips_excluded_counts_drops_and_records_hop_delays() -> None:
    topology = _topology([(0, 1, LinkSpec()), (0, 2, LinkSpec(latency_rounds=2)), (0, 3, LinkSpec())])
    table = LinkTable(_id(0), topology, seed=0)
    table.partition([[_id(0)], [_id(3)]])
    plan, dropped = table.send_plan(b"m", 6.0, 100, exclude=[_id(1)])
    # Unlimited bandwidth: the latency alone, whatever the declared size.
    assert plan == [(_id(2), 2)]
    assert dropped == [_id(3)]
    counters = table.link(_id(2)).counters
    assert (counters.messages_sent, counters.bytes_sent, counters.last_hop_rounds) == (1, 100, 2)
    assert counters.hop_delays == {(6.0, 2): 1}
    assert table.link(_id(3)).counters.messages_dropped == 1
    assert table.link(_id(1)).counters.messages_sent == 0
    with pytest.raises(ValueError):
        table.send_plan(b"m", -1.0, 100)


def test_a_lost_draw_drops_on_that_link() -> None:
    table = LinkTable(_id(0), _topology([(0, 1, LinkSpec(loss=1.0))]), seed=0)
    assert table.send_plan(b"m", 1.0, 10) == ([], [_id(1)])
    assert table.link(_id(1)).counters.messages_dropped == 1


def _diamond() -> Topology:
    return _topology(
        [
            (0, 1, LinkSpec(latency_rounds=1, bandwidth_mb_per_round=10.0)),
            (1, 3, LinkSpec(latency_rounds=1, bandwidth_mb_per_round=2.0)),
            (0, 2, LinkSpec(latency_rounds=5)),
            (2, 3, LinkSpec(latency_rounds=5)),
        ]
    )


def test_route_takes_the_lowest_latency_path_with_its_bottleneck_bandwidth() -> None:
    route = LinkTable(_id(0), _diamond()).route(_id(3))
    assert route is not None
    assert route.path == (_id(1), _id(3))
    assert route.latency_rounds == 2
    assert route.bandwidth_mb_per_round == pytest.approx(2.0)
    assert route.delay_seconds(2 * BYTES_PER_MB, 0.1) == pytest.approx(0.3)


def test_route_goes_around_a_cut_and_fails_when_none_is_left() -> None:
    table = LinkTable(_id(0), _diamond())
    table.partition([[_id(1)], [_id(3)]])
    route = table.route(_id(3))
    assert route is not None
    assert route.path == (_id(2), _id(3))
    assert route.latency_rounds == 10
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
