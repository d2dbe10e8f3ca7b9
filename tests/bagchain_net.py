"""Test support: a built BagChain deployment with its parties and data by name (what tests poke at)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.protocols.bagchain import FullNode, Miner, Requester
from chainlab.protocols.bagchain.messages import Task
from chainlab.scenarios import registry
from chainlab.scenarios.base import Deployment
from chainlab.scenarios.experiment import Experiment
from chainlab.sim import experiment as sim_experiment
from chainlab.sim.engine import Simulation

__all__ = ["Experiment", "Network", "build", "simulation_for"]


@dataclass
class Network:
    """A BagChain deployment seen through its roles: miners, the requester, validators, tasks and datasets."""

    deployment: Deployment

    @property
    def nodes(self) -> list[Any]:
        return list(self.deployment.nodes)

    @property
    def miners(self) -> list[Miner]:
        return [n for n in self.deployment.nodes if isinstance(n, Miner)]

    @property
    def validators(self) -> list[FullNode]:
        return [n for n in self.deployment.nodes if isinstance(n, FullNode) and not isinstance(n, Miner)]

    @property
    def requester(self) -> Requester:
        return next(n for n in self.deployment.nodes if isinstance(n, Requester))

    @property
    def tasks(self) -> list[Task]:
        return sorted(self.requester.tasks.values(), key=lambda t: t.sequence)

    @property
    def public(self) -> Dataset:
        return self.deployment.data["public"]

    @property
    def validation(self) -> Dataset:
        return self.deployment.data["validation"]

    @property
    def test(self) -> Dataset:
        return self.deployment.data["test"]

    @property
    def datasets(self) -> Mapping[bytes, Dataset]:
        """D_T, D_V and D_E by commitment."""
        return {d.commitment(): d for d in (self.public, self.validation, self.test)}


def build(exp: Experiment) -> Network:
    """The BagChain deployment of exp."""
    return Network(registry.get("bagchain").build(exp))


def simulation_for(exp: Experiment, worker: Worker) -> tuple[Network, Simulation]:
    """exp's deployment and the simulation that drives it."""
    _, deployment, simulation = sim_experiment.simulation_for(exp, worker)
    return Network(deployment), simulation
