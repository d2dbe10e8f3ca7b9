"""BFLC's summary: committee capture counts label flippers as well as malicious nodes."""

from __future__ import annotations

from pathlib import Path

from chainlab.learning.worker import Worker
from chainlab.protocols.bflc.chain import ChainState
from chainlab.protocols.bflc.messages import Chain
from chainlab.scenarios.bflc.settings import BflcSettings
from chainlab.scenarios.bflc.summary import summarise
from chainlab.scenarios.experiment import load_experiment
from chainlab.sim.experiment import simulation_for

DEMO = Path(__file__).resolve().parents[3] / "experiments" / "bflc_demo.yaml"


def test_a_committee_of_label_flippers_is_a_captured_one() -> None:
    exp = load_experiment(DEMO)
    spec, deployment, simulation = simulation_for(exp, Worker())
    simulation.run()
    nodes = {slot.name: node for slot, node in zip(deployment.slots, simulation.nodes, strict=True)}
    chain = spec.sim_view(nodes[spec.observer(deployment.slots).name], nodes)
    assert isinstance(chain, Chain)
    first = frozenset(ChainState(chain.genesis, BflcSettings.of(exp).params).committee)  # C_0, as flippers
    flipped = summarise(exp, chain, frozenset(), deployment.data, Worker(), flippers=first)
    plain = summarise(exp, chain, frozenset(), deployment.data, Worker())
    assert _first_round(flipped)["committee_malicious"] == len(first) and flipped["initially_captured"]
    assert _first_round(plain)["committee_malicious"] == 0 and not plain["initially_captured"]


def _first_round(results: dict[str, object]) -> dict[str, object]:
    rows = results["rounds"]
    assert isinstance(rows, list) and rows and isinstance(rows[0], dict)
    return rows[0]
