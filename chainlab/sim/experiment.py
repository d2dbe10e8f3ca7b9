"""Simulated experiments: a protocol's deployment driven by the discrete-event engine."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chainlab.learning.worker import Worker
from chainlab.protocols.effects import RECORD_INTERNAL_ERROR, RECORD_REJECTED
from chainlab.scenarios import chaos, registry
from chainlab.scenarios.base import Deployment, ProtocolSpec
from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.scenarios.results import Results, assemble, internal_errors_by_node, rejections_by_node
from chainlab.sim.chaos import ChaosSimulation, chaos_simulation
from chainlab.sim.engine import Simulation
from chainlab.sim.network import build_network
from chainlab.work.pool import ComputePool

__all__ = ["Experiment", "RoundTrace", "load_experiment", "run", "simulation_for"]

TRACE_POINTS = 256  # round_trace's bound: a few hundred points whatever the horizon
PROGRESS_NODES_PER_ROUND = 100  # progress reads about this many nodes' heights per simulated round


@dataclass
class RoundTrace:
    """results.json's `round_trace`: (virtual round, wall seconds since the run began, the observer's chain height)
    sampled as rounds advance, so that histories on virtual rounds or on heights map onto wall-clock seconds.

    A point is taken whenever the height moves by `height_step` and at least every `stride` rounds; past `limit`
    points every other one of the kind in excess is dropped and its spacing doubled, so a long run keeps at most
    about `limit` points, evenly spread, and a short one keeps every height change.
    """

    limit: int = TRACE_POINTS
    stride: int = 1
    height_step: int = 1
    rounds: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    _moved: list[bool] = field(default_factory=list)  # whether a point was taken for a height change

    def sample(self, at: int, seconds: float, height: int) -> None:
        """Round `at` has begun, `seconds` into the run, with the observer at `height`."""
        if self.rounds and at <= self.rounds[-1]:
            return
        moved = not self.heights or abs(height - self.heights[-1]) >= self.height_step
        if not moved and self.rounds and at < self.rounds[-1] + self.stride:
            return
        self.rounds.append(at)
        self.seconds.append(seconds)
        self.heights.append(height)
        self._moved.append(moved)
        if len(self.rounds) > self.limit:
            self._thin()

    def _thin(self) -> None:
        # Thin the periodic points while height changes leave room for them; else thin the height changes too.
        steps = sum(self._moved)
        if steps <= self.limit // 2:
            self.stride *= 2
            keep = [i for i, m in enumerate(self._moved) if m or i % 2 == 0 or i == len(self._moved) - 1]
        else:
            self.stride *= 2
            self.height_step *= 2
            keep = [i for i in range(len(self.rounds)) if i % 2 == 0 or i == len(self.rounds) - 1]
        self.rounds = [self.rounds[i] for i in keep]
        self.seconds = [self.seconds[i] for i in keep]
        self.heights = [self.heights[i] for i in keep]
        self._moved = [self._moved[i] for i in keep]

    def close(self, at: int, seconds: float, height: int) -> None:
        """The last point: where the run ended (always kept, so the trace spans the whole run)."""
        if self.rounds and at <= self.rounds[-1]:
            self.rounds[-1], self.seconds[-1], self.heights[-1] = at, seconds, height
            return
        self.rounds.append(at)
        self.seconds.append(seconds)
        self.heights.append(height)
        self._moved.append(True)

    def as_json(self) -> dict[str, list[int] | list[float]]:
        """{"rounds": [...], "seconds": [...], "heights": [...]}, one entry per point."""
        return {"rounds": list(self.rounds), "seconds": list(self.seconds), "heights": list(self.heights)}


def simulation_for(
    exp: Experiment, worker: Worker, workers: int | None = None
) -> tuple[ProtocolSpec, Deployment, Simulation]:
    """The protocol's spec, its deployment, and the simulation that drives it; with workers, its ML jobs run in a
    ComputePool of that many processes (the caller closes simulation.pool)."""
    spec = registry.get(exp.protocol_name)
    deployment = spec.build(exp)
    index = {slot.name: i for i, slot in enumerate(deployment.slots)}
    datasets = {d.commitment(): d for d in deployment.data.values()}
    private = {index[name]: deployment.data[data] for name, data in deployment.private.items()}
    simulation = Simulation(
        nodes=deployment.nodes,
        codec=spec.codec,
        network=build_network(exp.network, len(deployment.nodes), exp.seed),
        worker=worker,
        datasets=datasets,
        private=private,
        work=exp.work,
        max_rounds=exp.max_rounds,
        durable=False,  # nothing restarts without a chaos scenario that says so
        pool=None if workers is None else ComputePool(workers, datasets, private),
    )
    actions = chaos.scenario(exp)
    if actions:
        simulation = chaos_simulation(simulation, spec, exp, deployment, actions)
    return spec, deployment, simulation


def run(exp: Experiment, progress: Callable[[int, int], None] | None = None, *, workers: int = 1) -> Results:
    """Simulate one configuration and return its results (the contents of results.json).

    progress, if given, is called with (round, progress in the spec's progress_unit) as simulated time advances:
    every round up to 100 nodes, every nodes / 100 rounds beyond. workers is the number of processes ML jobs run
    in; results are the same for any number.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    worker = Worker()
    spec, deployment, simulation = simulation_for(exp, worker, workers)
    # The model family's one-off import (scikit-learn's is about a second) is paid outside the run's clock, as a live
    # node pays it before joining and as the CLI's own imports are: with a throwaway Worker, so results and the ML
    # seconds are untouched.
    warm, cpu_warm = time.perf_counter(), time.process_time()
    spec.warm_up(exp, Worker(), list(deployment.data.values())[:1])
    started += time.perf_counter() - warm
    cpu_started += time.process_time() - cpu_warm
    simulation.kept_events = frozenset({RECORD_REJECTED, RECORD_INTERNAL_ERROR})  # what results.json counts
    # The observer's index, not its node: a restart replaces the node in simulation.nodes.
    watched = next(i for i, slot in enumerate(deployment.slots) if slot.name == spec.observer(deployment.slots).name)
    trace = RoundTrace()

    # The best height over all nodes is O(nodes) to find: looked for about every nodes / PROGRESS_NODES_PER_ROUND
    # rounds rather than every round (at 1,000 miners, every round cost 2 % of the run).
    progress_every, progress_due = max(1, len(deployment.nodes) // PROGRESS_NODES_PER_ROUND), 0

    def on_round(at: int) -> None:
        nonlocal progress_due
        trace.sample(at, time.perf_counter() - started, simulation.nodes[watched].status().height)
        if progress is not None and at >= progress_due:
            progress_due = at + progress_every
            progress(at, spec.progress(max(node.status().height for node in deployment.nodes), at))

    simulation.on_round = on_round
    assert simulation.pool is not None
    trace.sample(0, time.perf_counter() - started, simulation.nodes[watched].status().height)
    with simulation.pool as pool:
        last_round = simulation.run()
    trace.close(last_round, time.perf_counter() - started, simulation.nodes[watched].status().height)
    ml_seconds, ml_here = pool.ml_seconds, pool.ml_seconds_here
    # A restart or a byzantine switch replaces a node: its latest incarnation is the simulation's.
    nodes = {slot.name: node for slot, node in zip(deployment.slots, simulation.nodes, strict=True)}
    # Read from an honest full node: a node the chaos section turned Byzantine does not vote, and its view is not
    # the network's (the first candidate still stands in when none votes).
    candidates = spec.observers(deployment.slots)
    observer = next((slot for slot in candidates if nodes[slot.name].status().votes), candidates[0])
    protocol_results = spec.summarise(exp, spec.sim_view(nodes[observer.name], nodes), deployment.data, worker)
    names = [slot.name for slot in deployment.slots]
    return assemble(
        exp,
        driver="sim",
        statuses={name: node.status() for name, node in nodes.items()},
        observer=observer.name,
        rejections=rejections_by_node(simulation.records, names),
        internal_errors=internal_errors_by_node(simulation.records, names),
        protocol_results=protocol_results,
        truncated=simulation.truncated,
        rounds=last_round,
        wall_seconds=time.perf_counter() - started,
        ml_seconds=ml_seconds + worker.ml_seconds,
        chaos=simulation.report() if isinstance(simulation, ChaosSimulation) else (),
        cost={
            "workers": workers,
            # This process's CPU time on anything but ML (the engine, the protocol, the summary): ML in the worker
            # processes runs beside it, so wall - ML would hide it behind them.
            "non_ml_seconds": time.process_time() - cpu_started - ml_here - worker.ml_seconds,
            **peak_memory(),
        },
        wire_bytes=simulation.wire.summary(len(simulation.nodes)),
        # Over all the CPU the run used: this process's and the ML in the workers beside it.
        protocol_share=simulation.protocol_seconds / (time.process_time() - cpu_started + ml_seconds - ml_here),
        round_trace=trace.as_json(),
    )


def peak_memory() -> dict[str, float]:
    """Peak resident memory in MB: this process's (`peak_rss_mb`, the simulation itself) and the largest of its
    finished worker processes' (`peak_rss_worker_mb`, 0 without any): Linux's ru_maxrss, in KiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(own, 1), "peak_rss_worker_mb": round(workers, 1)}
