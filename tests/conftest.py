"""Fixtures shared across test packages."""

from __future__ import annotations

import pytest

from chainlab.learning.worker import Worker
from tests.bagchain_net import simulation_for
from tests.protocols.bagchain.conftest import Honest, honest_experiment


@pytest.fixture(scope="session")
def honest() -> Honest:
    """One finished honest BagChain run for the whole session; tests read it and never change it."""
    worker = Worker()
    net, simulation = simulation_for(honest_experiment(), worker)
    simulation.run()
    assert all(m.chain.tip.height == 2 for m in net.miners)
    return Honest(net, worker)
