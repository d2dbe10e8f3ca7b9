"""results.json's protocol CPU share: the protocol core's share of all the nodes' process CPU."""

from __future__ import annotations

from chainlab.protocols.base import NodeStatus
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.results import assemble


def _assemble(cpu: dict[str, dict[str, float]] | None) -> dict[str, object]:
    exp = Experiment.from_mapping({"protocol": {"name": "bagchain"}})
    return assemble(
        exp,
        driver="live",
        statuses={"a": NodeStatus("miner", 1, b"t")},
        observer="a",
        rejections={},
        internal_errors={},
        protocol_results={},
        truncated=False,
        rounds=3,
        wall_seconds=1.0,
        ml_seconds=0.5,
        cpu=cpu,
    )


def test_the_share_sums_protocol_over_process_seconds_of_every_node() -> None:
    cpu = {
        "a": {"protocol_seconds": 1.0, "codec_seconds": 0.5, "process_seconds": 10.0, "ml_seconds": 8.0},
        "b": {"protocol_seconds": 3.0, "codec_seconds": 1.5, "process_seconds": 30.0, "ml_seconds": 20.0},
    }
    results = _assemble(cpu)
    assert results["protocol_cpu_share"] == 0.1 and results["codec_cpu_share"] == 0.05
    assert results["cpu_by_node"] == cpu


def test_without_cpu_accounting_the_share_is_none_and_the_keys_stay() -> None:
    results = _assemble(None)
    assert results["protocol_cpu_share"] is None is results["codec_cpu_share"] and results["cpu_by_node"] == {}
