"""results.json's `round_trace`: (round, wall seconds, observer height) sampled as rounds advance, bounded."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.results import MEASURED_KEYS, without_measurements
from chainlab.sim.experiment import RoundTrace, run

DFL: dict[str, Any] = {
    "name": "trace",
    "seed": 3,
    "dataset": "digits",
    "network": {"kind": "full", "delay_rounds": 1},
    "protocol": {"name": "dfl", "nodes": 3, "duration": 40, "record_every": 20, "model": {"family": "softmax"}},
}


def test_a_short_run_keeps_every_round_and_every_height_change() -> None:
    trace = RoundTrace()
    for at, height in [(0, 0), (1, 0), (1, 1), (3, 1), (4, 2)]:
        trace.sample(at, at / 10, height)
    trace.close(9, 2.0, 3)
    assert trace.rounds == [0, 1, 3, 4, 9]  # a second sample of round 1 is not a new point
    assert trace.heights == [0, 0, 1, 2, 3] and trace.seconds == [0.0, 0.1, 0.3, 0.4, 2.0]
    assert trace.as_json() == {"rounds": trace.rounds, "seconds": trace.seconds, "heights": trace.heights}


def test_close_replaces_a_point_at_the_same_round() -> None:
    trace = RoundTrace()
    trace.sample(5, 1.0, 0)
    trace.close(5, 1.5, 1)
    assert trace.as_json() == {"rounds": [5], "seconds": [1.5], "heights": [1]}


def test_a_long_run_stays_bounded_and_keeps_its_height_changes() -> None:
    trace = RoundTrace(limit=64)
    for at in range(100_000):
        trace.sample(at, at * 0.01, at // 5_000)  # 20 height changes over 100,000 rounds
    trace.close(100_000, 1000.0, 20)
    assert len(trace.rounds) <= 65 and trace.rounds[0] == 0 and trace.rounds[-1] == 100_000
    assert trace.rounds == sorted(trace.rounds)
    for height in range(1, 20):  # each height's first round survives the thinning
        assert 5_000 * height in trace.rounds
    gaps = [b - a for a, b in zip(trace.rounds, trace.rounds[1:], strict=False)]
    assert max(gaps) <= 100_000 // 8  # spread over the run, not bunched at its start


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), max_size=600), st.integers(4, 40))
def test_any_run_gives_an_increasing_bounded_trace(steps: list[tuple[int, int]], limit: int) -> None:
    trace = RoundTrace(limit=limit)
    at = height = 0
    for gap, rise in steps:
        at, height = at + gap, height + rise
        trace.sample(at, float(at), height)
    trace.close(at + 1, float(at + 1), height)
    assert len(trace.rounds) == len(trace.seconds) == len(trace.heights) <= limit + 1
    assert all(a < b for a, b in zip(trace.rounds, trace.rounds[1:], strict=False))
    assert trace.heights == sorted(trace.heights) and trace.heights[-1] == height


def test_results_json_carries_the_trace_as_a_measurement() -> None:
    results = run(Experiment.from_mapping(DFL))
    trace = results["round_trace"]
    assert trace["rounds"][0] == 0 and trace["rounds"][-1] == results["rounds"]
    assert len(trace["rounds"]) == len(trace["seconds"]) == len(trace["heights"]) > 2
    assert trace["seconds"] == sorted(trace["seconds"]) and trace["seconds"][-1] <= results["wall_seconds"]
    assert "round_trace" in MEASURED_KEYS and "round_trace" not in without_measurements(results)
