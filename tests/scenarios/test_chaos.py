"""The chaos format: parsing every action, naming what is wrong, and the clock that decides when actions are due
and when restarted or healed nodes have caught up."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.scenarios.chaos import (
    At,
    ChaosClock,
    Heal,
    Kill,
    Partition,
    Restart,
    SetLink,
    TimedAction,
    check_names,
    parse_chaos,
)
from chainlab.scenarios.experiment import Experiment

DEMO: dict[str, Any] = yaml.safe_load(open("experiments/demo.yaml"))  # noqa: SIM115


def test_every_action_parses_to_its_type() -> None:
    actions = parse_chaos([
        {"at": {"height": 1, "phase": 2}, "kill": {"node": "miner-2"}},
        {"at": {"round": 260}, "restart": {"node": "miner-2"}},
        {"at": {"round": 120}, "partition": {"groups": [["miner-0"], ["miner-1", "requester"]]}},
        {"at": {"round": 300}, "heal": {}},
        {"at": {"round": 10}, "set-link": {"a": "miner-0", "b": "miner-1", "latency_rounds": 3, "loss": 0.1}},
        {"at": {"round": 11}, "heal": None},
    ])  # fmt: skip
    assert [a.action for a in actions] == [
        Kill("miner-2"),
        Restart("miner-2"),
        Partition((("miner-0",), ("miner-1", "requester"))),
        Heal(),
        SetLink("miner-0", "miner-1", 3, 0.0, 0.1, True),
        Heal(),
    ]
    assert actions[0].at == At(height=1, phase=2) and actions[1].at == At(round=260)
    assert actions[2].nodes() == ("miner-0", "miner-1", "requester")
    assert actions[0].describe() == "chaos[0] kill miner-2 at height 1 phase 2"


@pytest.mark.parametrize(
    ("chaos", "message"),
    [
        ({"at": {"round": 1}}, r"chaos\[0\] needs exactly one action"),
        ([{"kill": {"node": "m"}}], r"chaos\[0\] needs `at`"),
        ([{"at": {"round": 1}, "kill": {"node": "m"}, "heal": {}}], "exactly one action"),
        ([{"at": {"round": 1}, "explode": {}}], "unknown action 'explode'"),
        ([{"at": {"round": -1}, "heal": {}}], r"chaos\[0\]\.at\.round must be an integer >= 0"),
        ([{"at": {"round": 1, "height": 2}, "heal": {}}], "exactly one of round or height"),
        ([{"at": {"round": 1, "phase": 2}, "heal": {}}], "phase goes with a height"),
        ([{"at": {"height": 0}, "heal": {}}], r"at\.height must be an integer >= 1"),
        ([{"at": {"height": 1, "phase": 0}, "heal": {}}], r"at\.phase must be an integer >= 1"),
        ([{"at": {"when": 1}, "heal": {}}], "unknown field"),
        ([{"at": {"round": 1}, "kill": {}}], r"chaos\[0\]\.kill needs node"),
        ([{"at": {"round": 1}, "kill": {"node": ""}}], r"kill\.node must be a node name"),
        ([{"at": {"round": 1}, "restart": "miner-0"}], r"restart must be a mapping"),
        ([{"at": {"round": 1}, "heal": {"x": 1}}], "unknown field"),
        ([{"at": {"round": 1}, "partition": {"groups": [["a"]]}}], "at least two lists"),
        ([{"at": {"round": 1}, "partition": {"groups": [["a"], []]}}], r"groups\[1\] must be a non-empty list"),
        ([{"at": {"round": 1}, "partition": {"groups": [["a"], ["a"]]}}], "names a more than once"),
        ([{"at": {"round": 1}, "set-link": {"a": "x", "b": "y"}}], "needs latency_rounds"),
        ([{"at": {"round": 1}, "set-link": {"a": "x", "b": "x", "latency_rounds": 1}}], "two different nodes"),
        ([{"at": {"round": 1}, "set-link": {"a": "x", "b": "y", "latency_rounds": 1, "loss": 1.5}}], r"loss must"),
        ([{"at": {"round": 1}, "set-link": {"a": "x", "b": "y", "latency_rounds": 1, "bandwidth": -1}}], "bandwidth"),
        ([{"at": {"round": 1}, "set-link": {"a": "x", "b": "y", "latency_rounds": 1, "up": "no"}}], r"up must be"),
        ([{"at": {"round": 1}, "set-link": {"a": "x", "b": "y", "latency_rounds": 1.5}}], "latency_rounds must"),
        ([{"at": {"round": 1}, "byzantine": {"node": "x", "behaviour": ""}}], "behaviour must be"),
        ([{"at": {"round": 1}, "heal": {}}, "kill"], r"chaos\[1\] must be a mapping"),
        ("kill miner-0", "chaos must be a list"),
    ],
)
def test_bad_scenarios_are_named_by_entry_and_field(chaos: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_chaos(chaos if isinstance(chaos, list | str) else [chaos])


def test_the_experiment_validates_its_chaos_with_the_protocol() -> None:
    exp = Experiment.from_mapping({**DEMO, "chaos": [{"at": {"height": 1, "phase": 3}, "kill": {"node": "miner-0"}}]})
    assert exp.get("chaos")
    with pytest.raises(ValueError, match=r"chaos\[0\]\.at\.phase: bagchain has no phase 4"):
        Experiment.from_mapping({**DEMO, "chaos": [{"at": {"height": 1, "phase": 4}, "heal": {}}]})
    liar = {"node": "miner-0", "behaviour": "liar-liar"}
    with pytest.raises(ValueError, match=r"behaviour 'liar-liar' is not one of bagchain's \("):
        Experiment.from_mapping({**DEMO, "chaos": [{"at": {"round": 1}, "byzantine": liar}]})
    with pytest.raises(ValueError, match=r"chaos\[0\]\.kill needs node"):
        Experiment.from_mapping({**DEMO, "chaos": [{"at": {"round": 1}, "kill": {}}]})


def test_names_are_checked_against_the_deployment() -> None:
    actions = parse_chaos([{"at": {"round": 1}, "set-link": {"a": "miner-0", "b": "miner-9", "latency_rounds": 1}}])
    check_names(actions, ["miner-0", "miner-9"])
    with pytest.raises(ValueError, match=r"chaos\[0\] set-link: no node 'miner-9' \(known: miner-0, requester\)"):
        check_names(actions, ["miner-0", "requester"])


names = st.sampled_from(["miner-0", "miner-1", "miner-2", "validator-0", "requester"])
ats = st.one_of(
    st.builds(lambda r: {"round": r}, st.integers(0, 10_000)),
    st.builds(lambda h: {"height": h}, st.integers(1, 50)),
    st.builds(lambda h, p: {"height": h, "phase": p}, st.integers(1, 50), st.integers(1, 3)),
)
actions = st.one_of(
    st.builds(lambda n: {"kill": {"node": n}}, names),
    st.builds(lambda n: {"restart": {"node": n}}, names),
    st.just({"heal": {}}),
    st.builds(
        lambda a, b, lat, bw, loss, up: {
            "set-link": {"a": a, "b": b, "latency_rounds": lat, "bandwidth": bw, "loss": loss, "up": up}
        },
        st.just("miner-0"),
        st.just("miner-1"),
        st.integers(0, 100),
        st.floats(0, 10),
        st.floats(0, 1),
        st.booleans(),
    ),
    st.builds(
        lambda people: {"partition": {"groups": [people[:1], people[1:]]}},
        st.lists(names, min_size=2, max_size=5, unique=True),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.builds(lambda at, action: {"at": at, **action}, ats, actions), max_size=8))
def test_valid_scenarios_parse_and_report_what_was_written(entries: list[dict[str, Any]]) -> None:
    parsed = parse_chaos(entries)
    assert [p.index for p in parsed] == list(range(len(entries)))
    for entry, timed in zip(entries, parsed, strict=True):
        written = timed.to_mapping()
        assert written["at"] == entry["at"] and written["action"] == timed.kind
        kind = timed.kind
        fields = {k: v for k, v in written.items() if k not in ("index", "action", "at")}
        expected = entry[kind]
        if kind == "set-link":
            assert fields == {**expected, "bandwidth": float(expected["bandwidth"]), "loss": float(expected["loss"])}
        else:
            assert fields == expected


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12))  # fmt: skip
def test_anything_else_is_a_value_error_never_a_crash(data: object) -> None:
    with contextlib.suppress(ValueError):
        parse_chaos(data)


def _clock(*entries: dict[str, Any], observer: str = "validator-0") -> ChaosClock:
    return ChaosClock(parse_chaos(list(entries)), {1: 0, 2: 100, 3: 140}.get, observer)


def test_the_clock_fires_rounds_heights_and_phases_once_in_list_order() -> None:
    clock = _clock(
        {"at": {"height": 1, "phase": 2}, "kill": {"node": "miner-2"}},
        {"at": {"round": 50}, "heal": {}},
        {"at": {"height": 2}, "kill": {"node": "validator-0"}},
        {"at": {"height": 2, "phase": 2}, "restart": {"node": "miner-2"}},
    )
    assert clock.next_round() == 50  # phase 2 of height 1 is at 100, height 2 unknown yet
    assert clock.due(49, {"miner-0": 0}) == []
    assert [t.index for t in clock.due(50, {"miner-0": 0})] == [1]
    assert [t.index for t in clock.due(100, {"miner-0": 0})] == [0]
    assert clock.due(100, {"miner-0": 0}) == []  # once
    # Height 1 at round 180: phase 2 of height 2 falls at 280, height 2 itself later (at 330).
    assert clock.due(180, {"miner-0": 1, "validator-0": 0}) == [] and clock.next_round() == 280
    assert clock.due(279, {"miner-0": 1}) == []
    assert [t.index for t in clock.due(280, {"miner-0": 1})] == [3]
    assert [t.index for t in clock.due(330, {"miner-0": 2})] == [2]
    assert not clock.pending


def test_a_moment_already_past_fires_at_once() -> None:
    clock = _clock({"at": {"height": 1, "phase": 3}, "kill": {"node": "miner-0"}})
    assert [t.index for t in clock.due(5, {"miner-1": 2})] == [0]  # height 2 seen first: phase 3 of 1 is past


def test_catch_up_is_the_watched_nodes_reaching_the_network_and_the_observer() -> None:
    clock = _clock(
        {"at": {"round": 10}, "partition": {"groups": [["miner-0"], ["miner-1", "validator-0"]]}},
        {"at": {"round": 20}, "heal": {}},
        {"at": {"round": 30}, "restart": {"node": "validator-0"}},
    )
    for timed in clock.due(10, {}):
        clock.took_effect(timed, 10, {})
    heights = {"miner-0": 1, "miner-1": 3, "validator-0": 3}
    (heal,) = clock.due(20, heights)
    clock.took_effect(heal, 20, heights)
    clock.observe(20, heights)
    assert clock.watching()
    clock.observe(25, {"miner-0": 3, "miner-1": 4, "validator-0": 4})  # reached the old best, not the observer
    assert clock.effects[1].caught_up == {"miner-0": None, "miner-1": 20, "validator-0": 20}
    clock.observe(27, {"miner-0": 4, "miner-1": 4, "validator-0": 4})
    (restart,) = clock.due(30, {"miner-0": 4, "miner-1": 4})
    clock.took_effect(restart, 30, {"miner-0": 4, "miner-1": 4})
    clock.observe(31, {"miner-0": 4, "miner-1": 4, "validator-0": 0})  # the observer itself: against the others
    clock.observe(40, {"miner-0": 5, "miner-1": 5, "validator-0": 5})
    report = clock.report()
    assert report[1]["caught_up_round"] == {"miner-0": 27, "miner-1": 20, "validator-0": 20}
    assert report[1]["caught_up_after_rounds"] == {"miner-0": 7, "miner-1": 0, "validator-0": 0}
    assert report[2]["caught_up_round"] == {"validator-0": 40} and report[2]["round"] == 30
    assert not clock.watching()


def test_a_node_that_never_catches_up_is_reported_as_none() -> None:
    clock = _clock({"at": {"round": 0}, "restart": {"node": "miner-0"}})
    (restart,) = clock.due(0, {"miner-0": 0, "validator-0": 2})
    clock.took_effect(restart, 0, {"validator-0": 2})
    clock.observe(9, {"miner-0": 0, "validator-0": 2})
    assert clock.report()[0]["caught_up_round"] == {"miner-0": None}
    assert clock.report()[0]["caught_up_after_rounds"] == {"miner-0": None}


def test_actions_never_due_report_no_round() -> None:
    clock = _clock({"at": {"height": 9}, "heal": {}})
    clock.due(100, {"miner-0": 1})
    assert clock.report()[0]["round"] is None and not clock.waits_for_a_round()


def test_timed_action_mapping_for_results() -> None:
    timed = TimedAction(3, At(round=5), SetLink("a", "b", 2, 0.5, 0.01, False))
    assert timed.to_mapping() == {"index": 3, "action": "set-link", "at": {"round": 5}, "a": "a", "b": "b",
                                  "latency_rounds": 2, "bandwidth": 0.5, "loss": 0.01, "up": False}  # fmt: skip


def test_live_counts_height_one_from_when_the_network_came_up() -> None:
    clock = _clock({"at": {"height": 1, "phase": 2}, "kill": {"node": "miner-2"}})
    clock.begin(180)  # every service up at round 180 of the plan's clock
    assert clock.next_round() == 280 and clock.due(279, {"miner-0": 0}) == []
    assert [t.index for t in clock.due(280, {"miner-0": 0})] == [0]
