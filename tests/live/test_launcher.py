"""End to end: `chainlab up` runs storage, sidecars, miners, a validator and the requester as real processes."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from rich.console import Console

from chainlab.live.launcher import STATE_FILE, UpFailed, UpOptions, up
from chainlab.live.plan import NetworkPlan
from chainlab.live.planning import build_topology, node_entries
from chainlab.network.config import NetworkConfig
from chainlab.parity import check_hops
from chainlab.scenarios import registry
from chainlab.scenarios.bagchain.settings import SPARE_TASKS
from chainlab.scenarios.experiment import Experiment
from chainlab.sim.experiment import run as simulate
from chainlab.sim.network import build_network
from chainlab.sim.report import figures
from tests.scenarios.live_demo import assert_wire_bytes_of_the_same_kinds

SMALL: dict[str, Any] = {
    "name": "e2e",
    "seed": 3,
    "dataset": "digits",
    "model": {"family": "decision_tree"},
    "metric_min": 0.3,
    "tasks": 1,
    "miners": 3,
    "validators": 1,
    "partition": {"kappa": 0.1, "zeta": 0.25},
    "network": {"kind": "full", "delay_rounds": 1},
    # 0.1 s rounds: 4 s of Phase I for 11 processes to start work on 2 cores, 2 s to fetch models and 1 s more
    # to evaluate ensembles before D_E, with room to spare on a loaded CI machine.
    "protocol": {"phase1_rounds": 40, "phase2_rounds": 30, "target": "2**250-1", "ensemble_wait_rounds": 20},
    "work": {"hash_trials_per_round": 8},
}


def _our_processes(out: Path) -> list[psutil.Process]:
    """Processes whose command line names this run's folder (every service gets the plan or repo path)."""
    mine = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(out) in part for part in process.info["cmdline"] or []):
            mine.append(process)
    return mine


def _run(tmp_path: Path, **options: Any) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    exp = Experiment.from_mapping(SMALL)
    scraped: dict[str, str] = {}

    def on_progress(height: int, round_: int) -> None:
        # Scrape the validator's and a sidecar's /metrics once the network is up (the plan exists by then).
        if scraped or not (tmp_path / "plan.json").exists():
            return
        plan = NetworkPlan.load(tmp_path / "plan.json")
        validator = plan.node("validator-0")
        for name, port in (("validator", validator.metrics_port), ("netem", validator.sidecar_metrics_port)):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                scraped[name] = reply.read().decode()

    raw = asyncio.run(up(UpOptions(exp, tmp_path, 0.1, timeout_seconds=240, **options), Console(), on_progress))
    return figures(raw), scraped, raw


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_three_miners_finish_a_task_as_real_processes_and_everything_stops(tmp_path: Path) -> None:
    results, scraped, raw = _run(tmp_path)
    (row,) = results["heights"]
    assert row["height"] == 1
    assert row["miniblocks_used"] >= 2
    assert row["ensemble_accuracy"] > 0.5
    assert row["predict_accuracy"] == pytest.approx(row["ensemble_accuracy"], abs=1e-6)  # served = ranked winner
    assert len(row["base_accuracies"]) == row["miniblocks_generated"] >= 2
    # The same configuration in the simulator lands within 2 percentage points.
    simulated = simulate(Experiment.from_mapping(SMALL))
    assert abs(figures(simulated)["ensemble_accuracy"] - results["ensemble_accuracy"]) <= 0.02
    # One results pipeline: the same keys, at the top and in protocol_results, from both drivers.
    assert set(simulated) == set(raw)
    assert set(simulated["protocol_results"]) == set(raw["protocol_results"])
    assert raw["driver"] == "live" and raw["truncated"] is False and raw["observer"] == "validator-0"
    assert results["tips_agree"]
    assert results["rejections"] == {}
    # The validator's balances: the requester paid the fee from its genesis allocation, which went to the winners
    # with the Key Block reward.
    fee, reward = 100, 50
    allocation = fee * (SMALL["tasks"] + SPARE_TASKS)
    names = {e.node_id: e.name for e in NetworkPlan.load(tmp_path / "plan.json").nodes}
    balances = {names[account]: amount for account, amount in results["balances"].items()}
    assert balances["requester"] == allocation - fee
    assert sum(v for name, v in balances.items() if name.startswith("miner-")) == fee + reward
    assert "chainlab_blocks_accepted_total" in scraped["validator"]
    assert "chainlab_gossip_messages_total" in scraped["validator"]
    assert 'chainlab_wire_bytes{kind="served"}' in scraped["validator"]
    assert_wire_bytes_of_the_same_kinds(raw, simulated)
    assert "chainlab_netem_messages_total" in scraped["netem"]
    # Clean shutdown: every service exited 0 on SIGTERM, none is left, and the state file is gone.
    assert set(results["exit_codes"].values()) == {0}, results["exit_codes"]
    assert _our_processes(tmp_path) == []
    assert not (tmp_path / STATE_FILE).exists()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_miner_killed_mid_task_leaves_the_others_finishing_it(tmp_path: Path) -> None:
    results, _, _ = _run(tmp_path, kill="miner-2", kill_after_seconds=0.5)
    (row,) = results["heights"]
    assert row["height"] == 1 and row["ensemble_accuracy"] > 0.5
    assert results["tips_agree"]  # among the survivors
    assert results["exit_codes"]["miner-2"] == -9
    assert {c for n, c in results["exit_codes"].items() if n != "miner-2"} == {0}
    assert _our_processes(tmp_path) == []


MESH: dict[str, Any] = {
    **SMALL,
    "name": "e2e-mesh",
    "miners": 4,
    "partition": {"kappa": 0.1, "zeta": 0.2},
    "network": {"kind": "erdos_renyi", "avg_degree": 2.0, "bandwidth_mb": 0.5},
    # 6 MB Key Blocks take about 12 rounds a hop: room for them to cross the mesh before the next one.
    "protocol": {**SMALL["protocol"], "phase1_rounds": 60, "key_block_size_mb": 6.0, "cfs": True},
}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_on_a_mesh_every_hop_netem_charged_is_the_simulators_and_the_results_agree(tmp_path: Path) -> None:
    exp = Experiment.from_mapping(MESH)
    live = asyncio.run(up(UpOptions(exp, tmp_path, 0.05, timeout_seconds=300), Console(), lambda h, r: None))
    checks = check_hops(tmp_path)
    # Key Blocks (6 MB) and MiniBlocks / Ensemble Blocks (2 MB) crossed links, each hop as the simulator charges it.
    assert {6.0, 2.0} <= set(checks)
    assert all(c.hops > 0 and c.equal == c.hops for c in checks.values()), checks
    assert max(checks[6.0].netem_rounds) >= 9  # a 6 MB hop at ~0.5 MB/round, not the ~1 kB it takes on the wire
    simulated = simulate(exp)
    assert set(simulated) == set(live)
    assert abs(figures(simulated)["ensemble_accuracy"] - figures(live)["ensemble_accuracy"]) <= 0.02
    assert live["tips_agree"] and live["truncated"] is False


def test_an_unknown_kill_target_is_named_before_anything_starts(tmp_path: Path) -> None:
    exp = Experiment.from_mapping(SMALL)
    with pytest.raises(ValueError, match="no node 'miner-9'"):
        asyncio.run(up(UpOptions(exp, tmp_path, 0.1, kill="miner-9"), Console(), lambda h, r: None))
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())
    assert _our_processes(tmp_path) == []


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_a_run_that_times_out_still_writes_partial_results_marked_truncated(tmp_path: Path) -> None:
    exp = Experiment.from_mapping(SMALL)
    with pytest.raises(UpFailed, match="not finished within"):
        asyncio.run(up(UpOptions(exp, tmp_path, 0.1, timeout_seconds=1.0), Console(), lambda h, r: None))
    partial = json.loads((tmp_path / "results.json").read_text())
    assert partial["truncated"] is True and "not finished within" in partial["error"]
    assert partial["driver"] == "live" and set(partial["exit_codes"].values()) == {0}
    assert _our_processes(tmp_path) == []


def test_the_topology_follows_the_experiment_or_a_named_file(tmp_path: Path) -> None:
    exp = Experiment.from_mapping(SMALL)
    deployment = registry.get("bagchain").build(exp)
    entries = node_entries(deployment.slots)
    order = [slot.node_id for slot in deployment.slots]
    full = build_topology("config", exp, entries, order)
    assert len(full.links) == len(entries) * (len(entries) - 1) // 2
    assert {spec.latency_rounds for spec in full.links.values()} == {1}
    # Vertex i is the simulator's node i (miners, requester, validators), whatever the entries' start order.
    assert full.vertices == tuple(order)
    mesh_exp = exp.with_value("network", {"kind": "erdos_renyi", "avg_degree": 2.0, "bandwidth_mb": 0.5})
    mesh = build_topology("config", mesh_exp, entries, order)
    simulated = build_network(NetworkConfig.from_mapping(mesh_exp.get("network")), len(order), exp.seed)
    assert mesh.vertex_edges() == list(simulated.links)
    line = tmp_path / "line.yaml"
    line.write_text("links:\n  - [miner-0, miner-1]\n  - {a: miner-1, b: miner-2, bandwidth_mb_per_round: 4}\n"
                    "  - [miner-2, validator-0]\n  - [validator-0, requester]\n")  # fmt: skip
    chain = build_topology(str(line), exp, entries, order)
    assert len(chain.links) == 4
    assert sorted(s.bandwidth_mb_per_round for s in chain.links.values()) == [0.0, 0.0, 0.0, 4.0]
    assert chain.vertices == tuple(order)
    line.write_text("links:\n  - [miner-0, miner-9]\n")
    with pytest.raises(ValueError, match="unknown node 'miner-9'"):
        build_topology(str(line), exp, entries, order)
    with pytest.raises(ValueError, match="bandwith"):
        build_topology("config", exp.with_value("network", {"bandwith": 1}), entries, order)
    with pytest.raises(ValueError, match="exactly once"):
        build_topology("config", exp, entries, order[1:])


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_monitored_run_takes_a_task_at_run_time_and_prometheus_sees_it_through(tmp_path: Path) -> None:
    """`up --monitor` with a task submitted mid-run: the chain finishes it like a planned one, the requester
    predicts with it, Prometheus scraped every service (with the run's labels), and the PNGs are drawn from it."""
    from chainlab.live import task_client
    from chainlab.live.launcher import LiveNetwork
    from chainlab.monitoring.prometheus import PrometheusClient

    exp = Experiment.from_mapping(SMALL)
    submitted: list[bytes] = []
    seen: dict[str, Any] = {}

    async def submit(network: LiveNetwork) -> None:
        assert network.plan is not None
        submission = task_client.Submission(dataset_name="digits", metric_min=0.3, fee=40)
        submitted.append(bytes((await task_client.submit_task(network.plan, submission)).task_id))

    async def read_prometheus(network: LiveNetwork) -> None:
        assert network.prometheus_url is not None
        client = PrometheusClient(network.prometheus_url)
        seen["up"] = client.query('up{job="chainlab"}')
        seen["accuracy"] = client.query("chainlab_bagchain_task_accuracy")
        seen["completed"] = client.query("chainlab_bagchain_tasks_completed_total")

    options = UpOptions(exp, tmp_path, 0.1, timeout_seconds=300, monitor=True)
    raw = asyncio.run(up(options, Console(), lambda h, r: None, during=submit, after=read_prometheus))
    results = figures(raw)
    (task_id,) = submitted
    assert [h["task_id"] for h in results["heights"]][-1] == task_id.hex()
    assert len(results["heights"]) == 2 and results["tips_agree"]
    last = results["heights"][-1]
    assert last["ensemble_accuracy"] > 0.5 and last["predict_accuracy"] > 0.5
    # Every service was a target and up, labelled with the run's protocol and its node.
    assert len(seen["up"]) == 1 + 2 * 5 and all(s.value == 1.0 for s in seen["up"])
    assert {s.labels["protocol"] for s in seen["up"]} == {"bagchain"}
    assert {s.labels["node"] for s in seen["up"]} >= {"requester", "validator-0", "miner-0", "storage"}
    # The requester scored both tasks on D_E and counted them done.
    scored = {(s.labels["task"], s.labels["measure"]) for s in seen["accuracy"]}
    assert (task_id.hex(), "ensemble") in scored and (task_id.hex(), "public") in scored
    assert sum(s.value for s in seen["completed"]) == 2
    assert raw["monitor"]["plots"] == ["throughput.png", "accuracy.png", "chain.png"]
    assert all((tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in raw["monitor"]["plots"])
    assert _our_processes(tmp_path) == []  # Prometheus too
