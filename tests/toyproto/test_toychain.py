"""A protocol that lives only in tests runs in the simulator and as live services over real gRPC, through the
registry alone: no line of it is in the drivers, the launcher, the services or the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chainlab.cli import main
from chainlab.ledger.pow import meets_target
from chainlab.live.launcher import UpOptions, up
from chainlab.scenarios import registry
from chainlab.scenarios.experiment import Experiment
from chainlab.sim.experiment import run
from tests.toyproto.node import Block, ToyCodec, ToyMiner
from tests.toyproto.spec import SPEC, TARGET

TOY: dict[str, Any] = {
    "name": "toy",
    "seed": 2,
    "protocol": {"name": "toychain"},
    "miners": 3,
    "blocks": 4,
    "network": {"kind": "full", "delay_rounds": 1},
    "work": {"hash_trials_per_round": 4},
}


@pytest.fixture(autouse=True)
def toychain(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The way a plug-in reaches service processes too: they inherit the environment.
    monkeypatch.setenv("CHAINLAB_PROTOCOLS", "toychain=tests.toyproto.spec:SPEC")
    yield


def test_the_registry_finds_the_plugin_by_name_and_validates_its_keys() -> None:
    assert registry.get("toychain") is SPEC
    assert "toychain" in registry.names() and "bagchain" in registry.names()
    with pytest.raises(ValueError, match="unknown config key"):
        Experiment.from_mapping({**TOY, "tasks": 3})  # a BagChain key means nothing here
    with pytest.raises(ValueError, match="blocks must be an integer"):
        Experiment.from_mapping({**TOY, "blocks": 0})


def test_the_toy_chain_runs_in_the_simulator() -> None:
    results = run(Experiment.from_mapping(TOY))
    assert results["protocol"] == "toychain" and results["driver"] == "sim"
    assert results["protocol_results"]["height"] == 4
    assert results["tips_agree"] and results["rejections"] == {} and results["truncated"] is False


def test_the_cli_runs_it_too(tmp_path: Path) -> None:
    config = tmp_path / "toy.yaml"
    config.write_text(json.dumps(TOY))
    assert main(["sim", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["protocol_results"]["height"] == 4


def test_a_garbled_block_is_malformed_and_a_weak_one_is_refused() -> None:
    node = SPEC.build(Experiment.from_mapping(TOY)).nodes[0]
    with pytest.raises(ValueError, match="80 bytes"):
        ToyCodec().decode_message(b"\x00" * 10)
    weak = next(b for n in range(1000) if not meets_target((b := Block(1, bytes(32), b"m" * 32, n)).hash, TARGET))
    effects = node.on_message(b"peer", weak, 0)
    assert [e.data for e in effects] == [{"kind": "ToyBlock", "reason": "bad_pow"}]  # type: ignore[union-attr]


def test_a_block_that_arrives_before_its_parent_waits_for_it() -> None:
    """Gossip may deliver a chain out of order: the child is kept until its parent arrives, then both count."""
    miner, other = SPEC.build(Experiment.from_mapping(TOY)).nodes[:2]
    assert isinstance(miner, ToyMiner)
    first = _mined(Block(1, bytes(32), b"m" * 32, 0))
    second = _mined(Block(2, first.hash, b"m" * 32, 0))
    assert other.on_message(b"peer", second, 0) == []  # held, not rejected
    other.on_message(b"peer", first, 1)
    assert other.status().height == 2 and other.status().tip == second.hash


def _mined(draft: Block) -> Block:
    return next(
        b for n in range(100_000) if meets_target((b := Block(draft.height, draft.parent, draft.miner, n)).hash, TARGET)
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_toy_chain_runs_as_live_services_over_real_grpc(tmp_path: Path) -> None:
    exp = Experiment.from_mapping(TOY)
    live = asyncio.run(up(UpOptions(exp, tmp_path, 0.05, timeout_seconds=120), Console(), lambda h, r: None))
    simulated = run(exp)
    assert live["protocol"] == "toychain" and live["driver"] == "live"
    assert live["protocol_results"]["height"] >= 4
    assert live["tips_agree"] and live["rejections"] == {} and live["truncated"] is False
    assert set(live) == set(simulated)
    assert set(live["exit_codes"].values()) == {0}
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert [n["role"] for n in plan["nodes"]] == ["miner"] * 3 and plan["data"] == {}
