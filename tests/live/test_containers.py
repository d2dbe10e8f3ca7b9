"""The containers module: the chart's generated file is current, and a pod's environment names its node."""

from __future__ import annotations

import pytest

from chainlab.live import containers
from chainlab.live.containers import POD_INDEX_FIELD, Container, EnvVar


def test_the_charts_containers_file_is_generated_from_the_code() -> None:
    assert containers.main(["--check"]) == 0, "run python -m chainlab.live.containers --write"


def test_a_statefulset_pod_learns_its_node_from_its_ordinal_and_the_requester_is_index_0() -> None:
    miner = containers.node_pod("miner")
    env = miner["node"].resolved_env(4)
    assert (env["CHAINLAB_ROLE"], env["CHAINLAB_INDEX"]) == ("miner", "4")
    assert env["CHAINLAB_PLAN"] == "/etc/chainlab/plan/plan.json"
    sidecar = miner["netem"].resolved_env(4)
    assert (sidecar["CHAINLAB_ROLE"], sidecar["CHAINLAB_INDEX"]) == ("miner", "4")
    assert sidecar["CHAINLAB_TOPOLOGY"] == "/etc/chainlab/plan/topology.yaml"
    assert containers.node_pod("requester")["node"].resolved_env(7)["CHAINLAB_INDEX"] == "0"
    assert miner["node"].command == ("chainlab-miner",) and miner["netem"].image == "slim"


def test_a_pod_field_other_than_the_index_has_no_value_outside_kubernetes() -> None:
    container = Container("node", ("x",), (), (EnvVar("NODE", field_path="spec.nodeName"),))
    with pytest.raises(ValueError, match=r"spec\.nodeName"):
        container.resolved_env(0)


def test_the_storage_pod_listens_where_it_is_told_and_the_manifest_is_the_kubernetes_shape() -> None:
    (storage,) = containers.storage_pod(7100, 9100).values()
    assert storage.resolved_env(0)["CHAINLAB_LISTEN"] == "0.0.0.0:7100"
    manifest = containers.chart_document()["pods"]
    assert isinstance(manifest, dict)
    index = manifest["miner"]["node"]["env"][1]
    assert index == {"name": "CHAINLAB_INDEX", "valueFrom": {"fieldRef": {"fieldPath": POD_INDEX_FIELD}}}
