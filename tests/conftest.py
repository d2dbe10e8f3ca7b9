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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `images` need the images `make images` builds: they run only when -m names them
    (`make test-images`), never as part of a plain or -m "not slow" run."""
    if "images" in (config.getoption("markexpr") or ""):
        return
    selected = [item for item in items if item.get_closest_marker("images") is None]
    if len(selected) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("images")])
        items[:] = selected
