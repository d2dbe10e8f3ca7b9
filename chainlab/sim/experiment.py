"""Simulated experiments: a protocol's deployment driven by the discrete-event engine."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

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

__all__ = ["Experiment", "load_experiment", "run", "simulation_for"]


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

    progress, if given, is called with (round, progress in the spec's progress_unit) whenever simulated time
    advances. workers is the number of processes ML jobs run in; results are the same for any number.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    worker = Worker()
    spec, deployment, simulation = simulation_for(exp, worker, workers)
    simulation.kept_events = frozenset({RECORD_REJECTED, RECORD_INTERNAL_ERROR})  # what results.json counts
    if progress is not None:
        report = progress
        simulation.on_round = lambda at: report(
            at, spec.progress(max(node.status().height for node in deployment.nodes), at)
        )
    assert simulation.pool is not None
    with simulation.pool as pool:
        last_round = simulation.run()
    ml_seconds, ml_here = pool.ml_seconds, pool.ml_seconds_here
    # A restart or a byzantine switch replaces a node: its latest incarnation is the simulation's.
    nodes = {slot.name: node for slot, node in zip(deployment.slots, simulation.nodes, strict=True)}
    observer = spec.observer(deployment.slots)
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
    )


def peak_memory() -> dict[str, float]:
    """Peak resident memory in MB: this process's (`peak_rss_mb`, the simulation itself) and the largest of its
    finished worker processes' (`peak_rss_worker_mb`, 0 without any): Linux's ru_maxrss, in KiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(own, 1), "peak_rss_worker_mb": round(workers, 1)}
