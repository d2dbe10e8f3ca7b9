"""Simulated experiments: a protocol's deployment driven by the discrete-event engine."""

from __future__ import annotations

import time
from collections.abc import Callable

from chainlab.learning.worker import Worker
from chainlab.scenarios import chaos, registry
from chainlab.scenarios.base import Deployment, ProtocolSpec
from chainlab.scenarios.experiment import Experiment, load_experiment
from chainlab.scenarios.results import Results, assemble, internal_errors_by_node, rejections_by_node
from chainlab.sim.chaos import ChaosSimulation, chaos_simulation
from chainlab.sim.engine import Simulation
from chainlab.sim.network import build_network

__all__ = ["Experiment", "load_experiment", "run", "simulation_for"]


def simulation_for(exp: Experiment, worker: Worker) -> tuple[ProtocolSpec, Deployment, Simulation]:
    """The protocol's spec, its deployment, and the simulation that drives it."""
    spec = registry.get(exp.protocol_name)
    deployment = spec.build(exp)
    index = {slot.name: i for i, slot in enumerate(deployment.slots)}
    simulation = Simulation(
        nodes=deployment.nodes,
        codec=spec.codec,
        network=build_network(exp.network, len(deployment.nodes), exp.seed),
        worker=worker,
        datasets={d.commitment(): d for d in deployment.data.values()},
        private={index[name]: deployment.data[data] for name, data in deployment.private.items()},
        work=exp.work,
        max_rounds=exp.max_rounds,
    )
    actions = chaos.scenario(exp)
    if actions:
        simulation = chaos_simulation(simulation, spec, exp, deployment, actions)
    return spec, deployment, simulation


def run(exp: Experiment, progress: Callable[[int, int], None] | None = None) -> Results:
    """Simulate one configuration and return its results (the contents of results.json).

    progress, if given, is called with (round, progress in the spec's progress_unit) whenever simulated time
    advances.
    """
    started = time.perf_counter()
    worker = Worker()
    spec, deployment, simulation = simulation_for(exp, worker)
    if progress is not None:
        report = progress
        simulation.on_round = lambda at: report(
            at, spec.progress(max(node.status().height for node in deployment.nodes), at)
        )
    last_round = simulation.run()
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
        ml_seconds=worker.ml_seconds,
        chaos=simulation.report() if isinstance(simulation, ChaosSimulation) else (),
    )
