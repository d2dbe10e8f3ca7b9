"""The pods' own commands: the loader's plan (against a real storage service), the deployment check's verdicts."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from chainlab.k8s.pod_commands import cmd_plan
from chainlab.live.ipfs import EmbeddedKubo
from chainlab.live.plan import NetworkPlan
from chainlab.live.readout import network_problems
from chainlab.live.server import STORAGE_MESSAGE_BYTES, running_server
from chainlab.live.storage_client import StorageClient
from chainlab.proto.v1 import node_pb2
from chainlab.scenarios.experiment import Experiment
from services.storage.servicer import StorageServicer, registrar
from tests.live.test_launcher import SMALL

pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter:FutureWarning")

TEMPLATE = "rel-chainlab-{role}-{index}.rel-chainlab-{role}.lab.svc.cluster.local"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKubo]:
    node = EmbeddedKubo(tmp_path_factory.mktemp("kubo") / "repo")
    yield node
    node.close()


def _plan_args(config: Path, storage: str, out: Path) -> argparse.Namespace:
    return argparse.Namespace(
        config=config, storage=storage, host_template=TEMPLATE, round_seconds=None, out=out, configmap=None,
        owner_configmap=None, namespace=None, replace=False, wait_seconds=30.0,
    )  # fmt: skip


@pytest.mark.slow
def test_the_loader_lays_out_pod_addresses_and_loads_the_data_the_plan_names(
    backend: EmbeddedKubo, tmp_path: Path
) -> None:
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml.safe_dump(SMALL))

    async def run() -> tuple[NetworkPlan, NetworkPlan, dict[str, int]]:
        servicer = StorageServicer(backend, max_object_bytes=64 * 1024 * 1024)
        async with running_server("storage", "127.0.0.1:0", registrar(servicer), STORAGE_MESSAGE_BYTES) as running:
            storage = f"127.0.0.1:{running.port}"
            assert await cmd_plan(_plan_args(config, storage, tmp_path / "a"), Console()) == 0
            assert await cmd_plan(_plan_args(config, storage, tmp_path / "b"), Console()) == 0
            first, second = (
                NetworkPlan.load(tmp_path / "a" / "plan.json"),
                NetworkPlan.load(tmp_path / "b" / "plan.json"),
            )
            async with StorageClient(storage) as client:
                sizes = {name: (await client.stat(cid)).size for name, cid in first.data.items()}
            return first, second, sizes

    first, second, sizes = asyncio.run(run())
    miner = first.node("miner-2")
    assert miner.listen == "rel-chainlab-miner-2.rel-chainlab-miner.lab.svc.cluster.local:7000"
    assert miner.sidecar.endswith(":7001") and (miner.metrics_port, miner.sidecar_metrics_port) == (9000, 9001)
    assert first.entry("requester", 0).listen.startswith("rel-chainlab-requester-0.rel-chainlab-requester.")
    # Content addressing: a second loader run (a re-run hook) names the same data; all of it is in storage.
    assert first.data == second.data and all(size > 0 for size in sizes.values())
    assert first.round_seconds == Experiment.from_mapping(SMALL).live.round_seconds
    topology = yaml.safe_load((tmp_path / "a" / "topology.yaml").read_text())
    assert topology["round_seconds"] == first.round_seconds and miner.sidecar in topology["nodes"].values()
    assert json.loads((tmp_path / "a" / "plan.json").read_text())["storage"].startswith("127.0.0.1:")


def test_the_loader_wants_one_destination(tmp_path: Path) -> None:
    args = _plan_args(tmp_path / "x.yaml", "127.0.0.1:1", tmp_path)
    args.configmap = "plan"
    with pytest.raises(ValueError, match="exactly one of --out and --configmap"):
        asyncio.run(cmd_plan(args, Console()))


def _status(height: int, tip: bytes, votes: bool = True) -> node_pb2.NodeStatus:
    return node_pb2.NodeStatus(height=height, tip=tip, votes=votes)


def test_the_deployment_check_names_every_node_that_is_missing_behind_or_on_another_tip() -> None:
    good = {"miner-0": _status(1, b"a"), "validator-0": _status(2, b"a"), "requester-0": _status(1, b"z", False)}
    assert network_problems(good, 1, agree=True) == []
    problems = network_problems({**good, "miner-1": None, "miner-2": _status(0, b"a")}, 1, agree=True)
    assert problems == ["miner-1 does not answer", "miner-2 at height 0 < 1"]
    split = {**good, "miner-1": _status(1, b"b")}
    assert network_problems(split, 1, agree=False) == []
    (disagree,) = network_problems(split, 1, agree=True)
    assert disagree.startswith("voting nodes disagree on the tip: 61, 62")
