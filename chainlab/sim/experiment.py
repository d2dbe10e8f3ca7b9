"""Simulated experiments: a scenario driven by the discrete-event engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from chainlab.learning.worker import Worker
from chainlab.network.config import NetworkConfig
from chainlab.scenario import Experiment, build, load_experiment, summarise
from chainlab.sim.engine import Simulation, WorkModel
from chainlab.sim.network import build_network

__all__ = ["Experiment", "checked", "load_experiment", "run", "simulation_for"]


def checked(exp: Experiment) -> Experiment:
    """exp, once its simulator-only sections (network, work) are known to be valid."""
    NetworkConfig.from_mapping(exp.get("network", {}))
    WorkModel.from_mapping(exp.get("work", {}))
    return exp


def simulation_for(exp: Experiment, worker: Worker) -> tuple[Any, Simulation]:
    """Build the scenario and the simulation that drives it."""
    net = build(exp)
    simulation = Simulation(
        nodes=net.nodes,
        network=build_network(NetworkConfig.from_mapping(exp.get("network", {})), len(net.nodes), exp.seed),
        worker=worker,
        datasets=net.datasets,
        private=net.private,
        work=WorkModel.from_mapping(exp.get("work", {})),
        rng=np.random.default_rng([exp.seed, 1]),
        max_rounds=int(exp.get("max_rounds", 1_000_000)),
    )
    return net, simulation


def run(exp: Experiment, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Simulate one configuration and return its results (the contents of results.json).

    progress, if given, is called with (round, best tip height) whenever simulated time advances.
    """
    started = time.perf_counter()
    worker = Worker()
    net, simulation = simulation_for(exp, worker)
    if progress is not None:
        report = progress
        simulation.on_round = lambda at: report(at, max(m.chain.tip.height for m in net.miners))
    last_round = simulation.run()
    results = summarise(exp, net, simulation.records, worker)
    results["rounds"] = last_round
    results["wall_seconds"] = time.perf_counter() - started
    results["ml_seconds"] = worker.ml_seconds
    return results
